/** Seams of the routing mesh. */
import type { Backend } from './backend.js';

/** What the reconciler wants a backend to be. */
export interface BackendSpec {
  /** Task id: stable across nodes, so consistent hashing agrees cluster-wide. */
  id: string;
  name: string;
  host: string;
  port: number;
  weight: number;
  node: string;
  /** False when the task's node is down, paused or drained: kept for existing flows, no new ones. */
  eligible: boolean;
}

/** The client side of a flow, which sh and mh hash on. */
export interface FlowKey {
  srcIp: string;
  srcPort: number;
}

/**
 * A scheduler (ipvsadm's -s). `rebuild` is told the schedulable backends, sorted by
 * id, whenever membership or eligibility changes; `pick` chooses for one new flow
 * among those where `usable` holds (a task in back-off or already tried is not), and
 * returns undefined when none is.
 */
export interface Scheduler {
  readonly name: string;
  rebuild(backends: readonly Backend[]): void;
  pick(flow: FlowKey, usable: (b: Backend) => boolean): Backend | undefined;
}
