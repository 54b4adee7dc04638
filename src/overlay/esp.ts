/**
 * Security associations of encrypted networks, derived from the network's key ring.
 *
 * Every (key generation, sender, receiver) gets its own SA: an AES key, a nonce salt
 * and an SPI, all from HKDF-SHA256 (RFC 5869) over the ring key, so that
 *   - no two senders ever share an AES key, and a sequence-number IV (RFC 4106 section
 *     3.1) is unique per key as long as one sender's counter never repeats;
 *   - both ends' epochs (random, new whenever an engine starts) are in the derivation:
 *     a restarted sender starts at sequence 1 under a new key, and a restarted
 *     receiver (whose replay window is gone) shares no key with packets sent before.
 *
 *   info = "swarmnet esp v1" | vni (u32) | gen (u32) | sender IPv4 | receiver IPv4
 *          | sender epoch (8 bytes) | receiver epoch (8 bytes)       (big-endian)
 *   okm  = HKDF-SHA256(ikm = ring key, salt = "", info, keyLen + 8)
 *   key  = okm[0, keyLen)   salt = okm[keyLen, +4)   spi = u32(okm[keyLen + 4, +4))
 *
 * SPIs 0-255 are reserved (RFC 4303 section 2.1); a derived one below 256 gets 256 added.
 * An independent implementation (the interop test's scapy) derives the same SAs from
 * the ring, the two addresses and the two epochs.
 */
import { hkdfSync } from 'node:crypto';
import type { Cipher, SaDirection, SecurityAssociation } from './types.js';

const INFO_LABEL = Buffer.from('swarmnet esp v1', 'ascii');
export const KEY_BYTES: Record<Cipher, number> = { 'aes-128-gcm': 16, 'aes-256-gcm': 32 };
export const EPOCH_PATTERN = /^[0-9a-f]{16}$/;
const SPI_MIN = 256;

export interface SaEnds {
  vni: number;
  gen: number;
  sender: string;
  receiver: string;
  senderEpoch: string;
  receiverEpoch: string;
}

function ipv4(addr: string): Buffer {
  const parts = addr.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new TypeError(`not an IPv4 address: ${addr}`);
  return Buffer.from(parts);
}

function epoch(e: string): Buffer {
  if (!EPOCH_PATTERN.test(e)) throw new TypeError(`not an ESP epoch (16 hex digits): ${e}`);
  return Buffer.from(e, 'hex');
}

export function saInfo(e: SaEnds): Buffer {
  const nums = Buffer.alloc(8);
  nums.writeUInt32BE(e.vni >>> 0, 0);
  nums.writeUInt32BE(e.gen >>> 0, 4);
  return Buffer.concat([INFO_LABEL, nums, ipv4(e.sender), ipv4(e.receiver), epoch(e.senderEpoch), epoch(e.receiverEpoch)]);
}

/** The SA of `e` under ring key `ikm`, seen from `dir` (`out` on the sender, `in` on the receiver). */
export function deriveSa(ikm: Buffer, cipher: Cipher, e: SaEnds, dir: SaDirection): SecurityAssociation {
  const keyLen = KEY_BYTES[cipher];
  const okm = Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), saInfo(e), keyLen + 8));
  let spi = okm.readUInt32BE(keyLen + 4);
  if (spi < SPI_MIN) spi += SPI_MIN;
  return { dir, spi, vni: e.vni, peer: dir === 'out' ? e.receiver : e.sender, key: okm.subarray(0, keyLen), salt: okm.subarray(keyLen, keyLen + 4) };
}
