/**
 * The agent's HTTP API: the CLI's only way in. Writes go through the control plane
 * (validated, claimed, stored); the reply waits for the local reconciler so that
 * when `service create` returns on a single node, its ports already listen.
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { ControlPlane } from '../control/plane.js';
import type { Node, Task } from '../control/schema.js';
import type { Mesh } from '../mesh/index.js';
import { dispatch, route, type Route } from './http.js';
import { NotFoundError, ValidationError } from '../util/errors.js';
import type { Reconciler } from './reconciler.js';
import type { View } from '../control/view.js';

export interface ApiDeps {
  plane: ControlPlane;
  mesh: Mesh;
  reconciler: Reconciler;
  view: View;
  metrics: Registry;
  nodeId: string;
  version: string;
  /** A node silent for this long is shown as down, whatever it last wrote. */
  nodeTimeoutMs: number;
  /**
   * Reply to writes only after the local reconciler applied them (single node: when
   * `service create` returns, the port listens). In a cluster convergence is
   * asynchronous anyway (see /v1/wait), and replies wait for the store only.
   */
  applyBeforeReply: boolean;
  /** Attaches a task's network namespace (`task add --netns`); absent with the overlay off. */
  attach?: (task: Task) => Promise<void>;
}

export function createApi(d: ApiDeps): Server {
  const { plane, mesh } = d;
  /** Lets the store's watch reach the view, then waits for the reconciler. */
  const settle = async <T>(result: T): Promise<T> => {
    if (!d.applyBeforeReply) return result;
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    await d.reconciler.kick();
    return result;
  };
  const observed = (t: Task) => {
    const s = mesh.backendStats().filter((b) => b.name === t.name);
    const state = s.length === 0 ? 'no-port' : s.some((b) => b.draining) ? 'draining' : !s.every((b) => b.healthy) ? 'unhealthy' : s.some((b) => b.backoff) ? 'backoff' : 'up';
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
  const live = (n: Node): Node => (Date.now() - n.lastSeen > d.nodeTimeoutMs ? { ...n, status: 'down' } : n);

  const routes: Route[] = [
    route('GET', '/v1/info', async () => ({ node: d.nodeId, version: d.version, listening: mesh.listening() })),
    route('GET', '/metrics', () => d.metrics.metrics()),

    route('GET', '/v1/services', () => orView(() => plane.services.list(), () => byName(d.view.services))),
    route('POST', '/v1/services', async (r) => settle(await plane.services.create(r.body))),
    route('GET', '/v1/services/:ref', async (r) => (await plane.services.resolve(r.params[0]!)).value),
    route('PATCH', '/v1/services/:ref', async (r) => settle(await plane.services.update(r.params[0]!, r.body))),
    route('DELETE', '/v1/services/:ref', async (r) => settle(await plane.removeService(r.params[0]!))),
    route('GET', '/v1/services/:ref/tasks', async (r) => (await plane.tasks.list(r.params[0]!)).map(observed)),

    route('GET', '/v1/tasks', async (r) => (await orView(() => plane.tasks.list(r.query.get('service') ?? undefined), () => byName(d.view.tasks))).map(observed)),
    route('POST', '/v1/tasks', async (r) => {
      if (r.body && typeof r.body === 'object' && 'netns' in r.body && !d.attach) throw new ValidationError('netns', 'the overlay is off on this node (agent --no-overlay)');
      const task = await plane.tasks.add(r.body);
      if (task.netns) await d.attach!(task);
      return settle(task);
    }),
    route('GET', '/v1/tasks/:ref', async (r) => observed((await plane.tasks.resolve(r.params[0]!)).value)),
    route('DELETE', '/v1/tasks/:ref', async (r) => settle(await plane.tasks.remove(r.params[0]!))),

    route('GET', '/v1/nodes', async () => (await orView(() => plane.nodes.list(), () => [...d.view.nodes.values()])).map(live)),
    route('GET', '/v1/nodes/:ref', async (r) => live((await plane.nodes.resolve(r.params[0]!)).value)),
    route('PATCH', '/v1/nodes/:ref', async (r) => settle(await plane.nodes.update(r.params[0]!, r.body))),

    route('GET', '/v1/networks', () => orView(() => plane.networks.list(), () => byName(d.view.networks))),
    route('POST', '/v1/networks', async (r) => settle(await plane.networks.create(r.body))),
    route('GET', '/v1/networks/:ref', async (r) => (await plane.networks.resolve(r.params[0]!)).value),
    route('DELETE', '/v1/networks/:ref', async (r) => settle(await plane.removeNetwork(r.params[0]!))),

    // Long-poll until this agent has applied a service (it is in the local view and its
    // first published port listens): lets tools measure cluster convergence.
    route('GET', '/v1/wait', async (r) => {
      const name = r.query.get('service') ?? '';
      const deadline = Date.now() + Math.min(Number(r.query.get('timeout') ?? 10000) || 10000, 60000);
      const applied = () => {
        const svc = [...d.view.services.values()].find((s) => s.name === name);
        const port = svc?.ports[0];
        return !!svc && (!port || port.mode === 'host' || mesh.listening().some((k) => k.startsWith(`${port.protocol}/`) && k.endsWith(`:${port.published}`)));
      };
      while (!applied()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new NotFoundError(`service ${name} not applied on this node within the timeout`);
        await d.reconciler.nextPass(Math.min(left, 1000));
      }
      return { service: name, node: d.nodeId };
    }),
    route('GET', '/v1/conns', async (r) => mesh.conns(r.query.get('service') ?? undefined)),
  ];
  return createServer((req, res) => void dispatch(routes, req, res));
}
