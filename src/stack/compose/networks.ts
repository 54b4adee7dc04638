/**
 * Stage 6a: a top-level `networks:` entry to a StackNetwork, as docker stack deploy
 * converts it (docker/cli cli/compose/convert/compose.go Networks): named
 * `STACK_key` unless it has `name:`, labelled with the stack, external ones taken by
 * their `name:` or key as they are.
 */
import type { NetworkSpec } from '../../api/index.js';
import type { Source, StackNetwork } from '../types.js';
import { failAt } from './errors.js';
import type { Notes } from './notes.js';
import { mapping, optionalMapping, sequence, type Node, type NodeMap } from './tree.js';
import { checkSpec } from './validate.js';
import { bool, stackLabels, text } from './values.js';

/** What a network may say beside `external: true` (compose-spec 06-networks.md: "all other attributes ... rejected"). */
const EXTERNAL_KEYS = new Set(['external', 'name']);

export function convertNetwork(key: string, node: Node, stack: string, notes: Notes): StackNetwork {
  const m = optionalMapping(node) ?? new Map<string, Node>();
  const sources: Record<string, Source> = {};
  const nameNode = m.get('name');
  const external = m.has('external') && bool(m.get('external')!);
  if (nameNode) sources.name = nameNode.source;
  const name = nameNode ? text(nameNode) : external ? key : `${stack}_${key}`;
  if (external) {
    for (const [k, v] of m) if (!EXTERNAL_KEYS.has(k) && !k.startsWith('x-')) throw failAt(v.source, 'an external network takes no other key than name (it exists already, as it is)');
    return { key, name, external: true, source: node.source, sources };
  }
  const spec: NetworkSpec = { name, ...settings(m, sources, notes), labels: stackLabels([m.get('labels')], stack, sources) };
  const net: StackNetwork = { key, name, external: false, spec, source: node.source, sources };
  checkSpec(net);
  return net;
}

/** driver, driver_opts, ipam, attachable and the IP families, checked. */
function settings(m: NodeMap, sources: Record<string, Source>, notes: Notes): Partial<NetworkSpec> {
  const out: Partial<NetworkSpec> = {};
  const driver = m.get('driver');
  if (driver && text(driver) !== 'overlay') throw failAt(driver.source, `driver ${text(driver)} is not supported: swarmnet networks are overlay networks`);
  for (const [opt, v] of optionalMapping(m.get('driver_opts')) ?? []) {
    // As docker: the option's presence asks for encryption, whatever its value ("", "true").
    if (opt !== 'encrypted') notes.unsupport(v.source.path);
    else {
      out.encrypted = true;
      sources.encrypted = v.source;
    }
  }
  const ipam = optionalMapping(m.get('ipam'));
  const ipamDriver = ipam?.get('driver');
  if (ipamDriver && text(ipamDriver) !== 'default') notes.unsupport(`${ipamDriver.source.path} (${text(ipamDriver)})`);
  const configs = ipam?.get('config');
  (configs && configs.value !== null ? sequence(configs) : []).forEach((c, i) => {
    // One subnet per network: a second one is noted, not used.
    if (i > 0) return notes.unsupport(c.source.path);
    const subnet = mapping(c).get('subnet');
    if (!subnet) return;
    out.subnet = text(subnet);
    sources.subnet = subnet.source;
  });
  const attachable = m.get('attachable');
  if (attachable) {
    out.attachable = bool(attachable);
    sources.attachable = attachable.source;
  }
  refuseIf(m.get('internal'), true, 'internal networks are not supported: swarmnet does not cut a network off from the outside');
  refuseIf(m.get('enable_ipv6'), true, 'IPv6 is not supported: swarmnet networks are IPv4');
  refuseIf(m.get('enable_ipv4'), false, 'swarmnet networks are IPv4: enable_ipv4 cannot be false');
  return out;
}

function refuseIf(n: Node | undefined, value: boolean, problem: string): void {
  if (n && bool(n) === value) throw failAt(n.source, problem);
}
