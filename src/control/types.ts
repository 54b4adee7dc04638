/**
 * The seam between the control plane and its storage engines
 * (embedded single-node store, NATS JetStream KV for clusters).
 */
import type { Kind } from './constants.js';

export interface Entry {
  key: string;
  /** Plain JSON as stored; callers validate it before use (see `collection.ts`). */
  value: unknown;
  /** Monotonic per store; the token for compare-and-set. */
  revision: number;
}

export type WatchEvent =
  | { op: 'put'; kind: Kind; key: string; value: unknown; revision: number }
  | { op: 'del'; kind: Kind; key: string; revision: number };

export type Unwatch = () => void;

/**
 * A key-value store with buckets per kind, compare-and-set and watch.
 *
 * Contract:
 * - `create` fails with ConflictError (code ECONFLICT) when the key exists: this is
 *   how allocations stay unique across concurrent writers.
 * - `update` fails with RevisionMismatchError (code EREVISION) when the entry's
 *   revision is not `revision`.
 * - `delete` with a revision is compare-and-delete; without, unconditional; deleting
 *   a missing key is not an error.
 * - `watch` first delivers every current entry of the kind as `put` events, then
 *   calls `onReady`, then delivers changes in revision order. One watch per kind per
 *   caller; fan-out happens in process.
 * - A write has reached durable storage when its promise resolves.
 */
export interface Store {
  get(kind: Kind, key: string): Promise<Entry | undefined>;
  list(kind: Kind): Promise<Entry[]>;
  create(kind: Kind, key: string, value: unknown): Promise<number>;
  update(kind: Kind, key: string, value: unknown, revision: number): Promise<number>;
  put(kind: Kind, key: string, value: unknown): Promise<number>;
  delete(kind: Kind, key: string, revision?: number): Promise<void>;
  watch(kind: Kind, onEvent: (e: WatchEvent) => void, onReady?: () => void): Promise<Unwatch>;
  close(): Promise<void>;
}
