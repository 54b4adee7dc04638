/**
 * Forwarding of names outside the cluster to upstream resolvers, tried in order:
 * UDP first, TCP when the upstream truncated (RFC 7766 section 5) or when the client
 * itself came over TCP; SERVFAIL when every upstream failed or timed out. UDP goes over
 * one socket per handler, reused (upstream-udp.ts).
 */
import { connect } from 'node:net';
import { FLAG, RCODE } from './constants.js';
import type { DnsStats } from './metrics.js';
import type { Handler, Reply } from './types.js';
import { UpstreamTimeout, UpstreamUdp } from './upstream-udp.js';

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

export function forwardHandler(o: ForwardOptions): Handler {
  const udp = new UpstreamUdp(o.stats && ((why) => o.stats!.upstreamDropped[why]++));
  return async (q): Promise<Reply> => {
    if (o.stats) o.stats.forwarded++;
    for (const up of o.upstreams) {
      const started = process.hrtime.bigint();
      try {
        let raw = q.transport === 'tcp' ? await overTcp(up, q.raw, o.timeoutMs) : await udp.exchange(up, q.raw, o.timeoutMs);
        if (q.transport === 'udp' && raw.length >= 4 && raw.readUInt16BE(2) & FLAG.TC) raw = await overTcp(up, q.raw, o.timeoutMs);
        o.stats?.observeUpstream(Number(process.hrtime.bigint() - started) / 1e9);
        return { raw };
      } catch (err) {
        // Counted, then the next upstream.
        if (o.stats) o.stats.upstreamErrors[err instanceof UpstreamTimeout ? 'timeout' : 'error']++;
      }
    }
    return { rcode: RCODE.SERVFAIL, answers: [], authoritative: false };
  };
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
