/**
 * JetStream replicas of the cluster's buckets follow the number of managers: one
 * server holds R1; three or more hold R3 (losing one loses nothing). A bucket's
 * stream (`KV_<bucket>`) is scaled by a stream update.
 */
import type { Logger } from 'pino';
import { jetstreamManager } from '@nats-io/jetstream';
import { KINDS } from '../../control/constants.js';
import type { Store } from '../../control/types.js';
import { NatsStore } from '../../control/store/nats.js';

export function replicasFor(managers: number): number {
  return managers >= 3 ? 3 : 1;
}

/** Sets every bucket's stream to `want` replicas (a no-op for those already there). */
export async function scaleReplicas(store: Store, want: number, log: Logger): Promise<void> {
  if (!(store instanceof NatsStore)) return;
  const jsm = await jetstreamManager(store.nc);
  for (const kind of KINDS) {
    const name = `KV_swarmnet-${kind}`;
    const info = await jsm.streams.info(name);
    if (info.config.num_replicas === want) continue;
    await jsm.streams.update(name, { ...info.config, num_replicas: want });
    log.info({ bucket: `swarmnet-${kind}`, replicas: want }, 'bucket replicas changed');
  }
}
