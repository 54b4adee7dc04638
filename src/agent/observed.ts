/**
 * What this node's routing mesh observes of a task, from its backends (one per published
 * port of the task's service): the state `service ps` shows and `swarmnet events` reports.
 */
import type { BackendStats } from '../mesh/index.js';

export type ObservedState = 'no-port' | 'draining' | 'unhealthy' | 'backoff' | 'up';

/** The worst state over the task's backends: draining, then unhealthy, then backoff. */
export function observedState(backends: readonly BackendStats[]): ObservedState {
  if (backends.length === 0) return 'no-port';
  if (backends.some((b) => b.draining)) return 'draining';
  if (!backends.every((b) => b.healthy)) return 'unhealthy';
  if (backends.some((b) => b.backoff)) return 'backoff';
  return 'up';
}

/** Backend stats grouped by task name. */
export function byTask(stats: readonly BackendStats[]): Map<string, BackendStats[]> {
  const out = new Map<string, BackendStats[]>();
  for (const b of stats) {
    const list = out.get(b.name);
    if (list) list.push(b);
    else out.set(b.name, [b]);
  }
  return out;
}
