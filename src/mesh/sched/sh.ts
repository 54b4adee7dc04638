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

/** The bucket table: SH_TABLE_SIZE indexes into `backends`, each backend taking `weight` consecutive buckets in turn. */
export function sourceHashTable(backends: readonly Backend[]): Int32Array {
  const table = new Int32Array(backends.length > 0 ? SH_TABLE_SIZE : 0);
  let i = 0;
  let turns = 0;
  for (let slot = 0; slot < table.length; slot++) {
    const b = backends[i % backends.length]!;
    table[slot] = i % backends.length;
    if (++turns >= Math.max(1, b.spec.weight)) {
      turns = 0;
      i++;
    }
  }
  return table;
}

export class SourceHash implements Scheduler {
  readonly name = 'sh';
  #table: Backend[] = [];

  rebuild(backends: readonly Backend[]): void {
    this.#table = Array.from(sourceHashTable(backends), (i) => backends[i]!);
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
