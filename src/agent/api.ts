/**
 * The agent's API routes: the contract of src/api served by the agent, on its local
 * socket and (in a cluster) on its mutual-TLS cluster address. Writes go through the
 * control plane (validated, claimed, stored); on a single node the reply waits for
 * the local reconciler so that when `service create` returns, its ports listen.
 */
import type { AttachedTask, Info, JoinResult, JoinToken, KeyRotation, NetworkView, NodeView, AdmitResult } from '../api/index.js';
import { DEFAULT_CIPHER } from '../control/constants.js';
import type { KeyRing, Network, Node, Task } from '../control/schema.js';
import { dispatch, route, type Caller, type Route } from './http.js';
import { AuthError, NotFoundError, RevisionMismatchError, ValidationError } from '../util/errors.js';
import type { Runtime } from './runtime.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventBus } from './events/bus.js';
import { eventStream, parseEventQuery } from './events/stream.js';
import { observedState } from './observed.js';

/** Cluster calls, served by the agent itself (they change its mode or need the CA key). */
export interface SwarmCalls {
  info(): Pick<Info, 'mode' | 'cluster'>;
  init(body: unknown): Promise<JoinResult>;
  join(body: unknown): Promise<JoinResult>;
  leave(body: unknown): Promise<{ node: string }>;
  joinToken(role: string, rotate: boolean): Promise<JoinToken>;
  /** The CA certificate, for a joining node to check against its token. */
  ca(): Promise<{ cert: string }>;
  admit(body: unknown): Promise<AdmitResult>;
  renew(caller: Caller, body: unknown): Promise<{ cert: string }>;
  removeNode(ref: string, force: boolean): Promise<Node>;
  setRole(ref: string, role: 'manager' | 'worker'): Promise<Node>;
  /** A manager tells this node its new role (with the CA key when it becomes a manager). */
  roleChanged(caller: Caller, body: unknown): Promise<{ node: string }>;
}

export interface ApiDeps {
  /** The runtime serving now (it changes when the node joins or leaves a cluster). */
  rt(): Runtime;
  swarm: SwarmCalls;
  version: string;
  /**
   * Reply to writes only after the local reconciler applied them (single node: when
   * `service create` returns, the port listens). In a cluster convergence is
   * asynchronous anyway (see /v1/wait), and replies wait for the store only.
   */
  applyBeforeReply(): boolean;
  /** The agent's event log, for `GET /v1/events`. */
  events: EventBus;
}

/** Serves `routes` to one request from `caller`. */
export type ApiHandler = (req: IncomingMessage, res: ServerResponse, caller: Caller) => void;

export function createApi(d: ApiDeps): ApiHandler {
  const plane = () => d.rt().plane;
  const mesh = () => d.rt().mesh;
  /** Lets the store's watch reach the view, then waits for the reconciler. */
  const settle = async <T>(result: T): Promise<T> => {
    if (!d.applyBeforeReply()) return result;
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    await d.rt().reconciler.kick();
    return result;
  };
  const observed = (t: Task) => {
    const s = mesh().backendStats().filter((b) => b.name === t.name);
    const state = observedState(s);
    return { ...t, observed: { state, active: s.reduce((n, b) => n + b.active, 0) } };
  };

  /**
   * Reads go to the store; when it is unreachable (NATS down) they are answered from
   * the agent's last known state, as the data plane keeps serving from it too.
   */
  const orView = async <T>(read: () => Promise<T>, fallback: () => T): Promise<T> => {
    try {
      return await read();
    } catch (err) {
      if ((err as { code?: string }).code === 'ESTORE') return fallback();
      throw err;
    }
  };
  const byName = <T extends { name: string }>(m: Map<string, T>) => [...m.values()].sort((a, b) => a.name.localeCompare(b.name));
  /** A node as this agent judges it: status and time since its last beat arrived here (never its own lastSeen). */
  const live = (n: Node): NodeView => {
    const lv = d.rt().view.liveness;
    const ago = lv.heardMsAgo(n.id);
    return { ...n, status: lv.status(n), ...(ago !== undefined && { heardMsAgo: Math.round(ago) }) };
  };

  /** A task of a namespace on this node with its interface as the namespace has it now. */
  const attached = async (t: Task): Promise<AttachedTask> => {
    const a = t.addresses[0];
    const overlay = d.rt().overlay;
    if (!t.netns || !a || t.node !== d.rt().nodeId || !overlay) return t;
    const i = await overlay.inspect({ taskId: t.id, netns: t.netns, network: a.network, ip: a.ip }).catch(() => undefined);
    if (!i) return t;
    return { ...t, attachment: { netns: t.netns, ifName: i.name, mac: i.mac, mtu: i.mtu, address: i.address, gateway: i.gateway, defaultRoute: i.defaultRoute } };
  };
  /** Removes a task; one of a namespace here is detached before the reply (the runtime may reuse the interface name at once). */
  const removeTask = async (ref: string): Promise<Task> => {
    const t = await plane().tasks.remove(ref);
    if (t.netns && t.node === d.rt().nodeId) await d.rt().overlay?.detach(t.id, t.netns);
    return t;
  };

  /** A network as inspect shows it: for an encrypted one, its ring's generations and this node's SAs (never a key). */
  const networkView = async (net: Network): Promise<NetworkView> => {
    if (!net.encrypted) return net;
    const ring = (await plane().keys.get(net.id))?.value;
    const sas = (d.rt().overlay?.securityAssociations() ?? []).filter((sa) => sa.network === net.id);
    return { ...net, encryption: encryptionView(net, ring, sas, Date.now()) };
  };

  const routes: Route[] = [
    route('GET', '/v1/info', async (): Promise<Info> => ({ node: d.rt().nodeId, version: d.version, listening: mesh().listening(), ...d.swarm.info() })),
    route('GET', '/metrics', () => d.rt().metrics.metrics()),

    route('GET', '/v1/services', () => orView(() => plane().services.list(), () => byName(d.rt().view.services))),
    route('POST', '/v1/services', async (r) => settle(await plane().services.create(r.body))),
    route('GET', '/v1/services/:ref', async (r) => (await plane().services.resolve(r.params[0]!)).value),
    route('PATCH', '/v1/services/:ref', async (r) => settle(await plane().services.update(r.params[0]!, r.body))),
    route('DELETE', '/v1/services/:ref', async (r) => settle(await plane().removeService(r.params[0]!))),
    route('GET', '/v1/services/:ref/tasks', async (r) => (await plane().tasks.list(r.params[0]!)).map(observed)),

    route('GET', '/v1/tasks', async (r) => (await orView(() => plane().tasks.list(r.query.get('service') ?? undefined), () => byName(d.rt().view.tasks))).map(observed)),
    route('POST', '/v1/tasks', async (r) => {
      const attach = d.rt().attach;
      if (r.body && typeof r.body === 'object' && 'netns' in r.body && !attach) throw new ValidationError('netns', 'the overlay is off on this node (agent --no-overlay)');
      const task = await plane().tasks.add(r.body);
      if (task.netns) await attach!(task);
      return settle(await attached(task));
    }),
    route('GET', '/v1/tasks/:ref', async (r) => observed((await plane().tasks.resolve(r.params[0]!)).value)),
    route('DELETE', '/v1/tasks/:ref', async (r) => settle(await removeTask(r.params[0]!))),

    // CNI attachments of this node, by the runtime's container id and interface name (src/cni).
    route('GET', '/v1/containers', async (r) => {
      const net = r.query.get('network');
      const id = net ? (await plane().networks.resolve(net)).value.id : undefined;
      return (await plane().tasks.list()).filter((t) => t.container && t.node === d.rt().nodeId && (!id || t.addresses[0]?.network === id));
    }),
    route('GET', '/v1/containers/:id/:ifname', async (r) => {
      const [t] = await plane().tasks.byContainer(r.params[0]!, r.params[1]!);
      if (!t) throw new NotFoundError(`no task of container ${r.params[0]} interface ${r.params[1]} on this node`);
      return attached(t);
    }),
    // Idempotent (CNI DEL): nothing there is success, an empty list. A removal racing another
    // (the dead-container sweep, a GC) loses with NotFound, or on NATS with EREVISION (the
    // entry's last revision is the other's delete): tried once more then, which finds it gone.
    route('DELETE', '/v1/containers/:id/:ifname', async (r) => {
      const removed: Task[] = [];
      for (const t of await plane().tasks.byContainer(r.params[0]!, r.params[1]!)) {
        for (let attempt = 0; ; attempt++) {
          try {
            removed.push(await removeTask(t.id));
            break;
          } catch (err) {
            if (err instanceof NotFoundError) break; // removed meanwhile
            if (!(err instanceof RevisionMismatchError) || attempt > 0) throw err;
          }
        }
      }
      return settle(removed);
    }),

    route('GET', '/v1/nodes', async () => (await orView(() => plane().nodes.list(), () => [...d.rt().view.nodes.values()])).filter((n) => n.status !== 'removed').map(live)),
    route('GET', '/v1/nodes/:ref', async (r) => {
      const n = (await plane().nodes.resolve(r.params[0]!)).value;
      if (n.status === 'removed') throw new NotFoundError(`node ${r.params[0]} not found`);
      return live(n);
    }),
    route('PATCH', '/v1/nodes/:ref', async (r) => settle(await plane().nodes.update(r.params[0]!, r.body))),

    route('GET', '/v1/networks', () => orView(() => plane().networks.list(), () => byName(d.rt().view.networks))),
    route('POST', '/v1/networks', async (r) => settle(await plane().networks.create(r.body))),
    route('GET', '/v1/networks/:ref', async (r) => networkView((await plane().networks.resolve(r.params[0]!)).value)),
    route('DELETE', '/v1/networks/:ref', async (r) => settle(await plane().removeNetwork(r.params[0]!))),
    // Key rotation is the managers' (as the rotator is): a worker's local users may not either.
    route(
      'POST',
      '/v1/networks/:ref/rotate-key',
      async (r): Promise<KeyRotation> => {
        if (d.swarm.info().cluster?.role === 'worker') throw new AuthError('this node is not a manager: run this on a manager');
        const { network, gen } = await plane().keys.rotate(r.params[0]!);
        return settle({ network, gen });
      },
      'manager',
    ),

    // Long-poll until this agent has applied a service (it is in the local view and its
    // first published port listens): lets tools measure cluster convergence.
    route('GET', '/v1/wait', async (r) => {
      const name = r.query.get('service') ?? '';
      const deadline = Date.now() + Math.min(Number(r.query.get('timeout') ?? 10000) || 10000, 60000);
      const applied = () => {
        const svc = [...d.rt().view.services.values()].find((s) => s.name === name);
        const port = svc?.ports[0];
        return !!svc && (!port || port.mode === 'host' || mesh().listening().some((k) => k.startsWith(`${port.protocol}/`) && k.endsWith(`:${port.published}`)));
      };
      while (!applied()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new NotFoundError(`service ${name} not applied on this node within the timeout`);
        await d.rt().reconciler.nextPass(Math.min(left, 1000));
      }
      return { service: name, node: d.rt().nodeId };
    }),
    route('GET', '/v1/events', async (r) => eventStream(d.events, parseEventQuery(r.query))),
    route('GET', '/v1/conns', async (r) => mesh().conns(r.query.get('service') ?? undefined)),

    route('DELETE', '/v1/nodes/:ref', async (r) => d.swarm.removeNode(r.params[0]!, r.query.get('force') === '1'), 'manager'),
    route('POST', '/v1/nodes/:ref/promote', async (r) => d.swarm.setRole(r.params[0]!, 'manager'), 'manager'),
    route('POST', '/v1/nodes/:ref/demote', async (r) => d.swarm.setRole(r.params[0]!, 'worker'), 'manager'),

    // Changing this node's membership: only its local users may. What needs the CA key
    // (tokens, removing, promoting, demoting nodes): managers (or a manager's local users).
    route('POST', '/v1/swarm/init', async (r) => d.swarm.init(r.body), 'local'),
    route('POST', '/v1/swarm/join', async (r) => d.swarm.join(r.body), 'local'),
    route('POST', '/v1/swarm/leave', async (r) => d.swarm.leave(r.body), 'local'),
    route('GET', '/v1/swarm/join-token/:role', async (r) => d.swarm.joinToken(r.params[0]!, false), 'manager'),
    route('POST', '/v1/swarm/join-token/:role/rotate', async (r) => d.swarm.joinToken(r.params[0]!, true), 'manager'),
    // A joining node has no certificate yet: the CA (checked against its token) and admission.
    route('GET', '/v1/swarm/ca', async () => d.swarm.ca(), 'public'),
    route('POST', '/v1/swarm/admit', async (r) => d.swarm.admit(r.body), 'public'),
    route('POST', '/v1/swarm/renew', async (r) => d.swarm.renew(r.caller, r.body)),
    route('POST', '/v1/swarm/role', async (r) => d.swarm.roleChanged(r.caller, r.body), 'manager'),
  ];
  return (req, res, caller) => void dispatch(routes, req, res, caller);
}

/** What inspect shows of a key ring: generations, ages, which is primary; the keys themselves never. */
export function encryptionView(net: Network, ring: KeyRing | undefined, sas: NonNullable<NetworkView['encryption']>['sas'], now: number): NonNullable<NetworkView['encryption']> {
  return {
    cipher: ring?.cipher ?? net.cipher ?? DEFAULT_CIPHER,
    ...(ring && { primary: ring.primary }),
    keys: (ring?.keys ?? []).map((k) => ({ gen: k.gen, createdAt: k.createdAt, ageSeconds: Math.max(0, Math.floor((now - k.createdAt) / 1000)), primary: k.gen === ring!.primary })),
    sas: sas.map((sa) => ({ network: sa.network, gen: sa.gen, dir: sa.dir, spi: sa.spi, peer: sa.peer, seq: sa.seq })).sort((a, b) => a.dir.localeCompare(b.dir) || a.peer.localeCompare(b.peer) || a.gen - b.gen),
  };
}
