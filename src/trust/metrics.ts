/** Trust metrics: when this node's certificate expires (renewal runs at 50-80% of its life). */
import type { Registry } from 'prom-client';
import { one, readMetrics } from '../util/metrics.js';

/** `notAfter`: the node certificate's expiry, absent on a single node (no certificate). */
export function registerTrustMetrics(registry: Registry, notAfter: () => Date | undefined): void {
  readMetrics(registry).gauge('swarmnet_cert_expiry_timestamp_seconds', "Expiry of this node's cluster certificate, seconds since the epoch (absent outside a cluster)", [], () => {
    const at = notAfter();
    return at ? one(at.getTime() / 1000) : [];
  });
}
