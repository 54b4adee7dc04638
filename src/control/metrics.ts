/**
 * Control-plane metrics: how fast the store's watch brings writes back (our own
 * heartbeat, stamped and seen on this node's clock) and how this node judges the others.
 */
import { Gauge, Histogram, type Registry } from 'prom-client';
import type { View } from './view.js';

/** Watch lag buckets, seconds: a local embedded store answers in microseconds, a loaded NATS cluster in tens of ms. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class ControlMetrics {
  /** Made before the registry (Liveness needs the hook when the view is built); registered with `register`. */
  readonly watchLag = new Histogram({
    name: 'swarmnet_control_watch_lag_seconds',
    help: "Time from this node's heartbeat write until the store's watch delivered it back (write-to-watch delay)",
    buckets: LAG_BUCKETS,
    registers: [],
  });

  observeSelfBeat(lagMs: number): void {
    this.watchLag.observe(lagMs / 1000);
  }

  register(registry: Registry, view: View): void {
    registry.registerMetric(this.watchLag);
    new Gauge({
      name: 'swarmnet_node_up',
      help: 'Nodes as this node judges them: 1 ready and heard within the node timeout, 0 down',
      labelNames: ['node', 'hostname'],
      registers: [registry],
      collect() {
        this.reset();
        for (const n of view.nodes.values()) {
          if (n.status === 'removed') continue;
          this.set({ node: n.id, hostname: n.hostname }, view.liveness.status(n) === 'ready' ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'swarmnet_node_heartbeat_age_seconds',
      help: "Seconds since this node last received each node's heartbeat through the watch (its monotonic clock)",
      labelNames: ['node', 'hostname'],
      registers: [registry],
      collect() {
        this.reset();
        for (const n of view.nodes.values()) {
          const ago = view.liveness.heardMsAgo(n.id);
          if (n.status !== 'removed' && ago !== undefined) this.set({ node: n.id, hostname: n.hostname }, ago / 1000);
        }
      },
    });
    new Gauge({
      name: 'swarmnet_control_objects',
      help: "Objects in this node's view of the store, by kind",
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [kind, map] of [['services', view.services], ['tasks', view.tasks], ['networks', view.networks], ['nodes', view.nodes]] as const) this.set({ kind }, map.size);
      },
    });
  }
}
