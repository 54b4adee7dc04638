/**
 * `ports:` items in compose's two syntaxes, checked, to one long form each:
 *
 *   short   80 | "80" | "8080:80" | "8080:80/udp" | "127.0.0.1:8080:80" | "[::1]:8080:80"
 *           "8080-8081:80-81" (a range: one port each) | "80-81"
 *           ([[IP:]PUBLISHED:]TARGET[/PROTOCOL], docker/go-connections nat.ParsePortSpec)
 *   long    { target: 80, published: 8080, protocol: udp, mode: host, host_ip: ... }
 *
 * A host IP is ignored with a note: published ports listen on every node's addresses
 * (swarm's ingress does the same). Every problem is an error at the item's path.
 */
import { isIP } from 'node:net';
import { failAt } from './errors.js';
import type { Notes } from './notes.js';
import { isMapNode, type Node, type NodeMap } from './tree.js';

export interface PortEntry {
  target: number;
  /** Absent: auto-assigned by the agent (30000-32767), as swarm does for "80". */
  published?: number;
  protocol: 'tcp' | 'udp';
  mode: 'ingress' | 'host';
  hostIp?: string;
}

const PORT_MIN = 1;
const PORT_MAX = 65535;
/** ServiceSpec takes 64 ports: a range beyond that is a mistake, not a wish for 1000 listeners. */
const MAX_PORTS = 64;
const PROTOCOLS = ['tcp', 'udp'] as const;
const MODES = ['ingress', 'host'] as const;
/** Addresses that mean "every address": no note. */
const ANY_ADDRESS = new Set(['', '0.0.0.0', '::']);
const SHORT_SYNTAX = '[[IP:]PUBLISHED:]TARGET[/tcp|udp]';

export function parsePort(item: Node, notes: Notes): PortEntry[] {
  const entries = isMapNode(item) ? [parseLong(item, item.value)] : parseShort(item);
  for (const e of entries) if (e.hostIp !== undefined && !ANY_ADDRESS.has(e.hostIp)) notes.unsupport(`${item.source.path} (host IP ${e.hostIp})`);
  return entries;
}

/** The identity compose merges ports by (13-merge.md "unique resources": ip, target, published, protocol). */
export function portKey(p: PortEntry): string {
  return `${p.hostIp ?? ''}:${p.published ?? ''}:${p.target}/${p.protocol}`;
}

function parseShort(item: Node): PortEntry[] {
  const fail = (problem: string) => failAt(item.source, problem);
  if (typeof item.value === 'number') return [{ target: port(String(item.value), 'target', fail), protocol: 'tcp', mode: 'ingress' }];
  if (typeof item.value !== 'string') throw fail(`must be ${SHORT_SYNTAX} or a mapping (target:, published:...)`);
  const text = item.value.trim();
  const slash = text.lastIndexOf('/');
  const protocol = protocolOf(slash < 0 ? 'tcp' : text.slice(slash + 1), fail);
  const { ip, published, target } = split(slash < 0 ? text : text.slice(0, slash));
  if (ip !== undefined && !ANY_ADDRESS.has(ip) && !isIP(ip)) throw fail(`${JSON.stringify(text)} is not a port (${SHORT_SYNTAX}): ${ip} is not an IP address`);
  const targets = range(target, 'target', fail);
  const publisheds = published === '' ? undefined : range(published, 'published', fail);
  if (publisheds && publisheds.length !== targets.length) throw fail(`${JSON.stringify(text)}: the published range and the target range must have the same length`);
  return targets.map((t, i) => ({
    target: t,
    ...(publisheds && { published: publisheds[i]! }),
    protocol,
    mode: 'ingress' as const,
    ...(ip !== undefined && { hostIp: ip }),
  }));
}

/** `[ip:][published:]target`; an IPv6 address in brackets, or bare with its colons (as nat.splitParts). */
function split(text: string): { ip?: string; published: string; target: string } {
  const parts = text.split(':');
  const target = parts.pop()!;
  const published = parts.pop() ?? '';
  if (!parts.length) return { published, target };
  const ip = parts.join(':');
  return { ip: ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip, published, target };
}

function parseLong(item: Node, m: NodeMap): PortEntry {
  const fail = (problem: string) => failAt(item.source, problem);
  const text = (key: string): string | undefined => {
    const v = m.get(key)?.value;
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' && typeof v !== 'number') throw fail(`${key} must be a port number`);
    return String(v).trim();
  };
  const target = text('target');
  if (target === undefined) throw fail('target is required');
  const published = text('published');
  if (published?.includes('-')) throw fail(`published port range ${published} is not supported: one port per item (or the short syntax "8080-8081:80-81")`);
  const hostIp = text('host_ip');
  return {
    target: port(target, 'target', fail),
    ...(published !== undefined && published !== '' && { published: port(published, 'published', fail) }),
    protocol: protocolOf(text('protocol') ?? 'tcp', fail),
    mode: oneOf(text('mode') ?? 'ingress', MODES, 'mode', fail),
    ...(hostIp !== undefined && { hostIp }),
  };
}

function range(text: string, what: string, fail: (p: string) => Error): number[] {
  const m = /^([^-]+)-([^-]+)$/.exec(text);
  if (!m) return [port(text, what, fail)];
  const [from, to] = [port(m[1]!, what, fail), port(m[2]!, what, fail)];
  if (to < from) throw fail(`${what} port range ${text} is backwards`);
  if (to - from + 1 > MAX_PORTS) throw fail(`${what} port range ${text} has ${to - from + 1} ports (a service has at most ${MAX_PORTS})`);
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function port(text: string, what: string, fail: (p: string) => Error): number {
  if (!/^\d+$/.test(text)) throw fail(`${what} port ${JSON.stringify(text)} is not a number`);
  const n = Number(text);
  if (n < PORT_MIN || n > PORT_MAX) throw fail(`${what} port ${n} is out of range (${PORT_MIN}-${PORT_MAX})`);
  return n;
}

function protocolOf(text: string, fail: (p: string) => Error): PortEntry['protocol'] {
  const p = text.toLowerCase();
  if (p === 'sctp') throw fail('protocol sctp is not supported (tcp or udp)');
  return oneOf(p, PROTOCOLS, 'protocol', fail);
}

function oneOf<T extends string>(v: string, allowed: readonly T[], what: string, fail: (p: string) => Error): T {
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw fail(`${what} ${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
}
