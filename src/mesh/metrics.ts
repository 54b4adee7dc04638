/**
 * Routing-mesh metrics, read at scrape time from the counters the data paths keep (JS
 * objects, the native relay's counters synced into them): per service, per backend
 * (service, protocol, port, backend, task), the connect-latency histogram, and the
 * native relay's threads. A removed service or task is gone from the next scrape.
 */
import type { Registry } from 'prom-client';
import { readMetrics, registerBucketHistogram, type Sample } from '../util/metrics.js';
import { CONNECT_BUCKETS_S } from './constants.js';
import type { BackendStats, Mesh, ServiceStats } from './mesh.js';
import { registerUdpMetrics } from './udp-metrics.js';

const BACKEND_LABELS = ['service', 'protocol', 'port', 'backend', 'task'] as const;

function backendLabels(b: BackendStats): Record<string, string> {
  return { service: b.service, protocol: b.protocol, port: String(b.port), backend: b.backend, task: b.name };
}

export function registerMeshMetrics(registry: Registry, mesh: Mesh): void {
  const m = readMetrics(registry);
  const perService = (pick: (s: ServiceStats) => number) => (): Sample[] => mesh.serviceStats().map((s) => [{ service: s.service }, pick(s)]);
  const perBackend = (pick: (b: BackendStats) => number) => (): Sample[] => mesh.backendStats().map((b) => [backendLabels(b), pick(b)]);

  m.gauge('swarmnet_service_connections_active', 'Open flows (TCP connections, UDP flows) per service', ['service'], perService((s) => s.active));
  m.counter('swarmnet_service_connections_total', 'Flows accepted per service', ['service'], perService((s) => s.total));
  m.counter('swarmnet_service_no_backend_total', 'Flows refused because no task was available', ['service'], perService((s) => s.noBackend));
  m.counter('swarmnet_service_retries_total', 'Flows moved to another task after a failure', ['service'], perService((s) => s.retries));
  m.counter('swarmnet_service_bytes_received_total', 'Bytes from clients of closed flows', ['service'], perService((s) => s.bytesIn));
  m.counter('swarmnet_service_bytes_sent_total', 'Bytes to clients of closed flows', ['service'], perService((s) => s.bytesOut));

  m.gauge('swarmnet_backend_connections_active', 'Open flows per backend', BACKEND_LABELS, perBackend((b) => b.active));
  m.gauge('swarmnet_backend_up', '1 when the backend takes new flows (healthy, not draining, not backing off)', BACKEND_LABELS, perBackend((b) => (b.healthy && !b.draining && !b.backoff ? 1 : 0)));
  m.counter('swarmnet_backend_connections_total', 'Flows sent to a backend', BACKEND_LABELS, perBackend((b) => b.total));
  m.counter('swarmnet_backend_bytes_received_total', 'Bytes from clients forwarded to a backend', BACKEND_LABELS, perBackend((b) => b.bytesIn));
  m.counter('swarmnet_backend_bytes_sent_total', 'Bytes from a backend forwarded to clients', BACKEND_LABELS, perBackend((b) => b.bytesOut));
  m.counter('swarmnet_backend_retries_total', 'Flows moved from a backend to another after it failed them (refused, timed out, closed or reset before answering)', BACKEND_LABELS, perBackend((b) => b.retries));
  m.counter('swarmnet_backend_errors_total', 'Failures per backend by kind (connect, refused, reset, empty)', [...BACKEND_LABELS, 'kind'], () =>
    mesh.backendStats().flatMap((b) => Object.entries(b.errors).map(([kind, n]): Sample => [{ ...backendLabels(b), kind }, n])),
  );
  registerBucketHistogram(registry, {
    name: 'swarmnet_backend_connect_duration_seconds',
    help: 'Time from starting a TCP connect to a backend until it was established or failed (refused, timed out)',
    labelNames: BACKEND_LABELS,
    buckets: CONNECT_BUCKETS_S,
    // UDP has no connect: only TCP backends have series.
    read: () => mesh.backendStats().flatMap((b) => (b.protocol === 'tcp' ? [{ labels: backendLabels(b), counts: b.connectCounts, sum: b.connectSeconds }] : [])),
  });

  // The native TCP relay's threads (--threads): how the kernel spread connections over them.
  const perThread = (pick: (s: { accepted: number; open: number }) => number) => (): Sample[] => mesh.threadStats().map((s, i) => [{ thread: String(i) }, pick(s)]);
  m.counter('swarmnet_relay_thread_connections_total', 'TCP connections accepted per relay thread', ['thread'], perThread((s) => s.accepted));
  m.gauge('swarmnet_relay_thread_connections_active', 'Open TCP relays per relay thread', ['thread'], perThread((s) => s.open));

  registerUdpMetrics(registry, () => mesh.udpStats(), () => mesh.udpThreadStats());
}
