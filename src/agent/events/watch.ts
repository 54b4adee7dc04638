/**
 * Turns what the agent sees into events: the view's stored objects (services, tasks,
 * networks, nodes: create, update, remove; nodes ready and down as this node judges
 * them) and, polled, what this node's routing mesh observes of each task (up, down,
 * backoff, drain). Polling the mesh keeps the data path free of event code: a state
 * that lasts less than one poll is not reported, which `service ps` would not show
 * either.
 */
import { isDeepStrictEqual } from 'node:util';
import type { EventType } from '../../api/types.js';
import type { Network, Node, Service, Task } from '../../control/schema.js';
import type { View } from '../../control/view.js';
import type { Mesh } from '../../mesh/index.js';
import { byTask, observedState, type ObservedState } from '../observed.js';
import type { EventBus } from './bus.js';

/** How often the mesh's view of tasks is compared with the last one. */
export const OBSERVE_MS = 200;

/** Observed state -> task event action (no-port: the task has no published port here). */
const ACTIONS: Record<ObservedState, string | undefined> = { up: 'up', unhealthy: 'down', backoff: 'backoff', draining: 'drain', 'no-port': undefined };

type Named = { id: string; name?: string; hostname?: string };

export class EventWatcher {
  readonly #seen = { service: new Map<string, Service>(), task: new Map<string, Task>(), network: new Map<string, Network>() };
  readonly #nodes = new Map<string, { node: Node; status: Node['status'] }>();
  readonly #observed = new Map<string, ObservedState>();
  /** Per network: its ring's newest generation and its primary (never the keys themselves). */
  readonly #rings = new Map<string, { newest: number; primary: number }>();
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: { view: View; mesh: Mesh; bus: EventBus; pollMs?: number },
  ) {}

  /** Starts from what the view holds now: those objects exist already and are not news. */
  start(): void {
    this.#diff(false);
    this.#observe(false);
    this.#unsubscribe = this.o.view.onChange(() => this.#diff(true));
    this.#timer = setInterval(() => {
      // Stored objects change only through the view (onChange above); node liveness moves
      // with time too, so only it and the mesh's observed states are polled.
      this.#liveness(true);
      this.#observe(true);
    }, this.o.pollMs ?? OBSERVE_MS);
    this.#timer.unref();
  }

  stop(): void {
    this.#unsubscribe?.();
    clearInterval(this.#timer);
  }

  #diff(report: boolean): void {
    const v = this.o.view;
    this.#objects('service', v.services, report, (s) => ({ mode: s.endpointMode }));
    this.#objects('task', v.tasks, report, (t) => ({ service: v.services.get(t.service)?.name ?? t.service, node: t.node, ...(t.addr && { addr: t.addr }) }));
    this.#objects('network', v.networks, report, (n) => ({ subnet: n.subnet, ...(n.encrypted && { encrypted: 'true' }) }));
    this.#liveness(report);
    this.#keys(report);
  }

  /** rotate: a ring gained a generation (being installed); promote: senders moved to it. */
  #keys(report: boolean): void {
    const v = this.o.view;
    for (const [id, ring] of v.keys) {
      const now = { newest: Math.max(...ring.keys.map((k) => k.gen)), primary: ring.primary };
      const before = this.#rings.get(id);
      this.#rings.set(id, now);
      if (!report || !before) continue;
      const name = v.networks.get(id)?.name ?? id;
      if (now.newest > before.newest) this.o.bus.emit({ type: 'key', action: 'rotate', id, name, attributes: { network: name, gen: String(now.newest), cipher: ring.cipher } });
      if (now.primary !== before.primary) this.o.bus.emit({ type: 'key', action: 'promote', id, name, attributes: { network: name, gen: String(now.primary), cipher: ring.cipher } });
    }
    for (const id of this.#rings.keys()) if (!v.keys.has(id)) this.#rings.delete(id);
  }

  #objects<T extends Named>(type: 'service' | 'task' | 'network', now: Map<string, T>, report: boolean, attributes: (x: T) => Record<string, string>): void {
    const seen = this.#seen[type] as unknown as Map<string, T>;
    for (const [id, x] of now) {
      const before = seen.get(id);
      if (before && isDeepStrictEqual(before, x)) continue;
      seen.set(id, x);
      if (report) this.#emit(type, before ? 'update' : 'create', x, attributes(x));
    }
    for (const [id, x] of seen) {
      if (now.has(id)) continue;
      seen.delete(id);
      if (report) this.#emit(type, 'remove', x, attributes(x));
    }
  }

  #liveness(report: boolean): void {
    const v = this.o.view;
    for (const [id, node] of v.nodes) {
      const status = v.liveness.status(node);
      const before = this.#nodes.get(id);
      this.#nodes.set(id, { node, status });
      if (!report || before?.status === status) continue;
      const action = status === 'removed' ? 'leave' : !before ? (status === 'ready' ? 'join' : undefined) : status;
      if (action) this.#emit('node', action, node, { addr: node.addr });
    }
    for (const [id, { node }] of this.#nodes) {
      if (v.nodes.has(id)) continue;
      this.#nodes.delete(id);
      if (report) this.#emit('node', 'leave', node, { addr: node.addr });
    }
  }

  #observe(report: boolean): void {
    const tasks = byTask(this.o.mesh.backendStats());
    const byName = new Map([...this.o.view.tasks.values()].map((t) => [t.name, t]));
    for (const [name, stats] of tasks) {
      const state = observedState(stats);
      const before = this.#observed.get(name);
      if (before === state) continue;
      this.#observed.set(name, state);
      const action = ACTIONS[state];
      if (!report || !action || (before === undefined && state === 'up')) continue; // a new task's first 'up' is its create
      const task = byName.get(name);
      const attributes: Record<string, string> = { service: stats[0]!.service, backends: stats.map((b) => b.backend).join(',') };
      if (before) attributes.previous = ACTIONS[before] ?? before;
      this.o.bus.emit({ type: 'task', action, id: task?.id ?? name, name, attributes });
    }
    for (const name of this.#observed.keys()) if (!tasks.has(name)) this.#observed.delete(name);
  }

  #emit(type: EventType, action: string, x: Named, attributes: Record<string, string>): void {
    this.o.bus.emit({ type, action, id: x.id, name: x.name ?? x.hostname ?? x.id, attributes });
  }
}
