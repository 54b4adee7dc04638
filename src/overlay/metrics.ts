/**
 * Overlay metrics: the VXLAN/ESP engine's counters (native, read at scrape time; no
 * samples while no engine runs) and the ARP proxy's.
 */
import type { Registry } from 'prom-client';
import { by, readMetrics, type Sample } from '../util/metrics.js';
import type { Overlay } from './overlay.js';

type EngineStats = NonNullable<ReturnType<Overlay['engineStats']>>;

export function registerOverlayMetrics(registry: Registry, overlay: Overlay): void {
  const m = readMetrics(registry);
  const read = (pick: (s: EngineStats) => Sample[]) => (): Sample[] => {
    const s = overlay.engineStats();
    return s ? pick(s) : [];
  };
  m.counter('swarmnet_vxlan_packets_total', 'VXLAN packets by direction (rx: decapsulated into a TAP, tx: encapsulated and sent)', ['direction'], read((s) => by('direction', { rx: s.rxPackets, tx: s.txPackets })));
  m.counter('swarmnet_vxlan_bytes_total', 'Inner frame bytes by direction', ['direction'], read((s) => by('direction', { rx: s.rxBytes, tx: s.txBytes })));
  m.counter('swarmnet_vxlan_dropped_total', 'VXLAN packets and frames dropped, by reason', ['reason'], read((s) => by('reason', { short: s.rxShort, bad_flags: s.rxBadFlags, unknown_vni: s.rxUnknownVni, unknown_peer: s.rxUnknownPeer, oversize: s.rxOversize, tap_write: s.rxTapErrors, send: s.txErrors, multicast: s.txDropped, bad_gso: s.txBadGso, unknown_unicast: overlay.counters.unknownUnicast })));
  m.counter('swarmnet_vxlan_offload_total', 'TCP super-frames cut into segments (tso) and packets merged into super-frames (gro)', ['kind'], read((s) => by('kind', { tso: s.txTsoFrames, gro: s.rxGroFrames })));
  m.counter('swarmnet_esp_packets_total', 'ESP datagrams of encrypted networks by direction (tx: sealed and sent, rx: opened and delivered)', ['direction'], read((s) => by('direction', { rx: s.espRxPackets, tx: s.espTxPackets })));
  m.counter('swarmnet_esp_dropped_total', 'Frames and ESP datagrams of encrypted networks dropped, by reason', ['reason'], read((s) => by('reason', { no_sa: s.espTxNoSa, seal: s.espTxErrors, short: s.espRxShort, unknown_spi: s.espRxUnknownSpi, bad_icv: s.espRxBadIcv, replay: s.espRxReplay, too_old: s.espRxTooOld, bad_trailer: s.espRxBadTrailer, wrong_vni: s.espRxWrongVni, clear_on_encrypted: s.rxClearOnEncrypted })));
  m.counter('swarmnet_esp_keepalives_total', 'NAT keepalives received on the ESP port (RFC 3948 section 2.3)', [], read((s) => [[{}, s.espRxKeepalive]]));
  m.counter('swarmnet_overlay_arp_total', 'ARP requests from the bridge: answered by the proxy, or left to local endpoints', ['result'], read(() => by('result', { replied: overlay.counters.arpReplies, unanswered: overlay.counters.arpUnanswered })));
}
