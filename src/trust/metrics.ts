/** Trust metrics: when this node's certificate expires (renewal runs at 50-80% of its life). */
import { Gauge, type Registry } from 'prom-client';

/** `notAfter`: the node certificate's expiry, absent on a single node (no certificate). */
export function registerTrustMetrics(registry: Registry, notAfter: () => Date | undefined): void {
  new Gauge({
    name: 'swarmnet_cert_expiry_timestamp_seconds',
    help: "Expiry of this node's cluster certificate, seconds since the epoch (absent outside a cluster)",
    registers: [registry],
    collect() {
      this.reset();
      const at = notAfter();
      if (at) this.set(at.getTime() / 1000);
    },
  });
}
