/**
 * Weighted round robin. Smooth WRR (as nginx): every pick adds each usable backend's
 * weight to its credit and takes the richest, which then pays the total. Over any
 * window the split follows the weights and heavy backends are interleaved, not bursted.
 */
import type { Backend } from '../backend.js';
import type { FlowKey, Scheduler } from '../types.js';

export class WeightedRoundRobin implements Scheduler {
  readonly name = 'wrr';
  #list: readonly Backend[] = [];
  readonly #credit = new Map<Backend, number>();

  rebuild(backends: readonly Backend[]): void {
    this.#list = backends;
    for (const b of [...this.#credit.keys()]) if (!backends.includes(b)) this.#credit.delete(b);
  }

  pick(_flow: FlowKey, usable: (b: Backend) => boolean): Backend | undefined {
    let best: Backend | undefined;
    let bestCredit = -Infinity;
    let total = 0;
    for (const b of this.#list) {
      if (!usable(b)) continue;
      const w = b.spec.weight;
      const c = (this.#credit.get(b) ?? 0) + w;
      this.#credit.set(b, c);
      total += w;
      if (c > bestCredit) {
        best = b;
        bestCredit = c;
      }
    }
    if (best) this.#credit.set(best, bestCredit - total);
    return best;
  }
}
