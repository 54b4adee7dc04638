/**
 * The backends of one published port and the scheduler that spreads new flows over
 * them. Owns membership changes (add, update, drain on removal), passive health
 * (back-off after a failed connect) and the fallback when every task is backing off.
 */
import type { SchedulerName } from '../control/constants.js';
import { Backend } from './backend.js';
import type { MeshSettings } from './constants.js';
import { createScheduler } from './sched/index.js';
import type { BackendSpec, FlowKey, Scheduler } from './types.js';

export class Pool {
  readonly backends = new Map<string, Backend>();
  #scheduler: Scheduler;
  #lb: SchedulerName;
  /** Told the schedulable backends (sorted by id) after each rebuild: the native engine's copy of the scheduler's view. */
  onRebuild: ((schedulable: readonly Backend[]) => void) | undefined;

  constructor(
    lb: SchedulerName,
    private readonly settings: MeshSettings,
  ) {
    this.#lb = lb;
    this.#scheduler = createScheduler(lb);
  }

  get lb(): SchedulerName {
    return this.#lb;
  }

  /** Applies the wanted backend set. Backends that left drain; existing flows are never cut here. */
  update(specs: readonly BackendSpec[], lb: SchedulerName): void {
    if (lb !== this.#lb) {
      this.#lb = lb;
      this.#scheduler = createScheduler(lb);
    }
    const wanted = new Set<string>();
    for (const spec of specs) {
      wanted.add(spec.id);
      const cur = this.backends.get(spec.id);
      if (!cur) {
        this.backends.set(spec.id, new Backend(spec));
        continue;
      }
      cur.spec = spec;
      if (cur.draining) this.#undrain(cur);
    }
    for (const b of this.backends.values()) if (!wanted.has(b.id) && !b.draining) this.#drain(b);
    this.rebuild();
  }

  /** Recomputes the scheduler's view after eligibility or health changed. */
  rebuild(): void {
    const list = [...this.backends.values()].filter((b) => b.schedulable).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.#scheduler.rebuild(list);
    this.onRebuild?.(list);
  }

  /**
   * A backend for a new flow, skipping `tried`. Tasks in back-off are skipped too,
   * unless every remaining task is backing off: then trying one beats refusing.
   */
  pick(flow: FlowKey, tried: ReadonlySet<Backend>): Backend | undefined {
    const now = Date.now();
    return (
      this.#scheduler.pick(flow, (b) => b.downUntil <= now && !tried.has(b)) ??
      this.#scheduler.pick(flow, (b) => !tried.has(b))
    );
  }

  /** Passive health: the task sits out an exponentially growing back-off. */
  fail(b: Backend): void {
    b.failures++;
    const wait = Math.min(this.settings.backoffBaseMs * 2 ** (b.failures - 1), this.settings.backoffMaxMs);
    b.downUntil = Date.now() + wait;
  }

  succeed(b: Backend): void {
    b.failures = 0;
    b.downUntil = 0;
  }

  /** Registers a flow on a backend; returns the function that unregisters it. */
  attach(b: Backend, flow: { close(reason: string): void }): () => void {
    b.active++;
    b.total++;
    b.flows.add(flow);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      b.active--;
      b.flows.delete(flow);
      if (b.draining && b.flows.size === 0) this.#forget(b);
    };
  }

  /** Closes every flow and forgets every backend (listener removed and drained). */
  close(): void {
    for (const b of this.backends.values()) this.#drain(b);
  }

  #drain(b: Backend): void {
    b.draining = true;
    if (b.flows.size === 0) return this.#forget(b);
    b.drainTimer = setTimeout(() => {
      for (const f of [...b.flows]) f.close('drain timeout');
    }, this.settings.drainTimeoutMs);
    b.drainTimer.unref();
  }

  #undrain(b: Backend): void {
    b.draining = false;
    clearTimeout(b.drainTimer);
    b.drainTimer = undefined;
  }

  #forget(b: Backend): void {
    clearTimeout(b.drainTimer);
    if (this.backends.get(b.id) === b) this.backends.delete(b.id);
  }

  get empty(): boolean {
    return this.backends.size === 0;
  }
}
