/**
 * Stage 6b: a `services:` entry to a StackService, as docker stack deploy converts it
 * (docker/cli cli/compose/convert/service.go): named `STACK_key`, labelled with the
 * stack, on the networks it lists (or the stack's `default`), with its compose key as
 * an alias on each of them, which is how `web` resolves inside a stack. swarmnet's own
 * options come from `x-swarmnet`.
 */
import { isIPv4 } from 'node:net';
import type { PortSpec } from '../../api/index.js';
import type { Source, StackAttachment, StackNetwork, StackService, StackServiceSpec } from '../types.js';
import { failAt } from './errors.js';
import { mapping, optionalMapping, type Node, type NodeMap } from './tree.js';
import { checkSpec } from './validate.js';
import { durationMs, integer, stackLabels, strings, text } from './values.js';

/** The network a service's entry names (`default` included), or an error at `at`. */
export type NetworkResolver = (key: string, at: Source) => StackNetwork;

type HealthCheck = NonNullable<StackServiceSpec['healthCheck']>;

/** Health check fields the file leaves out: those of `service create --health-*`. */
const HEALTH_DEFAULTS: HealthCheck = { interval: 5000, timeout: 2000, retries: 3 };

export function convertService(key: string, node: Node, stack: string, network: NetworkResolver): StackService {
  const m = mapping(node);
  const deploy = optionalMapping(m.get('deploy'));
  const sources: Record<string, Source> = { name: node.source };
  const portSources: Source[] = [];
  const networkSources: Source[] = [];
  const ports: PortSpec[] = [...(optionalMapping(m.get('ports'))?.values() ?? [])].map((p) => {
    portSources.push(p.source);
    return portSpec(mapping(p));
  });
  const networks = attachments(key, m.get('networks'), node.source, network, { networkSources, sources });
  const spec: StackServiceSpec = {
    name: `${stack}_${key}`,
    ...endpointMode(deploy?.get('endpoint_mode'), sources),
    ports,
    networks,
    ...swarmnetOptions(m.get('x-swarmnet'), sources),
    labels: stackLabels([m.get('labels'), deploy?.get('labels')], stack, sources),
  };
  const svc: StackService = { key, spec, source: node.source, portSources, networkSources, sources };
  checkSpec(svc);
  return svc;
}

/** A canonical port (canonical.ts: checked, long form) to the API's PortSpec. */
function portSpec(p: NodeMap): PortSpec {
  const get = (k: string) => p.get(k)?.value;
  const published = get('published');
  return {
    protocol: get('protocol') as PortSpec['protocol'],
    target: get('target') as number,
    ...(typeof published === 'number' && { published }),
    mode: get('mode') as PortSpec['mode'],
  };
}

interface Out {
  networkSources: Source[];
  sources: Record<string, Source>;
}

function attachments(key: string, n: Node | undefined, service: Source, network: NetworkResolver, out: Out): StackAttachment[] {
  const entries = [...(optionalMapping(n) ?? [])];
  // As docker: a service that lists no network joins the stack's `default`.
  if (!entries.length) {
    out.networkSources.push(service);
    return [{ target: network('default', service).name, aliases: [key] }];
  }
  return entries.map(([netKey, entry], j) => {
    out.networkSources.push(entry.source);
    const target = network(netKey, entry.source).name;
    const m = optionalMapping(entry);
    const given = m?.has('aliases') ? strings(m.get('aliases')!) : [];
    given.forEach((a, k) => (out.sources[`networks[${j}].aliases[${k}]`] = a.source));
    const aliases = [...new Set([...given.map((a) => a.value), key])];
    const ip = m?.get('ipv4_address');
    if (ip && !isIPv4(text(ip))) throw failAt(ip.source, `${JSON.stringify(text(ip))} is not an IPv4 address`);
    if (ip) out.sources[`networks[${j}].ipv4Address`] = ip.source;
    return { target, aliases, ...(ip && { ipv4Address: text(ip) }) };
  });
}

function endpointMode(n: Node | undefined, sources: Record<string, Source>): Pick<StackServiceSpec, 'endpointMode'> {
  if (!n || n.value === null) return {};
  sources.endpointMode = n.source;
  // Lower-cased as docker does; the agent's schema then names the allowed values if it is neither.
  return { endpointMode: text(n).toLowerCase() as StackServiceSpec['endpointMode'] };
}

/**
 * `x-swarmnet: {scheduler, proxy_protocol, health_check: {interval, timeout, retries}}`;
 * values are checked by the agent's schema (checkSpec) with their compose paths.
 */
function swarmnetOptions(n: Node | undefined, sources: Record<string, Source>): Partial<StackServiceSpec> {
  const m = optionalMapping(n);
  if (!m) return {};
  const out: Partial<StackServiceSpec> = {};
  const option = (key: string, field: 'lb' | 'proxyProtocol') => {
    const v = m.get(key);
    if (!v) return;
    (out as Record<string, string>)[field] = text(v);
    sources[field] = v.source;
  };
  option('scheduler', 'lb');
  option('proxy_protocol', 'proxyProtocol');
  const health = m.get('health_check');
  const hm = optionalMapping(health);
  if (health && hm) {
    sources.healthCheck = health.source;
    // The compose keys are the HealthCheck fields' names.
    const field = (k: keyof HealthCheck, read: (n: Node) => number) => {
      const v = hm.get(k);
      if (v) sources[`healthCheck.${k}`] = v.source;
      return v ? read(v) : HEALTH_DEFAULTS[k];
    };
    out.healthCheck = { interval: field('interval', durationMs), timeout: field('timeout', durationMs), retries: field('retries', integer) };
  }
  return out;
}
