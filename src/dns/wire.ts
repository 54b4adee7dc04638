/**
 * The wire format of the fast path (RFC 1035 section 4.1), read and written without a
 * general decoder. A query is read here only in its plain shape: a standard query, one
 * question of simple labels (letters, digits, `-`, `_`), class IN, no answer or authority
 * records, at most one OPT (RFC 6891) and nothing after it. Anything else is left to the
 * full decoder (dns-packet) on the slow path, which answers it or says FORMERR.
 *
 *    0     2       4        6        8        10       12
 *   | id  | flags | qdcount| ancount| nscount| arcount| qname (labels, 0) | qtype | qclass | [OPT]
 *
 *   OPT (RFC 6891 section 6.1.2):
 *   | 0 (root) | type 41 | class: UDP payload size | TTL: ext-rcode(8) version(8) DO(1) Z(15) | rdlen | options
 *
 * A reply is the request's header and question (its bytes, so the client's id and its
 * letter case come back as sent: RFC 1035 section 7.3, and 0x20 case randomisation works)
 * followed by ready answer records whose owner is a pointer to the question's name
 * (0xc00c, RFC 1035 section 4.1.4), then an OPT when the query had one.
 */
import { CLASS_IN, EDNS, FLAG, HEADER_BYTES, MAX_LABEL_BYTES, MAX_NAME_BYTES, OPCODE_MASK, QTYPE } from './constants.js';

/** The EDNS part of a query (RFC 6891 section 6.1.3). */
export interface Edns {
  udpSize: number;
  version: number;
  /** DNSSEC OK: copied into the reply's OPT (RFC 3225 section 3). */
  dnssecOk: boolean;
}

export interface WireQuery {
  id: number;
  flags: number;
  /** Lower-case (RFC 4343), labels joined by dots, no trailing dot. */
  name: string;
  qtype: number;
  /** Offset just past the question: the bytes [0, questionEnd) are echoed in the reply. */
  questionEnd: number;
  edns: Edns | undefined;
}

/** The records of one answer, ready to follow a question. */
export interface ReadyRecords {
  /** AA and the rcode, ORed into the reply's flags. */
  flags: number;
  count: number;
  /** Authority and additional records after the answers (cached upstream answers); 0 when absent. */
  authority?: number;
  additional?: number;
  bytes: Buffer;
}

/** CD is copied from the query (RFC 4035 section 3.2.2). */
const FLAG_CD = 0x0010;
/** Bytes of an OPT record without options. */
export const OPT_BYTES = 11;
/** A compression pointer to offset 12, the question's name (RFC 1035 section 4.1.4). */
export const POINTER_TO_QNAME = 0xc00c;

/** Label byte -> its lower-case form, 0 for bytes the fast path does not take. */
const LABEL_CHAR = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c);
  if (/[a-z0-9_-]/.test(ch)) LABEL_CHAR[c] = c;
  else if (/[A-Z]/.test(ch)) LABEL_CHAR[c] = c + 32;
}
const DOT = 0x2e;

/**
 * Reads a query of the plain shape; undefined for anything else (the slow path decides).
 * `scratch` (at least MAX_NAME_BYTES long) holds the name while it is lowered.
 */
export function readQuery(msg: Buffer, scratch: Buffer): WireQuery | undefined {
  if (msg.length < HEADER_BYTES + 5) return undefined;
  const flags = msg.readUInt16BE(2);
  if (flags & (FLAG.QR | OPCODE_MASK)) return undefined;
  if (msg.readUInt16BE(4) !== 1 || msg.readUInt16BE(6) !== 0 || msg.readUInt16BE(8) !== 0) return undefined;
  const arcount = msg.readUInt16BE(10);
  if (arcount > 1) return undefined;
  let at = HEADER_BYTES;
  let n = 0;
  for (;;) {
    const len = msg[at];
    if (len === undefined || len > MAX_LABEL_BYTES) return undefined;
    at++;
    if (len === 0) break;
    if (at + len > msg.length || n + len + 1 > MAX_NAME_BYTES) return undefined;
    if (n > 0) scratch[n++] = DOT;
    for (let i = 0; i < len; i++) {
      const c = LABEL_CHAR[msg[at + i]!]!;
      if (c === 0) return undefined;
      scratch[n++] = c;
    }
    at += len;
  }
  if (n === 0 || at + 4 > msg.length) return undefined;
  const qtype = msg.readUInt16BE(at);
  if (msg.readUInt16BE(at + 2) !== CLASS_IN) return undefined;
  const questionEnd = at + 4;
  let edns: Edns | undefined;
  if (arcount === 1) {
    edns = readOpt(msg, questionEnd);
    if (!edns) return undefined;
  } else if (questionEnd !== msg.length) return undefined;
  return { id: msg.readUInt16BE(0), flags, name: scratch.toString('latin1', 0, n), qtype, questionEnd, edns };
}

/** An OPT record at `at` that ends the message exactly (RFC 6891 section 6.1.2). */
function readOpt(msg: Buffer, at: number): Edns | undefined {
  if (at + OPT_BYTES > msg.length || msg[at] !== 0 || msg.readUInt16BE(at + 1) !== QTYPE.OPT) return undefined;
  if (at + OPT_BYTES + msg.readUInt16BE(at + 9) !== msg.length) return undefined;
  return { udpSize: msg.readUInt16BE(at + 3), version: msg[at + 6]!, dnssecOk: (msg.readUInt16BE(at + 7) & EDNS.doBit) !== 0 };
}

export interface WriteOptions {
  /** Largest reply the client takes (UDP); undefined over TCP. Over it: question only, TC set. */
  max: number | undefined;
  /** Extended rcode for the OPT (BADVERS); 0 otherwise. */
  extendedRcode?: number;
}

/** The reply to `q` (read from `msg`) carrying `rec`; with an OPT when the query had one. */
export function writeReply(msg: Buffer, q: WireQuery, rec: ReadyRecords, o: WriteOptions): Buffer {
  const opt = q.edns ? OPT_BYTES : 0;
  let body = rec.bytes.length;
  let count = rec.count;
  let authority = rec.authority ?? 0;
  let additional = rec.additional ?? 0;
  let flags = FLAG.QR | FLAG.RA | (q.flags & (FLAG.RD | FLAG_CD)) | rec.flags;
  if (o.max !== undefined && q.questionEnd + body + opt > o.max) {
    // RFC 2181 section 9: what does not fit is not sent; TC tells the client to retry over TCP.
    body = 0;
    count = authority = additional = 0;
    flags |= FLAG.TC;
  }
  const out = Buffer.allocUnsafe(q.questionEnd + body + opt);
  msg.copy(out, 0, 0, q.questionEnd);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(count, 6);
  out.writeUInt16BE(authority, 8);
  out.writeUInt16BE(additional + (opt ? 1 : 0), 10);
  if (body) rec.bytes.copy(out, q.questionEnd);
  if (q.edns) writeOpt(out, q.questionEnd + body, q.edns.dnssecOk, o.extendedRcode ?? 0);
  return out;
}

/**
 * Our OPT (RFC 6891 section 6.1.3): version 0, our payload size, the extended rcode's
 * upper 8 bits, DO echoed (RFC 3225 section 3), no options.
 */
export function writeOpt(out: Buffer, at: number, dnssecOk: boolean, extendedRcode: number): void {
  out[at] = 0;
  out.writeUInt16BE(QTYPE.OPT, at + 1);
  out.writeUInt16BE(EDNS.udpPayload, at + 3);
  out[at + 5] = extendedRcode >> 4;
  out[at + 6] = EDNS.version;
  out.writeUInt16BE(dnssecOk ? EDNS.doBit : 0, at + 7);
  out.writeUInt16BE(0, at + 9);
}

/** `out` (a whole reply without OPT) with our OPT appended and ARCOUNT raised by one. */
export function appendOpt(out: Buffer, edns: Edns, extendedRcode = 0): Buffer {
  const res = Buffer.allocUnsafe(out.length + OPT_BYTES);
  out.copy(res);
  res.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  writeOpt(res, out.length, edns.dnssecOk, extendedRcode);
  return res;
}
