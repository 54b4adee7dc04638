/**
 * Maglev hashing (ipvsadm -s mh; Eisenbud et al., "Maglev", NSDI 2016, section 3.4).
 *
 * Each backend's preference list is a permutation of the table slots derived only
 * from its task id: offset = h1(id) mod M, skip = h2(id) mod (M-1) + 1. Backends take
 * turns claiming their next preferred free slot until the table is full. Because the
 * permutations do not depend on the other backends, removing one of N backends moves
 * only about 1/N of the slots, and all nodes build the same table.
 *
 * M is a prime larger than 100 x backends (the paper's bound for an even split) and
 * is taken from a fixed ladder, so M, and with it every permutation, stays the same
 * as backends come and go.
 */
import type { Backend } from '../backend.js';
import { MAGLEV_SIZES } from '../constants.js';
import { hash32 } from '../hash.js';
import type { FlowKey, Scheduler } from '../types.js';

const SEED_OFFSET = 0x9e3779b9;
const SEED_SKIP = 0x7f4a7c15;

export function maglevSize(backends: number): number {
  return MAGLEV_SIZES.find((m) => m > 100 * backends) ?? MAGLEV_SIZES[MAGLEV_SIZES.length - 1]!;
}

/** Builds the lookup table: slot -> index into `ids`. */
export function maglevTable(ids: readonly string[], size: number): Int32Array {
  const table = new Int32Array(size).fill(-1);
  const n = ids.length;
  if (n === 0) return table;
  const next = new Float64Array(n); // current slot of each backend's permutation
  const skip = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = hash32(ids[i]!, SEED_OFFSET) % size;
    skip[i] = (hash32(ids[i]!, SEED_SKIP) % (size - 1)) + 1;
  }
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      let c = next[i]!;
      while (table[c] !== -1) c = (c + skip[i]!) % size;
      table[c] = i;
      next[i] = (c + skip[i]!) % size;
      if (++filled === size) return table;
    }
  }
}

export class Maglev implements Scheduler {
  readonly name = 'mh';
  #backends: readonly Backend[] = [];
  #table: Int32Array = new Int32Array(0);

  rebuild(backends: readonly Backend[]): void {
    this.#backends = backends;
    this.#table = maglevTable(backends.map((b) => b.id), maglevSize(backends.length));
  }

  pick(flow: FlowKey, usable: (b: Backend) => boolean): Backend | undefined {
    const m = this.#table.length;
    if (this.#backends.length === 0) return undefined;
    // The client address is the key (as IPVS mh without mh-port). On an unusable
    // backend, rehash with a probe number: still deterministic across nodes.
    for (let probe = 0; probe <= this.#backends.length * 4; probe++) {
      const key = probe === 0 ? flow.srcIp : `${flow.srcIp}#${probe}`;
      const b = this.#backends[this.#table[hash32(key) % m]!]!;
      if (usable(b)) return b;
    }
    return this.#backends.find(usable);
  }
}
