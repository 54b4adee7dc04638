/**
 * Stage 4: one file's used keys in one form each, so that files merge as compose merges
 * them (compose-go transform/canonical.go does the same before its merge):
 *
 *   services.*.ports          items -> a mapping keyed by port identity, long form
 *   services.*.networks       [a, b] -> {a: null, b: null}
 *   services.*.labels, services.*.deploy.labels, networks.*.labels
 *                             ["k=v", "k"] -> {k: "v", k: ""}; values as strings
 *   networks.*.external       {name: x} (legacy) -> external: true, name: x
 *
 * Each new node keeps the source of what it came from (a port from a range: the item).
 */
import { failAt } from './errors.js';
import type { Notes } from './notes.js';
import { parsePort, portKey, type PortEntry } from './ports.js';
import { childPath, isMapNode, isSeqNode, mapping, optionalMapping, scalar, sequence, type MapNode, type Node, type NodeMap } from './tree.js';
import type { Source } from '../types.js';

export function canonical(root: MapNode, notes: Notes): void {
  const services = optionalMapping(root.value.get('services'));
  for (const svc of services?.values() ?? []) {
    if (svc.tag === 'reset') continue; // removed by this file: its value does not matter
    const m = mapping(svc);
    replace(m, 'ports', (n) => ports(n, notes));
    replace(m, 'networks', serviceNetworks);
    replace(m, 'labels', labels);
    const deploy = optionalMapping(m.get('deploy'));
    if (deploy) replace(deploy, 'labels', labels);
  }
  const networks = optionalMapping(root.value.get('networks'));
  for (const net of networks?.values() ?? []) {
    const m = optionalMapping(net);
    if (!m) continue;
    replace(m, 'labels', labels);
    legacyExternal(m);
  }
}

/** The value at `key` in canonical form; null (and `!reset null`) stay as they are. */
function replace(m: NodeMap, key: string, to: (n: Node) => NodeMap): void {
  const n = m.get(key);
  if (!n || n.value === null) return;
  m.set(key, { value: to(n), source: n.source, ...(n.tag && { tag: n.tag }) });
}

function ports(n: Node, notes: Notes): NodeMap {
  const out: NodeMap = new Map();
  // Later items with the same identity replace earlier ones, as compose's merge does within a file too.
  for (const item of sequence(n)) for (const p of parsePort(item, notes)) out.set(portKey(p), portNode(p, item.source));
  return out;
}

function portNode(p: PortEntry, source: Source): Node {
  const fields: Array<[string, string | number | undefined]> = [['target', p.target], ['published', p.published], ['protocol', p.protocol], ['mode', p.mode], ['host_ip', p.hostIp]];
  return { value: new Map(fields.filter(([, v]) => v !== undefined).map(([k, v]) => [k, scalar(v!, source)])), source };
}

function serviceNetworks(n: Node): NodeMap {
  if (isMapNode(n)) {
    for (const entry of n.value.values()) if (entry.value !== null && !isMapNode(entry)) throw failAt(entry.source, 'must be a mapping (aliases:, ipv4_address:) or empty');
    return n.value;
  }
  const out: NodeMap = new Map();
  for (const item of sequence(n, 'a list of network names or a mapping')) {
    if (typeof item.value !== 'string' || item.value === '') throw failAt(item.source, 'must be a network name');
    out.set(item.value, scalar(null, item.source));
  }
  return out;
}

function labels(n: Node): NodeMap {
  const out: NodeMap = new Map();
  if (isSeqNode(n)) {
    for (const item of n.value) {
      if (typeof item.value !== 'string') throw failAt(item.source, 'must be "key=value"');
      const eq = item.value.indexOf('=');
      const key = eq < 0 ? item.value : item.value.slice(0, eq);
      if (!key) throw failAt(item.source, 'a label needs a key ("key=value")');
      out.set(key, scalar(eq < 0 ? '' : item.value.slice(eq + 1), item.source));
    }
    return out;
  }
  for (const [key, v] of mapping(n, 'a mapping or a list of "key=value"')) {
    if (isMapNode(v) || isSeqNode(v)) throw failAt(v.source, 'a label value must be a string');
    out.set(key, { ...scalar(v.value === null ? '' : String(v.value), v.source), ...(v.tag && { tag: v.tag }) });
  }
  return out;
}

/** `external: {name: x}` (compose file format 3.0-3.4) is `name: x` + `external: true`. */
function legacyExternal(m: NodeMap): void {
  const ext = m.get('external');
  if (!ext || !isMapNode(ext)) return;
  const extName = ext.value.get('name');
  const name = m.get('name');
  if (extName && name && extName.value !== name.value) throw failAt(extName.source, `conflicts with ${name.source.path} (${String(name.value)}): give name only`);
  if (extName && !name) m.set('name', extName);
  m.set('external', scalar(true, ext.source));
}
