/**
 * Packet capture for tests, with libpcap (the `cap` addon) on an interface of the root
 * namespace: the topology's bridge snb<slot> sees every frame between the namespace-hosts
 * (libpcap opens it promiscuous, and a promiscuous bridge passes forwarded frames up to
 * its own taps too), a host's veth snv<slot>h<i> sees that host's.
 *
 *   const cap = startCapture(t, { iface: topologyBridge(), filter: 'udp port 4500' });
 *   ... traffic ...
 *   const frames = await cap.stopAfter();         // raw Ethernet frames, in capture order
 *   udpPayloads(frames, 4500)                      // what went over UDP 4500
 *
 * Caveat: frames are taken where the kernel hands them to taps, before segmentation.
 * Between veths a UDP GSO train (UDP_SEGMENT) or a TSO super-frame is seen as one big
 * frame; turn offloads off on the sending side (ethtool -K) to see wire-sized packets.
 */
import { createRequire } from 'node:module';
import { testSlot } from './slot.js';
import { onCleanup } from './cleanup.js';

type Teardown = { teardown(fn: () => unknown): void };

/** The part of `cap` (no type declarations published) used here. */
interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): void;
  on(ev: 'packet', fn: (nbytes: number, truncated: boolean) => void): void;
}
const require = createRequire(import.meta.url);
const { Cap } = require('cap') as { Cap: new () => CapHandle };

/** libpcap's snapshot length in `cap` is 65535; one buffer holds one packet. */
const PACKET_BUFFER = 65535;
/** Kernel ring for packets not yet dispatched (a burst of 40 MB must not overflow it). */
const RING_BYTES = 16 * 1024 * 1024;
const ETH_HEADER = 14;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_VLAN = 0x8100;
const IPPROTO_UDP = 17;

/** The topology bridge of this test process (netns.ts names it snb<slot>). */
export function topologyBridge(): string {
  return `snb${testSlot()}`;
}

/** The root-namespace end of host `i`'s veth (1-based, as netns.ts names it). */
export function hostVeth(i: number): string {
  return `snv${testSlot()}h${i}`;
}

export interface CaptureOpts {
  iface: string;
  /** A pcap-filter(7) expression; all frames when empty. */
  filter?: string;
}

export interface Capture {
  readonly iface: string;
  readonly filter: string;
  /** Frames captured so far (copies, Ethernet header included), in capture order. Live. */
  readonly frames: Buffer[];
  /** Frames that did not fit libpcap's snapshot length. */
  readonly truncated: number;
  /** Resolves with the frames once `pred` holds for them; rejects naming `what` after `ms`. */
  waitFor(what: string, pred: (frames: Buffer[]) => boolean, ms?: number): Promise<Buffer[]>;
  /** Stops capturing (idempotent) and returns the frames. */
  stop(): Buffer[];
  /** Lets frames already in the kernel's ring be dispatched for `ms`, then stops. */
  stopAfter(ms?: number): Promise<Buffer[]>;
}

/** Starts capturing on `iface` of this (the root) namespace; stopped in teardown. */
export function startCapture(t: Teardown, o: CaptureOpts): Capture {
  const filter = o.filter ?? '';
  const handle = new Cap();
  const buffer = Buffer.alloc(PACKET_BUFFER);
  const frames: Buffer[] = [];
  const waiters = new Set<() => void>();
  let truncated = 0;
  let open = true;
  const linkType = handle.open(o.iface, filter, RING_BYTES, buffer);
  const stop = () => {
    if (!open) return;
    open = false;
    handle.close();
  };
  onCleanup(t, stop);
  if (linkType !== 'ETHERNET') {
    stop();
    throw new Error(`capture on ${o.iface}: link type ${linkType}, not ETHERNET`);
  }
  handle.on('packet', (nbytes, trunc) => {
    if (trunc) truncated++;
    frames.push(Buffer.from(buffer.subarray(0, nbytes)));
    for (const w of waiters) w();
  });
  const self: Capture = {
    iface: o.iface,
    filter,
    frames,
    get truncated() {
      return truncated;
    },
    waitFor: (what, pred, ms = 10000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (!pred(frames)) return;
          done();
          resolve(frames);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`capture on ${o.iface} (${filter || 'all'}): no ${what} within ${ms} ms; ${frames.length} frames`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
    stop: () => {
      stop();
      return frames;
    },
    stopAfter: async (ms = 100) => {
      await new Promise((r) => setTimeout(r, ms));
      stop();
      return frames;
    },
  };
  return self;
}

// ---- parsers ------------------------------------------------------------------------
//
//   Ethernet: dst (6) | src (6) | [802.1Q tag (4)] | type (2) | IPv4 header (IHL*4) | UDP (8) | payload

export interface Ipv4View {
  /** Offset of the IPv4 header in the frame. */
  offset: number;
  headerLen: number;
  /** From the header: the frame may carry Ethernet padding beyond it. */
  totalLen: number;
  id: number;
  ttl: number;
  proto: number;
  /** More fragments or a fragment offset: a fragment, not parsed further. */
  fragment: boolean;
  src: string;
  dst: string;
}

export interface UdpView {
  frame: Buffer;
  ip: Ipv4View;
  /** Offset of the UDP header in the frame. */
  offset: number;
  sport: number;
  dport: number;
  /** The UDP length field (header included). */
  length: number;
  checksum: number;
  payload: Buffer;
}

function addr(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** The IPv4 header of an Ethernet frame (one 802.1Q tag allowed), or undefined. */
export function ipv4Of(frame: Buffer): Ipv4View | undefined {
  if (frame.length < ETH_HEADER) return undefined;
  let type = frame.readUInt16BE(12);
  let offset = ETH_HEADER;
  if (type === ETHERTYPE_VLAN && frame.length >= ETH_HEADER + 4) {
    type = frame.readUInt16BE(16);
    offset += 4;
  }
  if (type !== ETHERTYPE_IPV4 || frame.length < offset + 20 || frame[offset]! >> 4 !== 4) return undefined;
  const headerLen = (frame[offset]! & 0x0f) * 4;
  const totalLen = frame.readUInt16BE(offset + 2);
  if (headerLen < 20 || totalLen < headerLen || frame.length < offset + headerLen) return undefined;
  const frag = frame.readUInt16BE(offset + 6);
  return {
    offset,
    headerLen,
    totalLen,
    id: frame.readUInt16BE(offset + 4),
    ttl: frame[offset + 8]!,
    proto: frame[offset + 9]!,
    fragment: (frag & 0x2000) !== 0 || (frag & 0x1fff) !== 0,
    src: addr(frame, offset + 12),
    dst: addr(frame, offset + 16),
  };
}

/** The IPv4 packet of a frame, without the Ethernet header and padding (what rawsend sends). */
export function ipv4Packet(frame: Buffer): Buffer | undefined {
  const ip = ipv4Of(frame);
  return ip && frame.subarray(ip.offset, Math.min(frame.length, ip.offset + ip.totalLen));
}

/** The UDP datagram of a frame (not of a fragment), or undefined. */
export function udpOf(frame: Buffer): UdpView | undefined {
  const ip = ipv4Of(frame);
  if (!ip || ip.proto !== IPPROTO_UDP || ip.fragment) return undefined;
  const offset = ip.offset + ip.headerLen;
  const end = Math.min(frame.length, ip.offset + ip.totalLen);
  if (end < offset + 8) return undefined;
  const length = frame.readUInt16BE(offset + 4);
  return {
    frame,
    ip,
    offset,
    sport: frame.readUInt16BE(offset),
    dport: frame.readUInt16BE(offset + 2),
    length,
    checksum: frame.readUInt16BE(offset + 6),
    payload: frame.subarray(offset + 8, Math.min(end, offset + Math.max(length, 8))),
  };
}

export interface UdpMatch {
  /** Either port. */
  port?: number;
  sport?: number;
  dport?: number;
  src?: string;
  dst?: string;
}

/** The UDP datagrams of `frames` that match every field given. */
export function udpDatagrams(frames: Buffer[], m: UdpMatch = {}): UdpView[] {
  const out: UdpView[] = [];
  for (const f of frames) {
    const u = udpOf(f);
    if (!u) continue;
    if (m.port !== undefined && u.sport !== m.port && u.dport !== m.port) continue;
    if (m.sport !== undefined && u.sport !== m.sport) continue;
    if (m.dport !== undefined && u.dport !== m.dport) continue;
    if (m.src !== undefined && u.ip.src !== m.src) continue;
    if (m.dst !== undefined && u.ip.dst !== m.dst) continue;
    out.push(u);
  }
  return out;
}

/** The payloads of UDP datagrams from or to `port`. */
export function udpPayloads(frames: Buffer[], port: number): Buffer[] {
  return udpDatagrams(frames, { port }).map((u) => u.payload);
}

//   ESP in UDP (RFC 3948 section 2.1): SPI (4) | sequence number, low 32 bits (4) | IV ...
//   A payload of one 0xff byte is a NAT keepalive; an SPI of 0 marks IKE (non-ESP).

export interface EspView {
  udp: UdpView;
  spi: number;
  /** The low 32 bits of the sequence number (the high ones are never on the wire). */
  seq: number;
  /** The 8-byte explicit IV (RFC 4106 section 3.1). */
  iv: Buffer;
  /** The whole IPv4 packet, for esp.py decrypt and rawsend replays. */
  packet: Buffer;
}

/** The ESP packets in UDP on `port` (4500) in `frames`, in capture order. */
export function espPackets(frames: Buffer[], port: number, m: Omit<UdpMatch, 'port'> = {}): EspView[] {
  const out: EspView[] = [];
  for (const u of udpDatagrams(frames, { ...m, dport: port })) {
    if (u.payload.length < 16) continue;
    const spi = u.payload.readUInt32BE(0);
    if (spi === 0) continue;
    out.push({ udp: u, spi, seq: u.payload.readUInt32BE(4), iv: u.payload.subarray(8, 16), packet: ipv4Packet(u.frame)! });
  }
  return out;
}
