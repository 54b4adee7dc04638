/**
 * Source hashing (ipvsadm -s sh): a 256-bucket table, each backend owning buckets in
 * proportion to its weight, looked up by a hash of the client address. The table is
 * built from backends sorted by task id, so every node maps a client to the same task.
 * When the chosen task is unusable the next buckets are probed (IPVS sh-fallback).
 */
import type { Backend } from '../backend.js';
import { SH_TABLE_SIZE } from '../constants.js';
import { hash32 } from '../hash.js';
import type { FlowKey, Scheduler } from '../types.js';

export class SourceHash implements Scheduler {
  readonly name = 'sh';
  #table: Backend[] = [];

  rebuild(backends: readonly Backend[]): void {
    const table: Backend[] = [];
    if (backends.length > 0) {
      // Fill bucket by bucket, letting each backend take `weight` consecutive turns.
      let i = 0;
      let turns = 0;
      while (table.length < SH_TABLE_SIZE) {
        const b = backends[i % backends.length]!;
        table.push(b);
        if (++turns >= Math.max(1, b.spec.weight)) {
          turns = 0;
          i++;
        }
      }
    }
    this.#table = table;
  }

  pick(flow: FlowKey, usable: (b: Backend) => boolean): Backend | undefined {
    if (this.#table.length === 0) return undefined;
    const h = hash32(flow.srcIp);
    for (let off = 0; off < SH_TABLE_SIZE; off++) {
      const b = this.#table[(h + off) % SH_TABLE_SIZE]!;
      if (usable(b)) return b;
    }
    return undefined;
  }
}
