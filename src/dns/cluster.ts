/**
 * Cluster records from the control-plane view:
 *   <service>            A: VIP on the client's networks (vip mode), or healthy task IPs rotated (dnsrr)
 *   tasks.<service>      A: every running task IP the client can reach
 *   <task name>          A: the task's IP
 *   d.c.b.a.in-addr.arpa PTR: VIP -> service, task IP -> task
 *   <service>            SRV: one per published port (port = published, target = the service)
 *   _<target>._<proto>.<service>  SRV for that port (RFC 2782 form, the target port as its name)
 * A name that exists without records of the asked type gets NODATA (NOERROR, no
 * answers, RFC 2308 section 2.2), never NXDOMAIN. Scoping: a client whose address is a
 * task IP sees only services on networks it shares; other clients (the node itself) see all.
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

/**
 * Lookup tables over the view, rebuilt lazily after a change: a query is a few map
 * lookups, not a scan of every service and task.
 */
class Index {
  services = new Map<string, Service>();
  tasks = new Map<string, Task>();
  tasksOf = new Map<string, Task[]>();
  networksOf = new Map<string, Set<string>>();

  constructor(view: View) {
    for (const svc of view.services.values()) this.services.set(svc.name.toLowerCase(), svc);
    for (const t of view.tasks.values()) {
      this.tasks.set(t.name.toLowerCase(), t);
      const list = this.tasksOf.get(t.service) ?? [];
      list.push(t);
      this.tasksOf.set(t.service, list);
      for (const a of t.addresses) {
        const set = this.networksOf.get(a.ip) ?? new Set<string>();
        set.add(a.network);
        this.networksOf.set(a.ip, set);
      }
    }
  }
}

export function clusterHandler(o: ClusterOptions): Handler {
  let rotation = 0;
  let index: Index | undefined;
  o.view.onChange(() => (index = undefined));
  return async (q) => {
    const { view } = o;
    const idx = (index ??= new Index(view));
    const scope: Set<string> | 'all' = idx.networksOf.get(q.client) ?? 'all';
    const visible = (networks: string[]) => scope === 'all' || networks.some((n) => scope.has(n));
    const reply = (answers: Answer[]): Reply => ({ rcode: RCODE.NOERROR, answers, authoritative: true });
    const a = (name: string, ips: string[]) => (q.type === 'A' ? ips.map((ip): Answer => ({ type: 'A', name, ttl: o.ttlSeconds, data: ip })) : []);

    if (q.name.endsWith('.in-addr.arpa')) return ptr(o, q, visible);

    const srv = /^_(\d+)\._(tcp|udp)\.(.+)$/.exec(q.name);
    if (srv) {
      const found = idx.services.get(srv[3]!);
      const svc = found && visible(found.networks.map((n) => n.network)) ? found : undefined;
      const ports = svc?.ports.filter((p) => p.target === Number(srv[1]) && p.protocol === srv[2]) ?? [];
      if (!svc || ports.length === 0) return undefined;
      return reply(q.type === 'SRV' ? ports.map((p) => srvAnswer(q.name, svc.name, p.published, o.ttlSeconds)) : []);
    }
    const tasksPrefix = q.name.startsWith('tasks.') ? q.name.slice(6) : undefined;
    const svc = idx.services.get(tasksPrefix ?? q.name);
    if (svc && visible(svc.networks.map((n) => n.network))) {
      const name = svc.name.toLowerCase();
      const ips = taskIps(idx.tasksOf.get(svc.id) ?? [], scope);
      if (name === tasksPrefix) return reply(a(q.name, ips));
      if (q.type === 'SRV') return reply(svc.ports.map((p) => srvAnswer(q.name, svc.name, p.published, o.ttlSeconds)));
      if (svc.endpointMode === 'dnsrr') {
        const start = ips.length ? rotation++ % ips.length : 0;
        return reply(a(q.name, [...ips.slice(start), ...ips.slice(0, start)]));
      }
      const vips = svc.networks.filter((n) => n.vip && (scope === 'all' || scope.has(n.network))).map((n) => n.vip!);
      return reply(a(q.name, vips));
    }
    const t = idx.tasks.get(q.name);
    if (t) return reply(a(q.name, taskIps([t], scope)));
    return undefined;
  };
}

function srvAnswer(name: string, target: string, port: number, ttl: number): Answer {
  return { type: 'SRV', name, ttl, data: { priority: 0, weight: 0, port, target } };
}

/** Running tasks' addresses the client can reach: overlay IPs on its networks, or endpoint IPs for node clients. */
function taskIps(tasks: Task[], scope: Set<string> | 'all'): string[] {
  const out: string[] = [];
  for (const t of tasks) {
    if (t.state !== 'running') continue;
    for (const a of t.addresses) if (scope === 'all' || scope.has(a.network)) out.push(a.ip);
    if (scope === 'all' && t.addr) out.push(parseEndpoint(t.addr)!.ip);
  }
  return [...new Set(out)];
}

function ptr(o: ClusterOptions, q: Query, visible: (networks: string[]) => boolean): Reply | undefined {
  const parts = q.name.slice(0, -'.in-addr.arpa'.length).split('.');
  if (parts.length !== 4) return undefined;
  const ip = parts.reverse().join('.');
  const answer = (target: string): Reply => ({
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
