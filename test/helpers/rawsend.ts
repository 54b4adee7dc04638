/**
 * Crafted IPv4 packets, sent from the test process's (root) namespace through a raw
 * socket (`raw-socket`, IPPROTO_RAW: IP_HDRINCL, the IP header is ours), so a test can
 * speak with any source address and port: ESP-in-UDP "from a member's address" to a
 * namespace-host (the root namespace routes 10.213.<slot>.0/24 via the bridge), or a
 * captured packet replayed as it was.
 *
 *   IPv4 header (20, no options): version/IHL | TOS | total length | id | flags, fragment
 *     offset | TTL | protocol 17 | header checksum (RFC 1071) | source | destination
 *   UDP header (8, RFC 768): source port | destination port | length | checksum
 *   payload
 *
 * Linux fills in the total length and the header checksum of an IP_HDRINCL packet
 * whatever they say (raw(7)); they are correct here anyway, so a built packet is also
 * what goes on the wire, byte for byte. One exception: an IP id of 0 without DF is
 * replaced by one of the kernel's (a replay differs there; nothing ESP authenticates).
 */
import { createRequire } from 'node:module';

/** The part of `raw-socket` (no type declarations published) used here. */
interface RawSocket {
  send(buf: Buffer, offset: number, length: number, address: string, after: (err: Error | null, bytes: number) => void): void;
  setOption(level: number, option: number, value: number): void;
  pauseRecv(): void;
  close(): void;
  on(ev: 'error', fn: (err: Error) => void): void;
}
interface RawModule {
  createSocket(o: { protocol: number; addressFamily?: number }): RawSocket;
  SocketLevel: { IPPROTO_IP: number };
  SocketOption: { IP_HDRINCL: number };
}
const require = createRequire(import.meta.url);
const raw = require('raw-socket') as RawModule;

/** IPPROTO_RAW (RFC 791 reserved 255; Linux: send-only, IP_HDRINCL implied). */
const IPPROTO_RAW = 255;
const IPPROTO_UDP = 17;
const IPV4_HEADER = 20;
const UDP_HEADER = 8;
const DEFAULT_TTL = 64;

export interface Udp4 {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
  ttl?: number;
  /** IP id; random when absent. */
  id?: number;
  /**
   * UDP checksum: computed (default), or 0, "none", as RFC 3948 section 2.1 has
   * ESP-in-UDP senders send it; Linux accepts both.
   */
  udpChecksum?: 'compute' | 'zero';
}

function addrBytes(a: string): Buffer {
  const p = a.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new TypeError(`not an IPv4 address: ${a}`);
  return Buffer.from(p);
}

/** RFC 1071 Internet checksum of `parts` (summed as one byte string). */
export function internetChecksum(...parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < all.length; i += 2) sum += all.readUInt16BE(i);
  if (all.length % 2) sum += all[all.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The IPv4 header checksum of `packet` (its checksum field taken as zero). */
export function ipv4HeaderChecksum(packet: Buffer): number {
  const header = Buffer.from(packet.subarray(0, (packet[0]! & 0x0f) * 4));
  header.writeUInt16BE(0, 10);
  return internetChecksum(header);
}

/** An IPv4/UDP packet with both checksums right (or the UDP one zero). */
export function buildUdp4(d: Udp4): Buffer {
  const src = addrBytes(d.src);
  const dst = addrBytes(d.dst);
  const udpLen = UDP_HEADER + d.payload.length;
  const b = Buffer.alloc(IPV4_HEADER + udpLen);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(d.id ?? Math.floor(Math.random() * 0x10000), 4);
  b[8] = d.ttl ?? DEFAULT_TTL;
  b[9] = IPPROTO_UDP;
  src.copy(b, 12);
  dst.copy(b, 16);
  b.writeUInt16BE(ipv4HeaderChecksum(b), 10);
  b.writeUInt16BE(d.sport, IPV4_HEADER);
  b.writeUInt16BE(d.dport, IPV4_HEADER + 2);
  b.writeUInt16BE(udpLen, IPV4_HEADER + 4);
  d.payload.copy(b, IPV4_HEADER + UDP_HEADER);
  if ((d.udpChecksum ?? 'compute') === 'compute') {
    // RFC 768: over the pseudo-header (src, dst, 0, proto, UDP length) and the datagram.
    const pseudo = Buffer.alloc(12);
    src.copy(pseudo, 0);
    dst.copy(pseudo, 4);
    pseudo[9] = IPPROTO_UDP;
    pseudo.writeUInt16BE(udpLen, 10);
    const sum = internetChecksum(pseudo, b.subarray(IPV4_HEADER));
    b.writeUInt16BE(sum === 0 ? 0xffff : sum, IPV4_HEADER + 6);
  }
  return b;
}

function dstOf(packet: Buffer): string {
  if (packet.length < IPV4_HEADER || packet[0]! >> 4 !== 4) throw new TypeError('not an IPv4 packet');
  return `${packet[16]}.${packet[17]}.${packet[18]}.${packet[19]}`;
}

/**
 * Sends whole IPv4 packets as they are (a captured one replayed, one built by esp.py or
 * buildUdp4), in order, each to the destination in its header. Resolves when all are sent.
 */
export async function sendIpv4(packets: Buffer | Buffer[]): Promise<void> {
  const list = Array.isArray(packets) ? packets : [packets];
  let sock = openRaw();
  try {
    for (const p of list) {
      // raw-socket closes a socket whose poll reports an error (an ICMP error queued on
      // it, say) and drops its queued sends without calling back: such a socket, or a send
      // that never completes, gets a new socket and the packet is sent again, once.
      if (sock.dead) sock = openRaw();
      try {
        await sendOne(sock, p);
      } catch (err) {
        if (!(err as { retry?: boolean }).retry) throw err;
        sock.close();
        sock = openRaw();
        await sendOne(sock, p);
      }
    }
  } finally {
    sock.close();
  }
}

type Raw = RawSocket & { dead: boolean; failed?: (err: Error) => void };

function openRaw(): Raw {
  const sock = raw.createSocket({ protocol: IPPROTO_RAW }) as Raw;
  sock.dead = false;
  sock.pauseRecv(); // IPPROTO_RAW receives nothing; do not keep the event loop alive for it
  sock.on('error', (err) => {
    sock.dead = true;
    sock.failed?.(Object.assign(new Error(`raw socket: ${err.message}`, { cause: err }), { retry: true }));
  });
  sock.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
  return sock;
}

/** One send: rejects with `retry` when the socket died under it or the send never completed. */
function sendOne(sock: Raw, p: Buffer): Promise<void> {
  const dst = dstOf(p);
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(Object.assign(new Error(`raw send to ${dst}: no completion`), { retry: true })), 2000);
    const done = (err?: Error) => {
      clearTimeout(timer);
      sock.failed = undefined;
      if (err) reject(err);
      else resolve();
    };
    sock.failed = done;
    sock.send(p, 0, p.length, dst, (err, bytes) => {
      if (err) done(new Error(`raw send of ${p.length} bytes to ${dst}: ${err.message}`, { cause: err }));
      else if (bytes !== p.length) done(new Error(`raw send to ${dst}: ${bytes} of ${p.length} bytes sent`));
      else done();
    });
  });
}

/** Builds and sends IPv4/UDP datagrams with the given (spoofed) sources. */
export function sendUdp4(d: Udp4 | Udp4[]): Promise<void> {
  return sendIpv4((Array.isArray(d) ? d : [d]).map(buildUdp4));
}
