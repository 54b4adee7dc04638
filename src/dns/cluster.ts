/**
 * Cluster records from the control-plane view:
 *   <service>            A: VIP on the client's networks (vip mode), or healthy task IPs rotated (dnsrr)
 *   <alias>              a service's alias on network N: as its name, but only on N (Docker's network aliases)
 *   tasks.<service|alias> A: every running task IP the client can reach (an alias's: on its network)
 *   <task name>          A: the task's IP
 *   <task alias>         A: the IPs of the tasks with that alias on the client's networks
 *   d.c.b.a.in-addr.arpa PTR: VIP -> service, task IP -> task
 *   <service|alias>      SRV: one per published port (port = published, target = the name asked)
 *   _<target>._<proto>.<service|alias>  SRV for that port (RFC 2782 form, the target port as its name)
 * A name that exists without records of the asked type gets NODATA (NOERROR, no
 * answers, RFC 2308 section 2.2), never NXDOMAIN. Scoping: a client whose address is a
 * task IP sees only services on networks it shares; other clients (the node itself) see all.
 * Precedence when names coincide (control/aliases.ts refuses it on one network): a
 * service name, then service aliases, then task names, then task aliases.
 */
import type { Answer } from 'dns-packet';
import type { View } from '../control/view.js';
import type { Service, Task } from '../control/schema.js';
import { parseEndpoint } from '../control/schema.js';
import { RCODE } from './constants.js';
import type { Handler, Query, Reply } from './types.js';

export interface ClusterOptions {
  view: View;
  ttlSeconds: number;
}

type Scope = Set<string> | 'all';

/** A name of a service: its own (on every network it is on, `on` absent) or an alias (on the networks in `on`). */
interface Binding {
  svc: Service;
  on?: Set<string>;
}

/**
 * Lookup tables over the view, rebuilt lazily after a change: a query is a few map
 * lookups, not a scan of every service and task. Keys are lower-case (RFC 4343).
 */
class Index {
  services = new Map<string, Service>();
  /** alias -> the services with that alias -> the networks they have it on. */
  serviceAliases = new Map<string, Map<Service, Set<string>>>();
  tasks = new Map<string, Task>();
  taskAliases = new Map<string, Array<{ task: Task; network: string; ip: string }>>();
  tasksOf = new Map<string, Task[]>();
  networksOf = new Map<string, Set<string>>();
  /** Task IP -> its networks, sorted and joined: the answer cache's scope key. */
  scopeKeys = new Map<string, string>();

  constructor(view: View) {
    for (const svc of view.services.values()) {
      this.services.set(svc.name.toLowerCase(), svc);
      for (const n of svc.networks) {
        for (const alias of n.aliases ?? []) {
          const bySvc = getOr(this.serviceAliases, alias.toLowerCase(), () => new Map<Service, Set<string>>());
          getOr(bySvc, svc, () => new Set<string>()).add(n.network);
        }
      }
    }
    for (const t of view.tasks.values()) {
      this.tasks.set(t.name.toLowerCase(), t);
      getOr(this.tasksOf, t.service, () => []).push(t);
      for (const a of t.addresses) {
        getOr(this.networksOf, a.ip, () => new Set<string>()).add(a.network);
        for (const alias of a.aliases ?? []) getOr(this.taskAliases, alias.toLowerCase(), () => []).push({ task: t, network: a.network, ip: a.ip });
      }
    }
    for (const [ip, nets] of this.networksOf) this.scopeKeys.set(ip, [...nets].sort().join(','));
  }

  /** The service bindings of `name` the client may see: its service name if visible, else its aliases on the client's networks. */
  bindings(name: string, scope: Scope): Binding[] {
    const svc = this.services.get(name);
    if (svc && (scope === 'all' || svc.networks.some((n) => scope.has(n.network)))) return [{ svc }];
    const out: Binding[] = [];
    for (const [s, on] of this.serviceAliases.get(name) ?? []) if (scope === 'all' || [...on].some((n) => scope.has(n))) out.push({ svc: s, on });
    return out;
  }
}

function getOr<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) map.set(key, (v = make()));
  return v;
}

/** A cluster reply; `rotate`: dnsrr, the answers are served rotated by one on each query. */
export type ClusterReply = Extract<Reply, { answers: Answer[] }> & { rotate?: boolean };

/** The records of the view, answered synchronously (the answer cache and the handler share them). */
export class ClusterRecords {
  #index: Index | undefined;

  constructor(private readonly o: ClusterOptions) {
    o.view.onChange(() => (this.#index = undefined));
  }

  /** The networks a client may see, as a key: '' for the node (all), else its networks, sorted. */
  scopeKey(client: string): string {
    return this.#idx().scopeKeys.get(client) ?? '';
  }

  /** Every task IP with its scope key (clients not in it are the node: ''). */
  scopeKeys(): ReadonlyMap<string, string> {
    return this.#idx().scopeKeys;
  }

  /** Undefined: not a cluster name (the next handler decides). */
  resolve(q: Pick<Query, 'name' | 'type' | 'client'>): ClusterReply | undefined {
    const { o } = this;
    const idx = this.#idx();
    const scope: Scope = idx.networksOf.get(q.client) ?? 'all';
    const visible = (networks: string[]) => scope === 'all' || networks.some((n) => scope.has(n));
    const reply = (answers: Answer[], rotate = false): ClusterReply => ({ rcode: RCODE.NOERROR, answers, authoritative: true, ...(rotate && { rotate }) });
    const a = (ips: string[]) => (q.type === 'A' ? [...new Set(ips)].map((ip): Answer => ({ type: 'A', name: q.name, ttl: o.ttlSeconds, data: ip })) : []);
    // SRV targets: the service's name as stored, an alias as asked.
    const srvOf = (bs: Binding[], name: string, port?: { target: number; protocol: string }) =>
      bs.flatMap((b) => b.svc.ports.filter((p) => !port || (p.target === port.target && p.protocol === port.protocol)).map((p) => srvAnswer(q.name, b.on ? name : b.svc.name, p.published, o.ttlSeconds)));

    if (q.name.endsWith('.in-addr.arpa')) return ptr(o, q, visible);

    const srv = /^_(\d+)\._(tcp|udp)\.(.+)$/.exec(q.name);
    if (srv) {
      const answers = srvOf(idx.bindings(srv[3]!, scope), srv[3]!, { target: Number(srv[1]), protocol: srv[2]! });
      if (answers.length === 0) return undefined;
      return reply(q.type === 'SRV' ? answers : []);
    }
    const tasksPrefix = q.name.startsWith('tasks.') ? q.name.slice(6) : undefined;
    if (tasksPrefix !== undefined) {
      const bs = idx.bindings(tasksPrefix, scope);
      if (bs.length) return reply(a(bs.flatMap((b) => taskIps(idx.tasksOf.get(b.svc.id) ?? [], scope, b))));
    }
    const bs = idx.bindings(q.name, scope);
    if (bs.length) {
      if (q.type === 'SRV') return reply(srvOf(bs, q.name));
      if (bs.every((b) => b.svc.endpointMode === 'dnsrr')) return reply(a(bs.flatMap((b) => taskIps(idx.tasksOf.get(b.svc.id) ?? [], scope, b))), true);
      return reply(a(bs.flatMap((b) => (b.svc.endpointMode === 'dnsrr' ? taskIps(idx.tasksOf.get(b.svc.id) ?? [], scope, b) : vips(b, scope)))));
    }
    const t = idx.tasks.get(q.name);
    if (t) return reply(a(taskIps([t], scope, {})));
    const aliased = (idx.taskAliases.get(q.name) ?? []).filter((x) => x.task.state === 'running' && (scope === 'all' || scope.has(x.network)));
    if (aliased.length) return reply(a(aliased.map((x) => x.ip)));
    return undefined;
  }

  #idx(): Index {
    return (this.#index ??= new Index(this.o.view));
  }
}

/** The cluster as a handler of the chain (the slow path: queries the answer cache does not take). */
export function clusterHandler(from: ClusterRecords | ClusterOptions): Handler {
  const records = from instanceof ClusterRecords ? from : new ClusterRecords(from);
  let rotation = 0;
  return async (q) => {
    const r = records.resolve(q);
    if (!r?.rotate || r.answers.length < 2) return r;
    const start = rotation++ % r.answers.length;
    return { ...r, answers: [...r.answers.slice(start), ...r.answers.slice(0, start)] };
  };
}

function srvAnswer(name: string, target: string, port: number, ttl: number): Answer {
  return { type: 'SRV', name, ttl, data: { priority: 0, weight: 0, port, target } };
}

/** A binding's VIPs on the networks the client shares with it. */
function vips(b: Binding, scope: Scope): string[] {
  return b.svc.networks.filter((n) => n.vip && (scope === 'all' || scope.has(n.network)) && (!b.on || b.on.has(n.network))).map((n) => n.vip!);
}

/**
 * Running tasks' addresses the client can reach: overlay IPs on its networks (and on
 * the alias's, for an alias), or endpoint IPs for node clients asking a service's name.
 */
function taskIps(tasks: Task[], scope: Scope, b: { on?: Set<string> }): string[] {
  const out: string[] = [];
  for (const t of tasks) {
    if (t.state !== 'running') continue;
    for (const a of t.addresses) if ((scope === 'all' || scope.has(a.network)) && (!b.on || b.on.has(a.network))) out.push(a.ip);
    if (scope === 'all' && !b.on && t.addr) out.push(parseEndpoint(t.addr)!.ip);
  }
  return [...new Set(out)];
}

function ptr(o: ClusterOptions, q: Pick<Query, 'name' | 'type'>, visible: (networks: string[]) => boolean): ClusterReply | undefined {
  const parts = q.name.slice(0, -'.in-addr.arpa'.length).split('.');
  if (parts.length !== 4) return undefined;
  const ip = parts.reverse().join('.');
  const answer = (target: string): ClusterReply => ({
    rcode: RCODE.NOERROR,
    authoritative: true,
    answers: q.type === 'PTR' ? [{ type: 'PTR', name: q.name, ttl: o.ttlSeconds, data: target }] : [],
  });
  for (const svc of o.view.services.values() as Iterable<Service>) {
    const n = svc.networks.find((x) => x.vip === ip);
    if (n && visible([n.network])) return answer(svc.name);
  }
  for (const t of o.view.tasks.values()) {
    const a = t.addresses.find((x) => x.ip === ip);
    if (a && visible([a.network])) return answer(t.name);
  }
  return undefined;
}
