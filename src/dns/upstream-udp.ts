/**
 * Queries to upstream resolvers over one UDP socket, reused (not a socket per query):
 *
 *   query -> a fresh id of ours, not in flight (the clients' ids may collide) -> send
 *   reply -> from the upstream it was sent to, with an id in flight and the question
 *            asked (RFC 5452 section 9.1: anything else is ignored) -> the client's id back
 *   no reply within the timeout -> UpstreamTimeout
 *
 * The socket's source port is chosen by the kernel once (ephemeral, random on Linux).
 */
import { randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { HEADER_BYTES, UDP_EDNS_MAX } from './constants.js';
import type { UpstreamDrop } from './metrics.js';

export interface UdpTarget {
  host: string;
  port: number;
}

/** An upstream that did not answer in time. */
export class UpstreamTimeout extends Error {
  readonly code = 'ETIMEDOUT';
}

interface Pending {
  target: UdpTarget;
  query: Buffer;
  clientId: number;
  done: (err: Error | undefined, reply?: Buffer) => void;
}

/** Ids are 16 bits (RFC 1035 section 4.1.1). */
const ID_SPACE = 0x10000;

export class UpstreamUdp {
  #socket: Socket | undefined;
  readonly #pending = new Map<number, Pending>();

  /** `onDrop` counts a datagram that matched no query in flight. */
  constructor(private readonly onDrop?: (why: UpstreamDrop) => void) {}

  exchange(target: UdpTarget, query: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.#pending.size >= ID_SPACE / 2) return Promise.reject(new Error('too many queries in flight'));
    let id: number;
    do id = randomInt(ID_SPACE);
    while (this.#pending.has(id));
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new UpstreamTimeout('timeout')), timeoutMs);
      const done = (err: Error | undefined, reply?: Buffer) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        if (err) reject(err);
        else resolve(reply!);
      };
      this.#pending.set(id, { target, query, clientId: query.readUInt16BE(0), done });
      this.#sock().send(out, target.port, target.host, (err) => err && done(err));
    });
  }

  #sock(): Socket {
    if (this.#socket) return this.#socket;
    const s = (this.#socket = createSocket({ type: 'udp4', lookup: (host, _opts, cb) => cb(null, host, 4) }));
    s.on('message', (msg, r) => this.#onReply(msg, r.address, r.port));
    // A socket error fails what is in flight (each is counted by its caller); the next query makes a new socket.
    s.on('error', (err) => {
      s.close();
      if (this.#socket === s) this.#socket = undefined;
      for (const p of [...this.#pending.values()]) p.done(err);
    });
    // The DNS servers keep the agent alive, not their upstream socket.
    s.unref();
    return s;
  }

  #onReply(msg: Buffer, address: string, port: number): void {
    if (msg.length < HEADER_BYTES || msg.length > UDP_EDNS_MAX * 16) return this.onDrop?.('malformed');
    const p = this.#pending.get(msg.readUInt16BE(0));
    if (!p) return this.onDrop?.('bad_id');
    if (p.target.host !== address || p.target.port !== port) return this.onDrop?.('bad_source');
    if (!sameQuestion(p.query, msg)) return this.onDrop?.('bad_question');
    const reply = Buffer.from(msg);
    reply.writeUInt16BE(p.clientId, 0);
    p.done(undefined, reply);
  }

  close(): void {
    this.#socket?.close();
    this.#socket = undefined;
  }
}

/**
 * The reply repeats the query's question (RFC 5452 section 9.1), letter case aside. A query
 * whose question we cannot walk (a pointer, no question) is not checked beyond its id.
 */
function sameQuestion(query: Buffer, reply: Buffer): boolean {
  if (query.readUInt16BE(4) !== 1) return true;
  let at = HEADER_BYTES;
  for (;;) {
    const len = query[at];
    if (len === undefined || len > 63) return true;
    if (reply[at] !== len) return false;
    at++;
    if (len === 0) break;
    for (let i = 0; i < len; i++, at++) {
      const a = query[at];
      const b = reply[at];
      if (a === undefined) return true;
      if (b === undefined || (a !== b && lower(a) !== lower(b))) return false;
    }
  }
  return at + 4 <= query.length && at + 4 <= reply.length && query.readUInt32BE(at) === reply.readUInt32BE(at);
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}
