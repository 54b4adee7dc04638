/** Upstream resolvers: given on the command line, else the host's /etc/resolv.conf (resolv.conf(5)). */
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import type { Upstream } from './forward.js';

/** Parses `IP[:PORT],...`; undefined entries are rejected by the caller. */
export function parseUpstreams(text: string): Upstream[] | undefined {
  const out: Upstream[] = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([\d.]+)(?::(\d{1,5}))?$/.exec(part);
    if (!m || !isIPv4(m[1]!) || (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535))) return undefined;
    out.push({ host: m[1]!, port: m[2] ? Number(m[2]) : 53 });
  }
  return out;
}

/** IPv4 nameservers of resolv.conf, minus `self` (never forward to ourselves). */
export function systemUpstreams(self: { host: string; port: number }, path = '/etc/resolv.conf'): Upstream[] {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => /^\s*nameserver\s+([\d.]+)\s*$/.exec(l)?.[1])
    .filter((ip): ip is string => !!ip && isIPv4(ip))
    .map((host) => ({ host, port: 53 }))
    .filter((u) => !(u.host === self.host && u.port === self.port));
}
