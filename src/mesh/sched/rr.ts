/** Round robin (ipvsadm -s rr): each new flow goes to the next usable backend. */
import type { Backend } from '../backend.js';
import type { FlowKey, Scheduler } from '../types.js';

export class RoundRobin implements Scheduler {
  readonly name = 'rr';
  #list: readonly Backend[] = [];
  #next = 0;

  rebuild(backends: readonly Backend[]): void {
    this.#list = backends;
  }

  pick(_flow: FlowKey, usable: (b: Backend) => boolean): Backend | undefined {
    const n = this.#list.length;
    for (let i = 0; i < n; i++) {
      const idx = (this.#next + i) % n;
      const b = this.#list[idx]!;
      if (usable(b)) {
        this.#next = idx + 1;
        return b;
      }
    }
    return undefined;
  }
}
