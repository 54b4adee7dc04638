/**
 * The agent's one Prometheus registry, composed from the subsystems' collectors (each
 * lives with its subsystem: mesh/, overlay/, dns/, control/, trust/). The data paths
 * bump plain numbers; the collectors read them at scrape time, so serving traffic
 * never touches prom-client.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import { registerMeshMetrics, type Mesh } from '../mesh/index.js';
import { registerKeyMetrics, registerKeyRotatorMetrics, registerOverlayMetrics, type Overlay } from '../overlay/index.js';
import { registerDnsMetrics, type DnsStats } from '../dns/index.js';
import type { ControlMetrics } from '../control/metrics.js';
import type { View } from '../control/view.js';
import { registerTrustMetrics } from '../trust/metrics.js';
import type { KeyRotator } from './key-rotator.js';
import { registerReaperMetrics, type ContainerReaper } from './reaper.js';

/** What runs on this node besides the mesh (absent: off here). */
export interface MetricSources {
  overlay?: Overlay;
  keyRotator?: KeyRotator;
  reaper?: ContainerReaper;
  /** The node's DNS servers' counters. */
  dns?: DnsStats;
  /** The control plane: its watch-lag histogram and the view it judges nodes and key rings by. */
  control?: { metrics: ControlMetrics; view: View };
  /** This node's certificate expiry (in a cluster). */
  certNotAfter?: () => Date | undefined;
}

export function createMetrics(mesh: Mesh, s: MetricSources = {}): Registry {
  const registry = new Registry();
  // Event-loop lag sampled every 100 ms, not prom-client's 10 ms: its histogram timer
  // would otherwise wake the agent's loop 100 times a second on an idle node.
  collectDefaultMetrics({ register: registry, prefix: 'swarmnet_', eventLoopMonitoringPrecision: 100 });
  registerMeshMetrics(registry, mesh);
  if (s.overlay) registerOverlayMetrics(registry, s.overlay);
  if (s.keyRotator) registerKeyRotatorMetrics(registry, s.keyRotator);
  if (s.reaper) registerReaperMetrics(registry, s.reaper);
  if (s.dns) registerDnsMetrics(registry, s.dns);
  if (s.control) {
    s.control.metrics.register(registry, s.control.view);
    registerKeyMetrics(registry, s.control.view);
  }
  if (s.certNotAfter) registerTrustMetrics(registry, s.certNotAfter);
  return registry;
}
