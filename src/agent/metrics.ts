/**
 * Prometheus metrics. The data path bumps plain numbers; these collectors read them
 * at scrape time, so serving traffic never touches prom-client.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Mesh } from '../mesh/index.js';
import type { Overlay } from '../overlay/index.js';
import type { KeyRotator } from './key-rotator.js';
import type { ContainerReaper } from './reaper.js';
import { registerDnsMetrics, type DnsStats } from '../dns/index.js';

/** What runs on this node besides the mesh (absent: off here). */
export interface MetricSources {
  overlay?: Overlay;
  keyRotator?: KeyRotator;
  reaper?: ContainerReaper;
  /** The node's DNS servers' counters. */
  dns?: DnsStats;
}

export function createMetrics(mesh: Mesh, { overlay, keyRotator, reaper, dns }: MetricSources = {}): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'swarmnet_' });

  new Gauge({
    name: 'swarmnet_service_connections_active',
    help: 'Open flows (TCP connections, UDP flows) per service',
    labelNames: ['service'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of mesh.serviceStats()) this.set({ service: s.service }, s.active);
    },
  });
  const serviceCounter = (name: string, help: string, pick: (s: ReturnType<Mesh['serviceStats']>[number]) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['service'],
      registers: [registry],
      collect() {
        this.reset();
        for (const s of mesh.serviceStats()) this.inc({ service: s.service }, pick(s));
      },
    });
  serviceCounter('swarmnet_service_connections_total', 'Flows accepted per service', (s) => s.total);
  serviceCounter('swarmnet_service_no_backend_total', 'Flows refused because no task was available', (s) => s.noBackend);
  serviceCounter('swarmnet_service_retries_total', 'Flows moved to another task after a failure', (s) => s.retries);
  serviceCounter('swarmnet_service_bytes_received_total', 'Bytes from clients of closed flows', (s) => s.bytesIn);
  serviceCounter('swarmnet_service_bytes_sent_total', 'Bytes to clients of closed flows', (s) => s.bytesOut);

  const labels = ['service', 'protocol', 'port', 'backend', 'task'] as const;
  const lbl = (b: ReturnType<Mesh['backendStats']>[number]) => ({ service: b.service, protocol: b.protocol, port: String(b.port), backend: b.backend, task: b.name });
  new Gauge({
    name: 'swarmnet_backend_connections_active',
    help: 'Open flows per backend',
    labelNames: labels,
    registers: [registry],
    collect() {
      this.reset();
      for (const b of mesh.backendStats()) this.set(lbl(b), b.active);
    },
  });
  new Gauge({
    name: 'swarmnet_backend_up',
    help: '1 when the backend takes new flows (healthy, not draining, not backing off)',
    labelNames: labels,
    registers: [registry],
    collect() {
      this.reset();
      for (const b of mesh.backendStats()) this.set(lbl(b), b.healthy && !b.draining && !b.backoff ? 1 : 0);
    },
  });
  const backendCounter = (name: string, help: string, pick: (b: ReturnType<Mesh['backendStats']>[number]) => number) =>
    new Counter({
      name,
      help,
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        for (const b of mesh.backendStats()) this.inc(lbl(b), pick(b));
      },
    });
  backendCounter('swarmnet_backend_connections_total', 'Flows sent to a backend', (b) => b.total);
  backendCounter('swarmnet_backend_bytes_received_total', 'Bytes from clients forwarded to a backend', (b) => b.bytesIn);
  backendCounter('swarmnet_backend_bytes_sent_total', 'Bytes from a backend forwarded to clients', (b) => b.bytesOut);
  new Counter({
    name: 'swarmnet_backend_errors_total',
    help: 'Failures per backend by kind (connect, refused, reset, empty)',
    labelNames: [...labels, 'kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const b of mesh.backendStats()) for (const [kind, n] of Object.entries(b.errors)) this.inc({ ...lbl(b), kind }, n);
    },
  });
  udpMetrics(registry, mesh);
  relayThreadMetrics(registry, mesh);
  if (overlay) overlayMetrics(registry, overlay);
  if (keyRotator) keyMetrics(registry, keyRotator);
  if (reaper) reaperMetrics(registry, reaper);
  if (dns) registerDnsMetrics(registry, dns);
  return registry;
}

/** The native UDP engine's counters (read at scrape time); no samples when UDP runs in JS. */
function udpMetrics(registry: Registry, mesh: Mesh): void {
  type Stats = NonNullable<ReturnType<Mesh['udpStats']>>;
  const labelled = (name: string, help: string, labelNames: string[], read: (s: Stats) => Array<[Record<string, string>, number]>, kind: 'counter' | 'gauge' = 'counter') => {
    const collect = function (this: Counter | Gauge) {
      this.reset();
      const s = mesh.udpStats();
      if (s) for (const [l, n] of read(s)) (this instanceof Counter ? this.inc(l, n) : this.set(l, n));
    };
    if (kind === 'counter') new Counter({ name, help, labelNames, registers: [registry], collect });
    else new Gauge({ name, help, labelNames, registers: [registry], collect });
  };
  labelled('swarmnet_udp_flows', 'UDP flows open in the native engine', [], (s) => [[{}, s.flows]], 'gauge');
  labelled('swarmnet_udp_upstream_sockets', "UDP engine's upstream sockets open (its file descriptors besides listeners)", [], (s) => [[{}, s.sockets]], 'gauge');
  labelled('swarmnet_udp_flows_dropped_total', 'UDP flows dropped: unanswered and evicted for a new one (early_drop), new ones refused on a table full of answered flows (table_full), no upstream socket free toward the task (no_port)', ['reason'], (s) => [
    [{ reason: 'early_drop' }, s.earlyDrop],
    [{ reason: 'table_full' }, s.tableFull],
    [{ reason: 'no_port' }, s.noPort],
  ]);
  labelled('swarmnet_udp_datagrams_total', 'Datagrams through the UDP engine by direction (rx: from clients, tx: to clients)', ['direction'], (s) => [
    [{ direction: 'rx' }, s.rxPackets],
    [{ direction: 'tx' }, s.txPackets],
  ]);
  labelled('swarmnet_udp_datagrams_dropped_total', 'Datagrams the UDP engine dropped, by reason', ['reason'], (s) => [
    [{ reason: 'truncated' }, s.truncated],
    [{ reason: 'bad_source' }, s.badSource],
    [{ reason: 'stray' }, s.stray],
    [{ reason: 'unforwarded' }, s.unforwarded],
    [{ reason: 'send' }, s.txErrors],
  ]);
  labelled('swarmnet_udp_icmp_errors_total', 'ICMP errors read from the upstream sockets', [], (s) => [[{}, s.icmp]]);
  labelled('swarmnet_udp_replays_total', 'Unanswered datagrams of failed-over flows: resent to the next task, or lost (the ICMP quote was not the whole datagram)', ['result'], (s) => [
    [{ result: 'sent' }, s.replayed],
    [{ result: 'lost' }, s.replayLost],
  ]);
  labelled('swarmnet_udp_socket_errors_total', 'Upstream sockets the UDP engine could not open', [], (s) => [[{}, s.socketErrors]]);
}

/** The native TCP relay's threads (--threads): how the kernel spread connections over them. */
function relayThreadMetrics(registry: Registry, mesh: Mesh): void {
  new Counter({
    name: 'swarmnet_relay_thread_connections_total',
    help: 'TCP connections accepted per relay thread',
    labelNames: ['thread'],
    registers: [registry],
    collect() {
      this.reset();
      mesh.threadStats().forEach((s, i) => this.inc({ thread: String(i) }, s.accepted));
    },
  });
  new Gauge({
    name: 'swarmnet_relay_thread_connections_active',
    help: 'Open TCP relays per relay thread',
    labelNames: ['thread'],
    registers: [registry],
    collect() {
      this.reset();
      mesh.threadStats().forEach((s, i) => this.set({ thread: String(i) }, s.open));
    },
  });
}

/** Tasks of containers that died without a CNI DEL, removed by this node. */
function reaperMetrics(registry: Registry, r: ContainerReaper): void {
  readCounter(registry, 'swarmnet_container_tasks_reaped_total', 'Tasks removed because their container namespace was gone (died without a CNI DEL)', () => r.counters.reaped);
  readCounter(registry, 'swarmnet_container_reap_errors_total', 'Failed removals or detaches of dead containers (retried on the next sweep)', () => r.counters.failures);
}

/** A counter without labels whose value is read at scrape time. */
function readCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** The key rotator of encrypted networks (single node, managers): what it did here, and how often it failed. */
function keyMetrics(registry: Registry, r: KeyRotator): void {
  const counter = (name: string, help: string, read: () => number) => readCounter(registry, name, help, read);
  counter('swarmnet_esp_key_rotations_total', 'Keys of encrypted networks added by this node', () => r.rotations);
  counter('swarmnet_esp_key_promotions_total', 'Keys of encrypted networks made primary by this node', () => r.promotions);
  counter('swarmnet_esp_key_check_errors_total', 'Key rotation checks that failed (retried on the next check)', () => r.failures);
}

/** VXLAN engine counters (native, read at scrape time) and the ARP proxy's. */
function overlayMetrics(registry: Registry, overlay: Overlay): void {
  const counter = (name: string, help: string, labelNames: string[], read: (s: NonNullable<ReturnType<Overlay['engineStats']>>) => Array<[Record<string, string>, number]>) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const s = overlay.engineStats();
        if (s) for (const [l, n] of read(s)) this.inc(l, n);
      },
    });
  counter('swarmnet_vxlan_packets_total', 'VXLAN packets by direction (rx: decapsulated into a TAP, tx: encapsulated and sent)', ['direction'], (s) => [
    [{ direction: 'rx' }, s.rxPackets],
    [{ direction: 'tx' }, s.txPackets],
  ]);
  counter('swarmnet_vxlan_bytes_total', 'Inner frame bytes by direction', ['direction'], (s) => [
    [{ direction: 'rx' }, s.rxBytes],
    [{ direction: 'tx' }, s.txBytes],
  ]);
  counter('swarmnet_vxlan_dropped_total', 'VXLAN packets and frames dropped, by reason', ['reason'], (s) => [
    [{ reason: 'short' }, s.rxShort],
    [{ reason: 'bad_flags' }, s.rxBadFlags],
    [{ reason: 'unknown_vni' }, s.rxUnknownVni],
    [{ reason: 'unknown_peer' }, s.rxUnknownPeer],
    [{ reason: 'oversize' }, s.rxOversize],
    [{ reason: 'tap_write' }, s.rxTapErrors],
    [{ reason: 'send' }, s.txErrors],
    [{ reason: 'multicast' }, s.txDropped],
    [{ reason: 'bad_gso' }, s.txBadGso],
    [{ reason: 'unknown_unicast' }, overlay.counters.unknownUnicast],
  ]);
  counter('swarmnet_vxlan_offload_total', 'TCP super-frames cut into segments (tso) and packets merged into super-frames (gro)', ['kind'], (s) => [
    [{ kind: 'tso' }, s.txTsoFrames],
    [{ kind: 'gro' }, s.rxGroFrames],
  ]);
  counter('swarmnet_esp_packets_total', 'ESP datagrams of encrypted networks by direction (tx: sealed and sent, rx: opened and delivered)', ['direction'], (s) => [
    [{ direction: 'rx' }, s.espRxPackets],
    [{ direction: 'tx' }, s.espTxPackets],
  ]);
  counter('swarmnet_esp_dropped_total', 'Frames and ESP datagrams of encrypted networks dropped, by reason', ['reason'], (s) => [
    [{ reason: 'no_sa' }, s.espTxNoSa],
    [{ reason: 'seal' }, s.espTxErrors],
    [{ reason: 'short' }, s.espRxShort],
    [{ reason: 'unknown_spi' }, s.espRxUnknownSpi],
    [{ reason: 'bad_icv' }, s.espRxBadIcv],
    [{ reason: 'replay' }, s.espRxReplay],
    [{ reason: 'too_old' }, s.espRxTooOld],
    [{ reason: 'bad_trailer' }, s.espRxBadTrailer],
    [{ reason: 'wrong_vni' }, s.espRxWrongVni],
    [{ reason: 'clear_on_encrypted' }, s.rxClearOnEncrypted],
  ]);
  counter('swarmnet_esp_keepalives_total', 'NAT keepalives received on the ESP port (RFC 3948 section 2.3)', [], (s) => [[{}, s.espRxKeepalive]]);
  counter('swarmnet_overlay_arp_total', 'ARP requests from the bridge: answered by the proxy, or left to local endpoints', ['result'], () => [
    [{ result: 'replied' }, overlay.counters.arpReplies],
    [{ result: 'unanswered' }, overlay.counters.arpUnanswered],
  ]);
}
