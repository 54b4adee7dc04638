/**
 * The UDP engine's counters (native/src/udp.h, read at scrape time; with UDP in JS,
 * its flow bound's and zeros): no samples while there is no engine.
 */
import type { Registry } from 'prom-client';
import { by, readMetrics, type Sample } from '../util/metrics.js';
import type { UdpStats } from './udp-engine.js';

export function registerUdpMetrics(registry: Registry, stats: () => UdpStats | undefined, threads: () => UdpStats[] = () => []): void {
  const m = readMetrics(registry);
  const read = (pick: (s: UdpStats) => Sample[]) => (): Sample[] => {
    const s = stats();
    return s ? pick(s) : [];
  };
  m.gauge('swarmnet_udp_flows', 'UDP flows open in the native engine', [], read((s) => [[{}, s.flows]]));
  m.gauge('swarmnet_udp_upstream_sockets', "UDP engine's upstream sockets open (its file descriptors besides listeners)", [], read((s) => [[{}, s.sockets]]));
  m.counter('swarmnet_udp_flows_dropped_total', 'UDP flows dropped: unanswered and evicted for a new one (early_drop), new ones refused on a table full of answered flows (table_full), no upstream socket free toward the task (no_port)', ['reason'], read((s) => by('reason', { early_drop: s.earlyDrop, table_full: s.tableFull, no_port: s.noPort })));
  m.counter('swarmnet_udp_datagrams_total', 'Datagrams through the UDP engine by direction (rx: from clients, tx: to clients)', ['direction'], read((s) => by('direction', { rx: s.rxPackets, tx: s.txPackets })));
  m.counter('swarmnet_udp_datagrams_dropped_total', 'Datagrams the UDP engine dropped, by reason', ['reason'], read((s) => by('reason', { truncated: s.truncated, bad_source: s.badSource, stray: s.stray, unforwarded: s.unforwarded, send: s.txErrors })));
  m.counter('swarmnet_udp_icmp_errors_total', 'ICMP errors read from the upstream sockets', [], read((s) => [[{}, s.icmp]]));
  m.counter('swarmnet_udp_replays_total', 'Unanswered datagrams of failed-over flows: resent to the next task, or lost (the ICMP quote was not the whole datagram)', ['result'], read((s) => by('result', { sent: s.replayed, lost: s.replayLost })));
  // --threads: how the kernel's SO_REUSEPORT hash spread the flows over the engine's threads.
  m.counter('swarmnet_udp_thread_flows_total', 'UDP flows the native engine took, per data-plane thread', ['thread'], () => threads().map((s, i): Sample => [{ thread: String(i) }, s.flowsTotal]));
  m.counter('swarmnet_udp_socket_errors_total', 'Upstream sockets the UDP engine could not open', [], read((s) => [[{}, s.socketErrors]]));
}
