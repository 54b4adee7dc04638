import type { SchedulerName } from '../../control/constants.js';
import type { Scheduler } from '../types.js';
import { LeastConnection } from './lc.js';
import { Maglev } from './mh.js';
import { RoundRobin } from './rr.js';
import { SourceHash } from './sh.js';
import { WeightedRoundRobin } from './wrr.js';

export { maglevSize, maglevTable } from './mh.js';
export { sourceHashTable } from './sh.js';

export function createScheduler(name: SchedulerName): Scheduler {
  switch (name) {
    case 'rr':
      return new RoundRobin();
    case 'wrr':
      return new WeightedRoundRobin();
    case 'lc':
      return new LeastConnection(false);
    case 'wlc':
      return new LeastConnection(true);
    case 'sh':
      return new SourceHash();
    case 'mh':
      return new Maglev();
  }
}
