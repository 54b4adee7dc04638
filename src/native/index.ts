/**
 * Loader for the C addon in native/ (built by `npm ci` through node-gyp). Every call
 * returns 0 or -errno; `check` turns that into an Error with code, errno and syscall.
 * When the addon is missing (no compiler at install time) callers fall back to JS.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';

export interface Addon {
  /** TCP relay engine (native/src/addon_relay.c); addresses as host-order numbers. */
  relayInit(threads: number): number;
  relayListen(lid: number, ip: number, port: number, opts: number[]): number;
  relayUnlisten(lid: number): number;
  relayPool(lid: number, lb: number, known: Uint32Array, list: Uint32Array, sh: Int32Array | undefined, mh: Int32Array | undefined): number;
  relayStats(lid: number): Float64Array | undefined;
  relayConns(lid: number): Float64Array | undefined;
  relayCloseBackend(lid: number, bid: number): number;
  relayThreads(): Float64Array | undefined;
  relayConnectBuckets(): Float64Array;
  /** The scheduler slice (microseconds, 0: the kernel's default) data-plane threads started from now on ask for (native/src/sched_slice.h). */
  threadSlice(us: number): number;
  /** Overlay (native/src/addon_overlay.c): TAP devices and the VXLAN engine. */
  tapOpen(name: string, mtu: number): number;
  vxlanOpen(ip: string, port: number, espPort: number, onControl: (vni: number, frame: Buffer) => void): number;
  vxlanClose(): number;
  vxlanAddTap(vni: number, fd: number, encrypted: boolean): number;
  vxlanDelTap(vni: number): number;
  vxlanFdbSet(vni: number, mac: Buffer, ip: string): number;
  vxlanFdbDel(vni: number, mac: Buffer): number;
  vxlanPeers(ips: string[]): number;
  vxlanTapWrite(vni: number, frame: Buffer): number;
  vxlanStats(): number[];
  /** ESP security associations (native/src/esp.h): dir 0 in, 1 out. */
  espSaSet(dir: number, spi: number, vni: number, peer: string, key: Buffer, salt: Buffer, seq: bigint): number;
  espSaDel(dir: number, spi: number, peer: string): number;
  espSaList(): Array<[dir: number, spi: number, vni: number, peer: string, seq: bigint]>;
  /** UDP engine (native/src/addon_udp.c, udp.h); absent from an addon built before it. */
  udpCreate?(maxFlows: number, maxSockets: number, decisions: Uint32Array, events: Float64Array, onDecide: (n: number) => void, onEvents: (n: number) => void, threaded?: boolean): UdpHandle | number;
  udpListen(engine: UdpHandle, lid: number, ip: string, port: number, idleMs: number): number;
  udpUnlisten(engine: UdpHandle, lid: number): number;
  udpCloseTag(engine: UdpHandle, lid: number, tag: number): number;
  udpFlows(engine: UdpHandle, lid: number): Float64Array | number;
  udpStats(engine: UdpHandle): Record<string, number> | number;
  udpDestroy(engine: UdpHandle): number;
  /** Record sizes, event types and close reasons, from the C side (the one place they are defined). */
  udpConst: Record<string, number>;
  /** DNS fast path (native/src/addon_dns.c): UDP servers in C, ready answers in a C table. */
  dnsEngine(onMiss: (server: number, msg: Buffer, ip: string, port: number) => void, onAnswer?: (server: number, query: Buffer, reply: Buffer, ip: string) => void): DnsEngineHandle | number;
  dnsOpen(engine: DnsEngineHandle, ip: string, port: number): number;
  dnsClose(engine: DnsEngineHandle, server: number): number;
  dnsSend(engine: DnsEngineHandle, server: number, reply: Buffer, ip: string, port: number): number;
  dnsPut(engine: DnsEngineHandle, entry: Buffer): number;
  dnsScopes(engine: DnsEngineHandle, pairs: Buffer): number;
  dnsClear(engine: DnsEngineHandle): number;
  /** [hits, fwdHits, truncated, short, long, send, then (qtype, rcode, n) triples]; zeroed by the call. */
  dnsTakeStats(engine: DnsEngineHandle): number[];
  /** Names marked for forwarding go to these upstreams (ip(4) port(BE16) each) from C; none: JavaScript forwards (native/src/dns_forward.c). */
  dnsForward?(engine: DnsEngineHandle, server: number, upstreams: Buffer, timeoutMs: number): number;
  /** [forwarded, timeout, error, malformed, badId, badSource, badQuestion, latencySum, latency buckets...]; zeroed by the call. */
  dnsTakeForwardStats?(engine: DnsEngineHandle): number[];
}

/** An engine made by udpCreate (a Node-API External). */
export type UdpHandle = { readonly __udpEngine: unique symbol };

/** An opaque engine made by dnsEngine (an External). */
export type DnsEngineHandle = { readonly __dnsEngine: unique symbol };

export function loadAddon(): Addon | undefined {
  try {
    return createRequire(import.meta.url)('../../../build/Release/swarmnet.node') as Addon;
  } catch {
    return undefined;
  }
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

/** Throws for a negative return, like libuv's UVException. */
export function check(rc: number, syscall: string): number {
  if (rc >= 0) return rc;
  const code = errnoName(-rc);
  throw Object.assign(new Error(`${syscall} failed: ${code}`), { code, errno: rc, syscall });
}
