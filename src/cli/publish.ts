/**
 * `--publish` in docker's two syntaxes:
 *   short: [PUBLISHED:]TARGET[/tcp|udp]             e.g. 8080:80, 80, 53:53/udp
 *   long:  published=8080,target=80,protocol=udp,mode=host
 * Numbers are passed on as given; range checks happen in the agent, so the CLI
 * and the API report the same error.
 */
import type { PortSpec } from '../api/index.js';
import { UsageError } from './format.js';

export function parsePublish(text: string): PortSpec {
  return text.includes('=') ? parseLong(text) : parseShort(text);
}

function num(v: string, text: string): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`--publish: '${text}': '${v}' is not a port number`);
  return Number(v);
}

function parseShort(text: string): PortSpec {
  const m = /^(?:([^:/]*):)?([^:/]+)(?:\/(.*))?$/.exec(text);
  if (!m) throw new UsageError(`--publish: '${text}' is not [PUBLISHED:]TARGET[/tcp|udp]`);
  const spec: Record<string, unknown> = { target: num(m[2]!, text) };
  if (m[1] !== undefined && m[1] !== '') spec.published = num(m[1], text);
  if (m[3] !== undefined) spec.protocol = m[3];
  return spec as PortSpec;
}

function parseLong(text: string): PortSpec {
  const spec: Record<string, unknown> = {};
  for (const part of text.split(',')) {
    const [k, v] = part.split('=') as [string, string | undefined];
    if (v === undefined) throw new UsageError(`--publish: '${part}' in '${text}' is not key=value`);
    if (k === 'target' || k === 'published') spec[k] = num(v, text);
    else if (k === 'protocol' || k === 'mode') spec[k] = v;
    else throw new UsageError(`--publish: unknown key '${k}' (use published, target, protocol, mode)`);
  }
  if (spec.target === undefined) throw new UsageError(`--publish: '${text}' has no target`);
  return spec as PortSpec;
}
