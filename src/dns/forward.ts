/**
 * Forwarding of names outside the cluster to upstream resolvers, tried in order:
 * UDP first, TCP when the upstream truncated (RFC 7766 section 5) or when the client
 * itself came over TCP; SERVFAIL when every upstream failed or timed out.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { FLAG, RCODE, UDP_EDNS_MAX } from './constants.js';
import type { DnsStats } from './metrics.js';
import type { Handler, Reply } from './types.js';

export interface Upstream {
  host: string;
  port: number;
}

export interface ForwardOptions {
  upstreams: Upstream[];
  timeoutMs: number;
  /** Forwarded queries, failed exchanges and upstream latency are counted here. */
  stats?: DnsStats;
}

/** An upstream that did not answer in time. */
class UpstreamTimeout extends Error {
  readonly code = 'ETIMEDOUT';
}

export function forwardHandler(o: ForwardOptions): Handler {
  return async (q): Promise<Reply> => {
    if (o.stats) o.stats.forwarded++;
    for (const up of o.upstreams) {
      const started = process.hrtime.bigint();
      try {
        let raw = q.transport === 'tcp' ? await overTcp(up, q.raw, o.timeoutMs) : await overUdp(up, q.raw, o.timeoutMs);
        if (q.transport === 'udp' && raw.length >= 4 && raw.readUInt16BE(2) & FLAG.TC) raw = await overTcp(up, q.raw, o.timeoutMs);
        o.stats?.upstreamSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
        return { raw };
      } catch (err) {
        // Counted, then the next upstream.
        if (o.stats) o.stats.upstreamErrors[err instanceof UpstreamTimeout ? 'timeout' : 'error']++;
      }
    }
    return { rcode: RCODE.SERVFAIL, answers: [], authoritative: false };
  };
}

function overUdp(up: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => done(new UpstreamTimeout('timeout')), timeoutMs);
    const done = (err: Error | undefined, msg?: Buffer) => {
      clearTimeout(timer);
      s.close();
      if (err) reject(err);
      else resolve(msg!);
    };
    s.on('error', (err) => done(err));
    s.on('message', (msg) => {
      // Only the answer to this query (same id) counts; anything else is ignored.
      if (msg.length >= 2 && msg.readUInt16BE(0) === query.readUInt16BE(0) && msg.length <= UDP_EDNS_MAX * 16) done(undefined, msg);
    });
    s.send(query, up.port, up.host);
  });
}

/** TCP carries each message behind a 2-byte length (RFC 1035 section 4.2.2). */
function overTcp(up: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: up.host, port: up.port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => s.destroy(new UpstreamTimeout('timeout')), timeoutMs);
    s.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      s.write(Buffer.concat([len, query]));
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        clearTimeout(timer);
        s.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => reject(new Error('closed before a full reply')));
  });
}
