/**
 * ARP proxy frames (RFC 826) for Ethernet/IPv4. The overlay answers a container's
 * "who has IP" for endpoints on other nodes from the control plane, so no ARP
 * request ever crosses the overlay (no flooding).
 *
 *   Ethernet: dst(6) src(6) type=0x0806(2)
 *   ARP:      htype=1(2) ptype=0x0800(2) hlen=6(1) plen=4(1) op(2)
 *             sha(6) spa(4) tha(6) tpa(4)
 */
import { ARP_HTYPE_ETHERNET, ARP_OP_REPLY, ARP_OP_REQUEST, ARP_PAYLOAD_BYTES, ETH_HEADER_BYTES, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from './constants.js';
import { ipFromBytes, ipToBytes } from './mac.js';

export interface ArpRequest {
  senderMac: Buffer;
  senderIp: string;
  targetIp: string;
}

/** The request in `frame`, or undefined for anything else (replies, other protocols, short frames). */
export function parseArpRequest(frame: Buffer): ArpRequest | undefined {
  if (frame.length < ETH_HEADER_BYTES + ARP_PAYLOAD_BYTES) return undefined;
  if (frame.readUInt16BE(12) !== ETHERTYPE_ARP) return undefined;
  const a = ETH_HEADER_BYTES;
  if (frame.readUInt16BE(a) !== ARP_HTYPE_ETHERNET || frame.readUInt16BE(a + 2) !== ETHERTYPE_IPV4) return undefined;
  if (frame[a + 4] !== 6 || frame[a + 5] !== 4 || frame.readUInt16BE(a + 6) !== ARP_OP_REQUEST) return undefined;
  return {
    senderMac: Buffer.from(frame.subarray(a + 8, a + 14)),
    senderIp: ipFromBytes(frame, a + 14),
    targetIp: ipFromBytes(frame, a + 24),
  };
}

/** The reply telling `req`'s sender that `req.targetIp` is at `mac`. */
export function arpReply(req: ArpRequest, mac: Buffer): Buffer {
  const f = Buffer.alloc(ETH_HEADER_BYTES + ARP_PAYLOAD_BYTES);
  req.senderMac.copy(f, 0);
  mac.copy(f, 6);
  f.writeUInt16BE(ETHERTYPE_ARP, 12);
  const a = ETH_HEADER_BYTES;
  f.writeUInt16BE(ARP_HTYPE_ETHERNET, a);
  f.writeUInt16BE(ETHERTYPE_IPV4, a + 2);
  f[a + 4] = 6;
  f[a + 5] = 4;
  f.writeUInt16BE(ARP_OP_REPLY, a + 6);
  mac.copy(f, a + 8);
  ipToBytes(req.targetIp).copy(f, a + 14);
  req.senderMac.copy(f, a + 18);
  ipToBytes(req.senderIp).copy(f, a + 24);
  return f;
}
