/**
 * Desired state (View) -> routing mesh. Level-triggered: every change recomputes the
 * full listener set from the view and hands it to the mesh, which applies the diff.
 *
 * A task is eligible for new flows when its node is known, active (not paused or
 * drained) and up as this agent judges it (`view.liveness`: its heartbeats arrive here).
 * Liveness moves with time, not with store events: the agent kicks a pass per heartbeat.
 */
import type { View } from '../control/view.js';
import type { Node, Service, Task } from '../control/schema.js';
import { parseEndpoint } from '../control/schema.js';
import type { ApplyError, BackendSpec, ListenerSpec, Mesh } from '../mesh/index.js';
import { vipBackendsOf } from './overlay-plan.js';

/** The overlay as the reconciler drives it (see Agent): synced before the mesh, whose VIP listeners need its bridges. */
export interface OverlayDriver {
  sync(): Promise<void>;
  /** The network's bridge (with its VIPs) is up on this node. */
  hasNetwork(id: string): boolean;
}

export interface ReconcilerOptions {
  view: View;
  mesh: Mesh;
  localNode: string;
  /** Address the routing mesh listens on. */
  ingressAddr: string;
  onErrors(errors: ApplyError[]): void;
  /** Absent when the overlay is off (--no-overlay): then no VIP is served here. */
  overlay?: OverlayDriver;
}

/** What one service's listener specs were computed from, to reuse them when nothing changed. */
interface Memo {
  svc: Service;
  tasks: Task[];
  eligibility: string;
  /** The service's networks that are up here (their VIPs get listeners). */
  local: string;
  specs: ListenerSpec[];
}

export class Reconciler {
  /**
   * The View replaces an object when it changes, so identity tells whether a service or
   * task changed; unchanged services keep their spec objects, and the mesh skips those
   * by identity. A pass is then O(tasks) comparisons, not a rebuild of every listener.
   */
  readonly #memo = new Map<string, Memo>();
  #running: Promise<void> | undefined;
  #again = false;
  readonly #passListeners = new Set<() => void>();
  #unsubscribe: (() => void) | undefined;

  constructor(private readonly o: ReconcilerOptions) {}

  start(): void {
    this.#unsubscribe = this.o.view.onChange(() => this.kick());
    this.kick();
  }

  stop(): void {
    this.#unsubscribe?.();
  }

  /** Runs a pass now, or once more after the one in progress. */
  kick(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.o.overlay?.sync();
        const errors = await this.o.mesh.apply(this.desired());
        if (errors.length) this.o.onErrors(errors);
        for (const fn of [...this.#passListeners]) fn();
      } while (this.#again);
      this.#running = undefined;
    })();
    return this.#running;
  }

  /** Resolves after the next completed pass (or after `ms`). */
  nextPass(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#passListeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#passListeners.add(done);
    });
  }

  /** Settles once no pass is running or pending. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** `now`: the liveness clock's time all nodes of this pass are judged at. */
  desired(now = this.o.view.liveness.now()): ListenerSpec[] {
    const { view } = this.o;
    const byService = new Map<string, Task[]>();
    for (const t of view.tasks.values()) {
      if (t.state !== 'running') continue;
      const list = byService.get(t.service) ?? [];
      list.push(t);
      byService.set(t.service, list);
    }
    const out: ListenerSpec[] = [];
    const seen = new Set<string>();
    for (const svc of view.services.values()) {
      seen.add(svc.id);
      const tasks = byService.get(svc.id) ?? [];
      const eligibility = tasks.map((t) => (this.#nodeOk(view.nodes.get(t.node), now) ? '1' : '0')).join('');
      const local = svc.networks.filter((n) => n.vip && this.o.overlay?.hasNetwork(n.network)).map((n) => n.network).join(',');
      const memo = this.#memo.get(svc.id);
      if (memo && memo.svc === svc && memo.eligibility === eligibility && memo.local === local && sameItems(memo.tasks, tasks)) {
        out.push(...memo.specs);
        continue;
      }
      const specs: ListenerSpec[] = [];
      svc.ports.forEach((port, i) => {
        // Host mode: only nodes running a task listen, and only to their own tasks.
        const own = port.mode === 'host' ? tasks.filter((t) => t.node === this.o.localNode) : tasks;
        if (port.mode === 'host' && own.length === 0) return;
        specs.push({
          service: svc.name,
          protocol: port.protocol,
          host: this.o.ingressAddr,
          port: port.published,
          proxyProtocol: svc.proxyProtocol,
          lb: svc.lb,
          ...(svc.healthCheck && { healthCheck: svc.healthCheck }),
          backends: own.flatMap((t) => this.#backend(svc, i, t, now)),
        });
      });
      if (local) specs.push(...this.#vipSpecs(svc, tasks, now));
      this.#memo.set(svc.id, { svc, tasks, eligibility, local, specs });
      out.push(...specs);
    }
    for (const id of this.#memo.keys()) if (!seen.has(id)) this.#memo.delete(id);
    this.o.mesh.pruneCounters(new Set([...view.services.values()].map((s) => s.name)));
    return out;
  }

  /**
   * Service VIPs inside overlays: VIP:target on every node that has the network,
   * balanced to the service's tasks on that network wherever they run (their overlay
   * IPs are reachable from here through the bridge).
   */
  #vipSpecs(svc: Service, tasks: Task[], now: number): ListenerSpec[] {
    if (svc.endpointMode !== 'vip') return [];
    const specs: ListenerSpec[] = [];
    for (const n of svc.networks) {
      if (!n.vip || !this.o.overlay?.hasNetwork(n.network)) continue;
      const members = vipBackendsOf(tasks, n.network);
      for (const port of svc.ports) {
        specs.push({
          service: svc.name,
          protocol: port.protocol,
          host: n.vip,
          port: port.target,
          proxyProtocol: svc.proxyProtocol,
          lb: svc.lb,
          ...(svc.healthCheck && { healthCheck: svc.healthCheck }),
          backends: members.map(({ task: t, ip }) => ({ id: t.id, name: t.name, host: ip, port: port.target, weight: t.weight, node: t.node, eligible: this.#nodeOk(this.o.view.nodes.get(t.node), now) })),
        });
      }
    }
    return specs;
  }

  #backend(svc: Service, portIndex: number, t: Task, now: number): BackendSpec[] {
    const port = svc.ports[portIndex]!;
    let host: string;
    let target = port.target;
    if (t.addr) {
      const ep = parseEndpoint(t.addr)!;
      host = ep.ip;
      if (ep.port !== undefined && portIndex === 0) target = ep.port;
    } else {
      const a = t.addresses[0];
      if (!a) return [];
      host = a.ip;
    }
    return [{ id: t.id, name: t.name, host, port: target, weight: t.weight, node: t.node, eligible: this.#nodeOk(this.o.view.nodes.get(t.node), now) }];
  }

  /** Is node `id` up (heartbeats arriving) and active, as this agent judges it now? */
  nodeUp(id: string): boolean {
    return this.#nodeOk(this.o.view.nodes.get(id), this.o.view.liveness.now());
  }

  #nodeOk(node: Node | undefined, now: number): boolean {
    return !!node && node.availability === 'active' && this.o.view.liveness.up(node, now);
  }
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
