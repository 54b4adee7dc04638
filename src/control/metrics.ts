/**
 * Control-plane metrics: how fast the store's watch brings writes back (our own
 * heartbeat, stamped and seen on this node's clock) and how this node judges the others.
 */
import { Histogram, type Registry } from 'prom-client';
import { by, readMetrics, type Sample } from '../util/metrics.js';
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
    const m = readMetrics(registry);
    const live = () => [...view.nodes.values()].filter((n) => n.status !== 'removed');
    m.gauge('swarmnet_node_up', 'Nodes as this node judges them: 1 ready and heard within the node timeout, 0 down', ['node', 'hostname'], () =>
      live().map((n): Sample => [{ node: n.id, hostname: n.hostname }, view.liveness.status(n) === 'ready' ? 1 : 0]),
    );
    m.gauge('swarmnet_node_heartbeat_age_seconds', "Seconds since this node last received each node's heartbeat through the watch (its monotonic clock)", ['node', 'hostname'], () =>
      live().flatMap((n): Sample[] => {
        const ago = view.liveness.heardMsAgo(n.id);
        return ago === undefined ? [] : [[{ node: n.id, hostname: n.hostname }, ago / 1000]];
      }),
    );
    m.gauge('swarmnet_control_objects', "Objects in this node's view of the store, by kind", ['kind'], () =>
      by('kind', { services: view.services.size, tasks: view.tasks.size, networks: view.networks.size, nodes: view.nodes.size }),
    );
  }
}
