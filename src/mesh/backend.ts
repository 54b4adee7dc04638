/** Runtime state of one task endpoint inside a pool: load, health and counters. */
import { bucketOf } from '../util/metrics.js';
import { CONNECT_BUCKETS_S } from './constants.js';
import type { BackendSpec } from './types.js';

/** Anything that can be told to close (a TCP session or UDP flow). */
export interface Closable {
  close(reason: string): void;
}

export class Backend {
  spec: BackendSpec;
  /** Open flows now. */
  active = 0;
  /** Counters for metrics; never reset while the backend exists. */
  total = 0;
  bytesIn = 0;
  bytesOut = 0;
  readonly errors = new Map<string, number>();
  /** Flows moved from this task to another after it failed them (a retry or failover). */
  retries = 0;
  /** Connects to the task (succeeded or failed) by how long they took: per bucket of CONNECT_BUCKETS_S, the last past them. */
  readonly connectCounts = new Float64Array(CONNECT_BUCKETS_S.length + 1);
  /** The sum of those connect times, seconds. */
  connectSeconds = 0;
  /** Removed from the service: no new flows, existing ones run out or hit the drain timeout. */
  draining = false;
  drainTimer: NodeJS.Timeout | undefined;
  /** Passive health: consecutive failures and the time until which the task sits out. */
  failures = 0;
  downUntil = 0;
  /** Active health check verdict; true when no check is configured. */
  healthy = true;
  readonly flows = new Set<Closable>();

  constructor(spec: BackendSpec) {
    this.spec = spec;
  }

  get id(): string {
    return this.spec.id;
  }

  /** May take new flows under the scheduler (ignoring passive back-off). */
  get schedulable(): boolean {
    return !this.draining && this.spec.eligible && this.healthy && this.spec.weight > 0;
  }

  /** A connect to the task ended (established or failed) after `seconds`. */
  connected(seconds: number): void {
    this.connectCounts[bucketOf(CONNECT_BUCKETS_S, seconds)]!++;
    this.connectSeconds += seconds;
  }

  error(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }
}
