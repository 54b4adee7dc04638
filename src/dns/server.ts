/**
 * The embedded DNS server, UDP and TCP on one address.
 *
 *   datagram/stream
 *   -> fast path (wire.ts): a plain query of a cluster name -> ready records from the
 *      answer cache behind the request's own header and question (+ OPT) -> send
 *   -> slow path: decode (malformed: FORMERR if the header is readable, else drop)
 *      -> one question -> handler chain (cluster -> forward) -> encode (+ OPT)
 *   -> UDP: over 512 bytes (or the client's EDNS size) -> truncated reply with TC set
 *
 * With the addon (native.ts) the UDP socket is C's: it answers what its table holds (the
 * same records, copied there from here) and hands the rest to this class (onMiss). A name
 * forwarded here over UDP is marked in C's table, which forwards its next queries itself
 * (native/src/dns_forward.c, same upstreams and timeout) and hands back the cacheable
 * replies (onAnswer) and what it cannot finish (TC, too large: onMiss). Upstream
 * answers are kept in a forward cache (forward-cache.ts, RFC 2308 for negative ones) and
 * served by both paths until their TTL runs out.
 *
 * EDNS (RFC 6891): a reply to a query with an OPT carries ours (version 0, our payload
 * size, DO echoed); a query of a version above 0 gets BADVERS (section 6.1.3); a query
 * without an OPT gets a reply without one. Every reply and every drop is counted in
 * `stats` (metrics.ts), shared by the node's servers.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import * as packet from 'dns-packet';
import type { AnswerSource } from './cache.js';
import { DEFAULTS, EDNS, FLAG, HEADER_BYTES, MAX_NAME_BYTES, QTYPE, RCODE, UDP_EDNS_MAX, UDP_PLAIN_MAX } from './constants.js';
import { ForwardCache, variantOf } from './forward-cache.js';
import { DnsStats } from './metrics.js';
import type { NativeDns, NativeUdp } from './native.js';
import type { Handler, Query, Reply } from './types.js';
import { appendOpt, OPT_BYTES, readQuery, writeReply, type Edns, type ReadyRecords, type WireQuery } from './wire.js';

export interface DnsServerOptions {
  host: string;
  port: number;
  handlers: Handler[];
  /** Ready cluster answers for the fast path; without it every query goes through the handlers. */
  answers?: AnswerSource;
  /** Counters shared by the node's DNS servers (a set of its own when absent). */
  stats?: DnsStats;
  /** The C fast path; without it UDP is served by a `dgram` socket. */
  native?: NativeDns;
  /** The forward handler's upstreams and timeout, for C to forward the names it forwards (with `native`). */
  forward?: { upstreams: ReadonlyArray<{ host: string; port: number }>; timeoutMs: number };
}

type Transport = 'udp' | 'tcp';

/** No records: the body of a BADVERS reply. */
const NO_RECORDS = Buffer.alloc(0);
/** The rcode bits of the flags (RFC 1035 section 4.1.1). */
const RCODE_MASK = 0xf;

export class DnsServer {
  #udp: Socket | undefined;
  #native: NativeUdp | undefined;
  /** C forwards the names marked in its table (native and `forward` given). */
  #nativeForward = false;
  readonly #tcp: Server;
  readonly #forwarded = new ForwardCache({ maxEntries: DEFAULTS.forwardCacheEntries, maxTtlSeconds: DEFAULTS.forwardMaxTtlSeconds });
  readonly stats: DnsStats;
  readonly #unsubscribe: (() => void) | undefined;
  /** The fast path lowers a name here (one per server: the loop runs one query at a time). */
  readonly #scratch = Buffer.allocUnsafe(MAX_NAME_BYTES + 1);

  constructor(private readonly o: DnsServerOptions) {
    this.stats = o.stats ?? new DnsStats();
    this.#unsubscribe = o.answers?.onClear(() => this.#forwarded.clear());
    this.#tcp = createServer((s) => this.#serveTcp(s));
  }

  async listen(): Promise<void> {
    if (this.o.native) {
      this.#native = this.o.native.open(
        this.o.host,
        this.o.port,
        (msg, ip, port) => this.#onDatagram(msg, ip, (out) => this.#native?.send(out, ip, port)),
        (query, reply, ip) => this.#remember(query, ip, reply),
      );
      this.#nativeForward = !!this.o.forward && this.#native.forwardFromC(this.o.forward.upstreams, this.o.forward.timeoutMs);
    } else {
      const udp = this.#dgram();
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(this.o.port, this.o.host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
    }
    await new Promise<void>((resolve, reject) => {
      this.#tcp.once('error', reject);
      this.#tcp.listen(this.o.port, this.o.host, () => resolve());
    });
  }

  /** The JavaScript UDP socket (no addon). */
  #dgram(): Socket {
    // The client's address is always an IP: no resolver round (dgram's default defers every send a tick).
    const udp = (this.#udp = createSocket({ type: 'udp4', lookup: (host, _opts, cb) => cb(null, host, 4) }));
    udp.on('message', (msg, rinfo) => this.#onDatagram(msg, rinfo.address, (out) => udp.send(out, rinfo.port, rinfo.address)));
    // Without a callback, a failed send is reported here (dgram's contract): a reply lost.
    udp.on('error', () => this.stats.dropped.send++);
    return udp;
  }

  #onDatagram(msg: Buffer, client: string, send: (out: Buffer) => void): void {
    const fast = this.#fast(msg, client, 'udp');
    if (fast) {
      send(fast);
      return;
    }
    void this.#answer(msg, client, 'udp').then((out) => {
      if (out) send(out);
    });
  }

  close(): void {
    this.#udp?.close();
    this.#native?.close();
    this.#native = undefined;
    this.#unsubscribe?.();
    this.#tcp.close();
  }

  /** RFC 1035 section 4.2.2: messages behind a 2-byte length; several per connection. */
  #serveTcp(s: TcpSocket): void {
    let buf = Buffer.alloc(0);
    const client = (s.remoteAddress ?? '').replace(/^::ffff:/, '');
    const send = (out: Buffer) => {
      if (s.destroyed) return;
      const len = Buffer.alloc(2);
      len.writeUInt16BE(out.length);
      s.write(Buffer.concat([len, out]));
    };
    s.on('error', () => s.destroy());
    s.setTimeout(10_000, () => s.destroy());
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + msg.length);
        const fast = this.#fast(msg, client, 'tcp');
        if (fast) send(fast);
        else void this.#answer(msg, client, 'tcp').then((out) => out && send(out));
      }
    });
  }

  /** A plain query answered from ready records, or undefined for the slow path. */
  #fast(msg: Buffer, client: string, transport: Transport): Buffer | undefined {
    const q = readQuery(msg, this.#scratch);
    if (!q) return undefined;
    if (q.edns && q.edns.version > EDNS.version) return this.#badvers(msg, q, transport);
    const answers = this.o.answers;
    const rec = answers?.answer(client, q.qtype, q.name);
    if (rec) {
      const rotations = this.#native && answers!.rotations(client, q.qtype, q.name);
      if (rotations) this.o.native!.putCluster(answers!.scopeKey(client), q.qtype, q.name, rotations);
      return this.#reply(msg, q, rec, transport);
    }
    const scope = answers?.scopeKey(client) ?? '';
    const cached = this.#forwarded.get(scope, q);
    if (!cached) return undefined;
    this.stats.forwardCache.hits++;
    if (this.#native) this.o.native!.putForward(this.#native.id, scope, q.qtype, variantOf(q), q.name, cached);
    return this.#reply(msg, q, cached.records, transport);
  }

  #reply(msg: Buffer, q: WireQuery, rec: ReadyRecords, transport: Transport): Buffer {
    const out = writeReply(msg, q, rec, { max: transport === 'udp' ? udpMax(q.edns) : undefined });
    if (out.length < q.questionEnd + rec.bytes.length) this.stats.truncated++;
    this.stats.reply(q.qtype, rec.flags & RCODE_MASK);
    return out;
  }

  /**
   * Keeps an upstream's answer to a plain query for the fast paths (both: JS and C). One it
   * may not keep (RFC 2308 section 5) that reached the client whole over UDP marks the name
   * in C's table (`mark`): C forwards its next queries itself.
   */
  #remember(msg: Buffer, client: string, raw: Buffer, mark = false): void {
    const q = readQuery(msg, this.#scratch);
    if (!q) return;
    const scope = this.o.answers?.scopeKey(client) ?? '';
    const kept = this.#forwarded.store(scope, msg, q, raw);
    if (kept) this.stats.forwardCache.stores++;
    if (!this.#native) return;
    if (kept) this.o.native!.putForward(this.#native.id, scope, q.qtype, variantOf(q), q.name, kept);
    else if (mark && this.#nativeForward) this.o.native!.markForward(this.#native.id, scope, q.qtype, variantOf(q), q.name);
  }

  /** RFC 6891 section 6.1.3: a version we do not speak gets BADVERS and our version, nothing else. */
  #badvers(msg: Buffer, q: WireQuery, transport: Transport): Buffer {
    this.stats.reply(q.qtype, EDNS.badvers);
    return writeReply(msg, q, { flags: EDNS.badvers & RCODE_MASK, count: 0, bytes: NO_RECORDS }, { max: transport === 'udp' ? udpMax(q.edns) : undefined, extendedRcode: EDNS.badvers });
  }

  /** Never throws: a malformed packet gets FORMERR or is dropped, a failing handler SERVFAIL. */
  async #answer(msg: Buffer, client: string, transport: Transport): Promise<Buffer | undefined> {
    if (msg.length < HEADER_BYTES) {
      this.stats.dropped.short++;
      return undefined;
    }
    let req: packet.DecodedPacket;
    try {
      req = packet.decode(msg);
    } catch {
      return this.#formerr(msg);
    }
    const question = req.questions?.[0];
    if (req.type !== 'query' || !question || (req.questions?.length ?? 0) !== 1) return this.#formerr(msg);
    const qtype = QTYPE[question.type as keyof typeof QTYPE] as number | undefined;
    const edns = ednsOf(req);
    if (edns && edns.version > EDNS.version) {
      this.stats.reply(qtype, EDNS.badvers);
      return appendOpt(packet.encode({ type: 'response', id: req.id ?? 0, flags: (req.flags ?? 0) & packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE, questions: [question] }), edns, EDNS.badvers);
    }
    const q: Query = { name: question.name.toLowerCase().replace(/\.$/, ''), type: question.type, client: client.replace(/^::ffff:/, ''), raw: msg, transport };
    let reply: Reply | undefined;
    try {
      for (const h of this.o.handlers) {
        reply = await h(q);
        if (reply) break;
      }
    } catch {
      reply = undefined;
    }
    // An upstream's reply is passed on as it came (its own OPT, or none if it has no EDNS).
    if (reply && 'raw' in reply) {
      const out = this.#fit(reply.raw, transport, udpMax(edns));
      this.#remember(msg, q.client, reply.raw, transport === 'udp' && out === reply.raw && !(out.length >= 4 && out.readUInt16BE(2) & FLAG.TC));
      this.stats.reply(qtype, out.length >= 4 ? out[3]! & RCODE_MASK : RCODE.SERVFAIL);
      return out;
    }
    const rcode = reply?.rcode ?? RCODE.SERVFAIL;
    this.stats.reply(qtype, rcode);
    const out = packet.encode({
      type: 'response',
      id: req.id ?? 0,
      flags: (req.flags ?? 0) & packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (reply?.authoritative ? packet.AUTHORITATIVE_ANSWER : 0) | rcode,
      questions: [question],
      answers: reply?.answers ?? [],
    });
    const fitted = this.#fit(out, transport, udpMax(edns) - (edns ? OPT_BYTES : 0));
    return edns ? appendOpt(fitted, edns) : fitted;
  }

  /**
   * Over UDP a reply larger than the client accepts (`max`, less the room of an OPT we add
   * after) is cut to its question with TC set (RFC 2181 section 9).
   */
  #fit(out: Buffer, transport: Transport, max: number): Buffer {
    if (transport === 'tcp' || out.length <= max) return out;
    this.stats.truncated++;
    try {
      const res = packet.decode(out);
      return packet.encode({ type: 'response', id: res.id ?? 0, flags: (res.flags ?? 0) | packet.TRUNCATED_RESPONSE, questions: res.questions ?? [], answers: [] });
    } catch {
      // An upstream's reply we cannot read: its header alone, with TC (the client retries over TCP).
      const head = Buffer.alloc(HEADER_BYTES);
      out.copy(head, 0, 0, 4);
      head.writeUInt16BE(head.readUInt16BE(2) | FLAG.TC, 2);
      return head;
    }
  }

  /** FORMERR echoing the id (RFC 1035 section 4.1.1), with no sections: nothing of the request is trusted. */
  #formerr(msg: Buffer): Buffer {
    this.stats.malformed++;
    this.stats.reply(undefined, RCODE.FORMERR);
    const out = Buffer.alloc(HEADER_BYTES);
    msg.copy(out, 0, 0, 2);
    out.writeUInt16BE(0x8000 | RCODE.FORMERR, 2);
    return out;
  }
}

/** The largest UDP reply a client takes: 512, or its EDNS size up to our cap (RFC 6891 section 6.2.5). */
function udpMax(edns: Edns | undefined): number {
  return Math.min(Math.max(edns?.udpSize ?? UDP_PLAIN_MAX, UDP_PLAIN_MAX), UDP_EDNS_MAX);
}

/** The query's OPT as the fast path reads it (dns-packet decodes the version and the DO bit). */
function ednsOf(req: packet.DecodedPacket): Edns | undefined {
  const opt = req.additionals?.find((a) => a.type === 'OPT') as packet.OptAnswer | undefined;
  if (!opt) return undefined;
  return { udpSize: opt.udpPayloadSize, version: opt.ednsVersion, dnssecOk: !!opt.flag_do };
}
