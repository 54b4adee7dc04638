/**
 * A stack deploy decided before anything is written: the whole StackSpec is checked
 * against what the agent holds now (networks, services, tasks read through the API),
 * and the outcome is either one PlanError (nothing will be written) or the list of
 * writes. `docker stack deploy` checks less up front and can leave a half-deployed
 * stack behind a bad file; here a file that cannot deploy changes nothing.
 *
 * Fields in PlanError are StackSpec paths (`services[2].ports[1].published`,
 * `networks[0].subnet`); the CLI maps them back to the compose file and its path.
 */
import { validateSpec, type Network, type NetworkSpec, type Service, type ServiceSpec, type ServiceUpdate, type Task } from '../api/index.js';
import { aliasClash, contains, formatCidr, intToIp, ipToInt, normalizePorts, overlaps, parseCidr, type Cidr } from '../api/index.js';
import { SwarmnetError, ValidationError } from '../util/errors.js';
import { serviceDiff } from './diff.js';
import { STACK_LABEL } from './labels.js';
import type { StackSpec } from './types.js';

export interface Current {
  networks: Network[];
  services: Service[];
  tasks: Task[];
}

export interface Plan {
  /**
   * Networks to create: those with a subnet first (an allocated subnet could take the
   * range a later one names), each group in file order.
   */
  createNetworks: Array<{ index: number; spec: NetworkSpec }>;
  createServices: Array<{ index: number; spec: ServiceSpec }>;
  /** In an order where a published port moving between two services is freed before it is claimed. */
  updateServices: Array<{ index: number; name: string; update: ServiceUpdate }>;
  unchanged: string[];
  /** Services of the stack no longer in the file (removed with --prune, else left with a warning). */
  removeServices: Service[];
  warnings: string[];
}

/** Why the stack cannot deploy; `field` is a StackSpec path. */
export class PlanError extends SwarmnetError {
  override readonly code = 'EPLAN';
  constructor(
    readonly field: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${problem}`, options);
  }
}

const ns = (labels: Record<string, string> | undefined) => labels?.[STACK_LABEL];

export function planStack(stack: StackSpec, cur: Current, o: { prune: boolean }): Plan {
  const plan: Plan = { createNetworks: [], createServices: [], updateServices: [], unchanged: [], removeServices: [], warnings: [] };
  const nets = planNetworks(stack, cur, plan);
  const wanted = new Set(stack.services.map((s) => s.spec.name));
  const gone = cur.services.filter((s) => ns(s.labels) === stack.name && !wanted.has(s.name));
  if (o.prune) plan.removeServices = gone;
  else if (gone.length) plan.warnings.push(`not in the file (kept; --prune removes them): ${gone.map((s) => s.name).join(', ')}`);
  // What stays around the stack: services outside it, and its own left-overs when not pruned.
  const others = cur.services.filter((s) => !wanted.has(s.name) && !(o.prune && gone.includes(s)));
  const planned: Service[] = [];
  const portHolder = new Map<string, string>();
  for (const s of others) for (const p of s.ports) portHolder.set(`${p.protocol}/${p.published}`, s.name);

  stack.services.forEach((ss, i) => {
    const at = `services[${i}]`;
    const spec = check(() => validateSpec.service.assert(ss.spec), at);
    // The agent refuses a published port given twice in one service (serviceDiff relies on it too).
    check(() => normalizePorts(spec.ports ?? [], 'ports'), at);
    const existing = cur.services.find((s) => s.name === spec.name);
    const owner = existing && ns(existing.labels);
    if (existing && owner !== undefined && owner !== stack.name) throw new PlanError(`${at}.name`, `service ${spec.name} belongs to stack ${owner}`);
    if (existing && owner === undefined) throw new PlanError(`${at}.name`, `service ${spec.name} exists and is not part of a stack: remove it or rename the service`);
    (spec.ports ?? []).forEach((p, j) => {
      if (p.published === undefined) return;
      const holder = portHolder.get(`${p.protocol ?? 'tcp'}/${p.published}`);
      if (holder) throw new PlanError(`${at}.ports[${j}].published`, `port ${p.published}/${p.protocol ?? 'tcp'} is already published by service ${holder}`);
    });
    const attached = (spec.networks ?? []).map((item, j) => {
      const n = typeof item === 'string' ? { target: item } : item;
      const net = nets.get(n.target);
      if (!net) throw new PlanError(`${at}.networks[${j}]`, `network ${n.target} not found`);
      if (n.ipv4Address !== undefined && spec.endpointMode === 'dnsrr') throw new PlanError(`${at}.networks[${j}].ipv4Address`, 'a dnsrr service has no virtual IP to fix (endpoint_mode vip)');
      if (n.ipv4Address !== undefined) checkAddress(n.ipv4Address, net, { self: existing?.id ?? `new:${spec.name}`, services: [...cur.services, ...planned], tasks: cur.tasks }, `${at}.networks[${j}].ipv4Address`);
      return { network: net.id, networkName: n.target, ...(n.aliases && { aliases: n.aliases }), ...(n.ipv4Address && { vip: n.ipv4Address }) };
    });
    const candidate = { ...(existing && { id: existing.id }), name: spec.name, networks: attached };
    const clash = aliasClash([...others, ...planned], cur.tasks.filter((t) => !existing || t.service !== existing.id), candidate);
    if (clash) throw new PlanError(`${at}.${clash.field}`, clash.message);
    planned.push({ ...(existing ?? pseudoService(spec.name)), networks: attached.map(({ networkName: _, ...n }) => n), labels: spec.labels ?? {} });

    if (!existing) return plan.createServices.push({ index: i, spec });
    const update = serviceDiff(existing, spec, (ref) => nets.get(ref)?.id);
    if (update) plan.updateServices.push({ index: i, name: spec.name, update });
    else plan.unchanged.push(spec.name);
  });
  plan.updateServices = portOrder(plan.updateServices, cur.services);
  return plan;
}

interface NetRef {
  id: string;
  subnet?: Cidr;
  gateway?: string;
}

/** Stack networks checked and keyed by every name a service may use for them. */
function planNetworks(stack: StackSpec, cur: Current, plan: Plan): Map<string, NetRef> {
  const byName = new Map<string, NetRef>();
  const ref = (n: Network): NetRef => ({ id: n.id, subnet: parseCidr(n.subnet), gateway: n.gateway });
  for (const n of cur.networks) {
    byName.set(n.id, ref(n));
    byName.set(n.name, ref(n));
  }
  const taken: Array<{ name: string; cidr: Cidr }> = cur.networks.map((n) => ({ name: n.name, cidr: parseCidr(n.subnet)! }));
  stack.networks.forEach((sn, i) => {
    const at = `networks[${i}]`;
    // Two keys naming one network (`name:`) would create it twice: the second write fails.
    const first = stack.networks.findIndex((o) => o.name === sn.name && !o.external);
    if (!sn.external && first < i) throw new PlanError(`${at}.name`, `network ${sn.name} is also the name of networks.${stack.networks[first]!.key}: give each network its own name`);
    const existing = cur.networks.find((n) => n.name === sn.name);
    if (sn.external) {
      if (!existing) throw new PlanError(at, `external network ${sn.name} not found: create it first (swarmnet network create ${sn.name})`);
      return;
    }
    const spec = check(() => validateSpec.network.assert(sn.spec), at);
    if (existing) {
      // As docker: an existing network is used as it is (a network cannot change under its tasks).
      const differs = (spec.subnet !== undefined && spec.subnet !== existing.subnet) || (spec.encrypted ?? false) !== existing.encrypted;
      if (differs) plan.warnings.push(`network ${sn.name} exists with other settings; it is used as it is (remove the stack to re-create it)`);
      return;
    }
    const cidr = spec.subnet !== undefined ? parseCidr(spec.subnet) : undefined;
    if (spec.subnet !== undefined && !cidr) throw new PlanError(`${at}.subnet`, `${spec.subnet} is not a network address in CIDR form`);
    if (cidr) {
      const clash = taken.find((t) => overlaps(t.cidr, cidr));
      if (clash) throw new PlanError(`${at}.subnet`, `${spec.subnet} overlaps network ${clash.name} (${formatCidr(clash.cidr)})`);
      taken.push({ name: sn.name, cidr });
    }
    byName.set(sn.name, { id: `new:${sn.name}`, ...(cidr && { subnet: cidr, gateway: intToIp(cidr.base + 1) }) });
    plan.createNetworks.push({ index: i, spec });
  });
  // Array.prototype.sort is stable: file order within each group.
  plan.createNetworks.sort((a, b) => Number(a.spec.subnet === undefined) - Number(b.spec.subnet === undefined));
  return byName;
}

/**
 * A fixed service address must be a free host address of the network's subnet: not a
 * VIP of another service (already there, or planned earlier in this stack: `services`
 * holds both; `self` is the candidate's id), nor a task's address.
 */
function checkAddress(ip: string, net: NetRef, o: { self: string; services: Service[]; tasks: Task[] }, field: string): void {
  // As docker: a fixed address needs a subnet the file names; one the agent allocates is not known before it is written.
  if (!net.subnet) throw new PlanError(field, `${ip}: a fixed address needs the network's subnet given (ipam.config[].subnet)`);
  const n = ipToInt(ip);
  if (!contains(net.subnet, ip)) throw new PlanError(field, `${ip} is not in the network's subnet ${formatCidr(net.subnet)}`);
  if (n === net.subnet.base || n === net.subnet.base + net.subnet.size - 1 || ip === net.gateway) throw new PlanError(field, `${ip} is the network, broadcast or gateway address of ${formatCidr(net.subnet)}`);
  const vipOwner = o.services.find((s) => s.id !== o.self && s.networks.some((x) => x.network === net.id && x.vip === ip));
  const taskOwner = o.tasks.find((t) => t.addresses.some((a) => a.network === net.id && a.ip === ip));
  const owner = vipOwner?.name ?? taskOwner?.name;
  if (owner) throw new PlanError(field, `${ip} is already used by ${owner}`);
}

/** An update that claims a port another planned update gives up goes after it. */
function portOrder(updates: Plan['updateServices'], services: Service[]): Plan['updateServices'] {
  const holds = (name: string) => new Set((services.find((s) => s.name === name)?.ports ?? []).map((p) => `${p.protocol}/${p.published}`));
  const claims = (u: Plan['updateServices'][number]) => (u.update.ports ?? []).filter((p) => p.published !== undefined).map((p) => `${p.protocol ?? 'tcp'}/${p.published}`);
  const out: Plan['updateServices'] = [];
  const left = [...updates];
  while (left.length) {
    const next = left.findIndex((u) => !claims(u).some((k) => left.some((v) => v !== u && holds(v.name).has(k))));
    if (next < 0) throw new PlanError(`services[${left[0]!.index}].ports`, `published ports swap between ${left.map((u) => u.name).join(' and ')}: deploy the change in two steps`);
    out.push(left.splice(next, 1)[0]!);
  }
  return out;
}

function check<T>(fn: () => T, prefix: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ValidationError) throw new PlanError(err.field ? `${prefix}.${err.field}` : prefix, err.problem);
    throw err;
  }
}

function pseudoService(name: string): Service {
  return { id: `new:${name}`, name, endpointMode: 'vip', ports: [], networks: [], lb: 'rr', proxyProtocol: 'none', labels: {}, createdAt: 0, updatedAt: 0 };
}
