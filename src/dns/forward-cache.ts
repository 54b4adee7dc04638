/**
 * A cache of upstream answers, positive and negative, for the names the cluster does not
 * have: served like the cluster's ready answers (the records after the question, behind
 * the request's own header and question) with each TTL less the time held.
 *
 *   upstream reply -> cacheable? (QR, standard query, not TC, NOERROR or NXDOMAIN, the same
 *                     question, records we can walk, no extended rcode)
 *                  -> records after the question, a trailing OPT dropped (ours is added per client)
 *                  -> lifetime: positive: the smallest TTL of its records (RFC 2181 section 5.2);
 *                     negative (NXDOMAIN, or NODATA: NOERROR without answers): min(SOA TTL,
 *                     SOA MINIMUM) of the SOA in the authority section (RFC 2308 section 5);
 *                     no SOA: not cached (same section); capped at `maxTtlSeconds`
 *
 * Keyed by the cluster scope (a name the cluster has for some clients is forwarded for
 * others), type, DO/CD bits (they change what an upstream returns) and the lower-case name.
 * Bounded: the oldest entry goes first. Emptied with the cluster's answers when the view
 * changes (a forwarded name may have become a cluster name).
 */
import { FLAG, HEADER_BYTES, OPCODE_MASK, QTYPE, RCODE } from './constants.js';
import type { ReadyRecords, WireQuery } from './wire.js';

/** An upstream answer as kept: records after the question and where their TTLs are. */
export interface CachedAnswer {
  records: ReadyRecords;
  /** Offsets of the 32-bit TTLs in `records.bytes` (every record but OPT). */
  ttlAt: number[];
  /** How long it may be served, milliseconds. */
  ttlMs: number;
}

export interface ForwardCacheOptions {
  maxEntries: number;
  maxTtlSeconds: number;
  /** Injected in unit tests; the monotonic clock otherwise. */
  now?: () => number;
}

/** CD (RFC 4035 section 3.2.2) and DO (RFC 3225) change an upstream's answer: an entry each. */
const VARIANT_DO = 1;
const VARIANT_CD = 2;
const FLAG_CD = 0x0010;
/** Upstream answers longer than this (after the question) are not kept: the native path's buffer. */
const MAX_BODY = 4096 - HEADER_BYTES - 4 - 255 - 11;
const RCODE_MASK = 0xf;
const POINTER = 0xc0;

export function variantOf(q: WireQuery): number {
  return (q.edns?.dnssecOk ? VARIANT_DO : 0) | (q.flags & FLAG_CD ? VARIANT_CD : 0);
}

interface Entry {
  answer: CachedAnswer;
  born: number;
}

export class ForwardCache {
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(private readonly o: ForwardCacheOptions) {
    this.#now = o.now ?? (() => performance.now());
  }

  /** The answer for this key with TTLs counted down, or undefined (absent or expired). */
  get(scope: string, q: WireQuery): CachedAnswer | undefined {
    const key = keyOf(scope, q);
    const e = this.#entries.get(key);
    if (!e) return undefined;
    const held = this.#now() - e.born;
    if (held >= e.answer.ttlMs) {
      this.#entries.delete(key);
      return undefined;
    }
    const heldS = Math.floor(held / 1000);
    const bytes = Buffer.from(e.answer.records.bytes);
    for (const at of e.answer.ttlAt) bytes.writeUInt32BE(Math.max(bytes.readUInt32BE(at) - heldS, 0), at);
    return { records: { ...e.answer.records, bytes }, ttlAt: e.answer.ttlAt, ttlMs: e.answer.ttlMs - held };
  }

  /** Keeps `reply` (the upstream's answer to `q`, read from `msg`) if it may be cached. */
  store(scope: string, msg: Buffer, q: WireQuery, reply: Buffer): CachedAnswer | undefined {
    const answer = cacheable(msg, q, reply, this.o.maxTtlSeconds);
    if (!answer) return undefined;
    const key = keyOf(scope, q);
    this.#entries.delete(key);
    if (this.#entries.size >= this.o.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, { answer, born: this.#now() });
    return answer;
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}

function keyOf(scope: string, q: WireQuery): string {
  return `${scope}|${q.qtype}|${variantOf(q)}|${q.name}`;
}

/** The cacheable part of an upstream reply, or undefined (see the file header). */
export function cacheable(msg: Buffer, q: WireQuery, reply: Buffer, maxTtlSeconds: number): CachedAnswer | undefined {
  const end = q.questionEnd;
  if (reply.length < end) return undefined;
  const flags = reply.readUInt16BE(2);
  const rcode = flags & RCODE_MASK;
  if (!(flags & FLAG.QR) || flags & (OPCODE_MASK | FLAG.TC) || (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN)) return undefined;
  if (reply.readUInt16BE(4) !== 1 || !sameQuestion(msg, reply, end)) return undefined;
  const counts = [reply.readUInt16BE(6), reply.readUInt16BE(8), reply.readUInt16BE(10)] as const;
  const ttlAt: number[] = [];
  let minTtl = Infinity;
  let soaTtl: number | undefined;
  let at = end;
  let bodyEnd = end;
  let additional = counts[2];
  for (let section = 0; section < 3; section++) {
    for (let i = 0; i < counts[section]!; i++) {
      const name = skipName(reply, at);
      if (name === undefined || name + 10 > reply.length) return undefined;
      const type = reply.readUInt16BE(name);
      const ttl = reply.readUInt32BE(name + 4);
      const rdEnd = name + 10 + reply.readUInt16BE(name + 8);
      if (rdEnd > reply.length) return undefined;
      if (type === QTYPE.OPT) {
        // RFC 6891 section 6.1.1: one OPT, in the additional section; an extended rcode is not kept.
        if (section !== 2 || i !== counts[2] - 1 || reply[name + 4] !== 0) return undefined;
        additional--;
      } else {
        ttlAt.push(name + 4 - end);
        minTtl = Math.min(minTtl, ttl);
        if (section === 1 && type === QTYPE.SOA && rdEnd - 4 >= name + 10) soaTtl = Math.min(ttl, reply.readUInt32BE(rdEnd - 4));
        bodyEnd = rdEnd;
      }
      at = rdEnd;
    }
  }
  if (at !== reply.length || bodyEnd - end > MAX_BODY) return undefined;
  const negative = rcode === RCODE.NXDOMAIN || counts[0] === 0;
  const ttl = Math.min(negative ? (soaTtl ?? 0) : minTtl, maxTtlSeconds);
  if (!(ttl > 0)) return undefined;
  return {
    records: { flags: rcode, count: counts[0], authority: counts[1], additional, bytes: Buffer.from(reply.subarray(end, bodyEnd)) },
    ttlAt,
    ttlMs: ttl * 1000,
  };
}

/** The reply's question is the query's (RFC 5452 section 9.1), letter case aside (RFC 4343). */
function sameQuestion(msg: Buffer, reply: Buffer, end: number): boolean {
  let label = HEADER_BYTES;
  for (let i = HEADER_BYTES; i < end; i++) {
    const a = msg[i]!;
    const b = reply[i]!;
    if (i === label && i < end - 4) {
      // A length byte (the query's labels are plain: no pointers): exactly equal.
      if (a !== b) return false;
      label += a + 1;
    } else if (a !== b && !(i < end - 4 && (a | 0x20) === (b | 0x20) && (a | 0x20) >= 0x61 && (a | 0x20) <= 0x7a)) return false;
  }
  return true;
}

/** Offset just past the name at `at` (labels, or ending in a pointer), or undefined. */
function skipName(buf: Buffer, at: number): number | undefined {
  for (;;) {
    const len = buf[at];
    if (len === undefined) return undefined;
    if ((len & POINTER) === POINTER) return at + 2 <= buf.length ? at + 2 : undefined;
    if (len & POINTER) return undefined;
    at += len + 1;
    if (len === 0) return at;
  }
}
