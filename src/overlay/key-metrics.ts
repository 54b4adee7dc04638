/**
 * Key ages of encrypted networks, from this node's view of the key rings (never the
 * keys): the primary's age shows a rotation that stopped (it passes --key-rotation), the
 * number of generations a ring that is stuck between install and promotion.
 */
import type { Registry } from 'prom-client';
import type { View } from '../control/view.js';
import { one, readMetrics, type Sample } from '../util/metrics.js';

/** What the key rotator (agent/key-rotator.ts, single node and managers) counted on this node. */
export interface KeyRotatorCounts {
  readonly rotations: number;
  readonly promotions: number;
  readonly failures: number;
}

/** The key rotator of encrypted networks: what it did here, and how often it failed. */
export function registerKeyRotatorMetrics(registry: Registry, r: KeyRotatorCounts): void {
  const m = readMetrics(registry);
  m.counter('swarmnet_esp_key_rotations_total', 'Keys of encrypted networks added by this node', [], () => one(r.rotations));
  m.counter('swarmnet_esp_key_promotions_total', 'Keys of encrypted networks made primary by this node', [], () => one(r.promotions));
  m.counter('swarmnet_esp_key_check_errors_total', 'Key rotation checks that failed (retried on the next check)', [], () => one(r.failures));
}

export function registerKeyMetrics(registry: Registry, view: View, now: () => number = Date.now): void {
  const m = readMetrics(registry);
  const network = (id: string) => ({ network: view.networks.get(id)?.name ?? id });
  m.gauge('swarmnet_esp_key_age_seconds', "Age of each encrypted network's primary key (the one senders use), by its creator's wall clock", ['network'], () =>
    [...view.keys.values()].flatMap((ring): Sample[] => {
      const primary = ring.keys.find((k) => k.gen === ring.primary);
      return primary ? [[network(ring.network), Math.max(0, now() - primary.createdAt) / 1000]] : [];
    }),
  );
  m.gauge('swarmnet_esp_key_generations', 'Keys in the ring of each encrypted network (at most 3: the primary, the one before it, one being installed)', ['network'], () =>
    [...view.keys.values()].map((ring): Sample => [network(ring.network), ring.keys.length]),
  );
}
