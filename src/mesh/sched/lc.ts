/**
 * Least connection (lc) and weighted least connection (wlc), as IPVS: the backend
 * with the fewest active flows (divided by weight for wlc). Ties rotate, so a burst
 * of short flows spreads instead of piling on the first backend.
 */
import type { Backend } from '../backend.js';
import type { FlowKey, Scheduler } from '../types.js';

export class LeastConnection implements Scheduler {
  readonly name: 'lc' | 'wlc';
  #list: readonly Backend[] = [];
  #start = 0;

  constructor(readonly weighted: boolean) {
    this.name = weighted ? 'wlc' : 'lc';
  }

  rebuild(backends: readonly Backend[]): void {
    this.#list = backends;
  }

  pick(_flow: FlowKey, usable: (b: Backend) => boolean): Backend | undefined {
    const n = this.#list.length;
    let best: Backend | undefined;
    for (let i = 0; i < n; i++) {
      const b = this.#list[(this.#start + i) % n]!;
      if (!usable(b)) continue;
      if (!best || this.#less(b, best)) best = b;
    }
    this.#start = n ? (this.#start + 1) % n : 0;
    return best;
  }

  /** a.active/a.weight < b.active/b.weight, cross-multiplied to stay in integers. */
  #less(a: Backend, b: Backend): boolean {
    if (!this.weighted) return a.active < b.active;
    return a.active * b.spec.weight < b.active * a.spec.weight;
  }
}
