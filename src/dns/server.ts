/**
 * The embedded DNS server, UDP and TCP on one address.
 *
 *   datagram/stream -> decode (malformed: FORMERR if the header is readable, else drop)
 *   -> one question -> handler chain (cluster -> forward) -> encode
 *   -> UDP: over 512 bytes (or the client's EDNS size) -> truncated reply with TC set
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import * as packet from 'dns-packet';
import { HEADER_BYTES, RCODE, UDP_EDNS_MAX, UDP_PLAIN_MAX } from './constants.js';
import type { Handler, Query, Reply } from './types.js';

export interface DnsServerOptions {
  host: string;
  port: number;
  handlers: Handler[];
}

export class DnsServer {
  readonly #udp: Socket;
  readonly #tcp: Server;
  /** Counters for metrics and tests. */
  readonly stats = { queries: 0, formerr: 0, dropped: 0, servfail: 0 };

  constructor(private readonly o: DnsServerOptions) {
    this.#udp = createSocket('udp4');
    this.#udp.on('message', (msg, rinfo) => {
      void this.#answer(msg, rinfo.address, 'udp').then((out) => {
        if (out) this.#udp.send(out, rinfo.port, rinfo.address);
      });
    });
    this.#udp.on('error', () => undefined);
    this.#tcp = createServer((s) => this.#serveTcp(s));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#udp.once('error', reject);
      this.#udp.bind(this.o.port, this.o.host, () => {
        this.#udp.off('error', reject);
        resolve();
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.#tcp.once('error', reject);
      this.#tcp.listen(this.o.port, this.o.host, () => resolve());
    });
  }

  close(): void {
    this.#udp.close();
    this.#tcp.close();
  }

  /** RFC 1035 section 4.2.2: messages behind a 2-byte length; several per connection. */
  #serveTcp(s: TcpSocket): void {
    let buf = Buffer.alloc(0);
    s.on('error', () => s.destroy());
    s.setTimeout(10_000, () => s.destroy());
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void this.#answer(Buffer.from(msg), s.remoteAddress ?? '', 'tcp').then((out) => {
          if (!out || s.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length);
          s.write(Buffer.concat([len, out]));
        });
      }
    });
  }

  /** Never throws: a malformed packet gets FORMERR or is dropped, a failing handler SERVFAIL. */
  async #answer(msg: Buffer, client: string, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    this.stats.queries++;
    if (msg.length < HEADER_BYTES) {
      this.stats.dropped++;
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
    if (reply && 'raw' in reply) return this.#fit(reply.raw, transport, req);
    const rcode = reply?.rcode ?? RCODE.SERVFAIL;
    if (rcode === RCODE.SERVFAIL) this.stats.servfail++;
    const out = packet.encode({
      type: 'response',
      id: req.id ?? 0,
      flags: (req.flags ?? 0) & packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (reply?.authoritative ? packet.AUTHORITATIVE_ANSWER : 0) | rcode,
      questions: [question],
      answers: reply?.answers ?? [],
    });
    return this.#fit(out, transport, req);
  }

  /** Over UDP a reply larger than the client accepts is cut to its question with TC set (RFC 2181 section 9). */
  #fit(out: Buffer, transport: 'udp' | 'tcp', req: packet.DecodedPacket): Buffer {
    if (transport === 'tcp') return out;
    const opt = req.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const max = Math.min(Math.max(opt?.udpPayloadSize ?? UDP_PLAIN_MAX, UDP_PLAIN_MAX), UDP_EDNS_MAX);
    if (out.length <= max) return out;
    const res = packet.decode(out);
    return packet.encode({ type: 'response', id: res.id ?? 0, flags: (res.flags ?? 0) | packet.TRUNCATED_RESPONSE, questions: res.questions ?? [], answers: [] });
  }

  /** FORMERR echoing the id (RFC 1035 section 4.1.1), with no sections: nothing of the request is trusted. */
  #formerr(msg: Buffer): Buffer {
    this.stats.formerr++;
    const out = Buffer.alloc(HEADER_BYTES);
    msg.copy(out, 0, 0, 2);
    out.writeUInt16BE(0x8000 | RCODE.FORMERR, 2);
    return out;
  }
}
