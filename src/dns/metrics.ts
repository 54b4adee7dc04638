/**
 * What the DNS servers of a node did, as plain numbers bumped on the serving path and
 * read by Prometheus collectors at scrape time (one `DnsStats` shared by the `--dns`
 * server and every network gateway's). Label sets are bounded: query types are a known
 * list plus `other`, rcodes the ones RFC 1035 and RFC 6891 define that we send plus `other`.
 */
import type { Registry } from 'prom-client';
import { bucketOf, by, one, readMetrics, registerBucketHistogram, type Sample } from '../util/metrics.js';
import { EDNS, QTYPE, RCODE } from './constants.js';

const TYPE_LABELS = ['A', 'AAAA', 'PTR', 'SRV', 'TXT', 'MX', 'CNAME', 'NS', 'SOA', 'ANY', 'other'] as const;
const RCODE_LABELS = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'BADVERS', 'other'] as const;
const TYPE_INDEX = new Map<number, number>(TYPE_LABELS.slice(0, -1).map((t, i) => [QTYPE[t as keyof typeof QTYPE], i]));
const RCODE_CODES: Record<string, number> = { ...RCODE, BADVERS: EDNS.badvers };
const RCODE_INDEX = new Map<number, number>(RCODE_LABELS.slice(0, -1).map((l, i) => [RCODE_CODES[l]!, i]));
const OTHER_TYPE = TYPE_LABELS.length - 1;
const OTHER_RCODE = RCODE_LABELS.length - 1;

/** Upstream exchange times, seconds: loopback resolvers answer in well under a millisecond, the timeout is 2 s (native/src/dns_engine.h counts in the same buckets). */
export const UPSTREAM_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2];

export type DropReason = 'short' | 'long' | 'send';
export type UpstreamError = 'timeout' | 'error';
/** Upstream datagrams dropped (RFC 5452 section 9.1): unreadable, an id not in flight, from another address than asked, another question. */
export type UpstreamDrop = 'malformed' | 'bad_id' | 'bad_source' | 'bad_question';

export class DnsStats {
  /** Replies sent, by query type (row) and rcode (column); a query we cannot read counts as type `other`. */
  readonly replies = new Float64Array(TYPE_LABELS.length * RCODE_LABELS.length);
  /** Queries that got no reply: shorter than a header, longer than the native path reads, or the reply could not be sent. */
  readonly dropped: Record<DropReason, number> = { short: 0, long: 0, send: 0 };
  /** Replies to queries we could not decode (answered FORMERR). */
  malformed = 0;
  /** UDP replies cut to the question with TC set. */
  truncated = 0;
  /** Queries passed to the upstreams (names outside the cluster). */
  forwarded = 0;
  /** Failed exchanges with one upstream (the next is tried). */
  readonly upstreamErrors: Record<UpstreamError, number> = { timeout: 0, error: 0 };
  /** Answers served from the ready-answer cache, and entries built. */
  readonly cache = { hits: 0, builds: 0 };
  /** Upstream answers served from the forward cache (RFC 2308 negative ones included), and answers stored. */
  readonly forwardCache = { hits: 0, stores: 0 };
  /** Replies sent by the native fast path (counted in `replies` too). */
  nativeReplies = 0;
  /** Counters kept elsewhere (the native path), folded in before a scrape. */
  readonly #sources: Array<(into: DnsStats) => void> = [];
  /** Upstream replies dropped unmatched (both paths: upstream-udp.ts and native/src/dns_forward.c). */
  readonly upstreamDropped: Record<UpstreamDrop, number> = { malformed: 0, bad_id: 0, bad_source: 0, bad_question: 0 };
  /** Successful upstream exchanges, per bucket of UPSTREAM_BUCKETS (the last: above them), and their sum in seconds; C adds its own. */
  readonly upstreamSeconds = { counts: new Float64Array(UPSTREAM_BUCKETS.length + 1), sum: 0 };

  /** One upstream exchange of `seconds`. */
  observeUpstream(seconds: number): void {
    this.upstreamSeconds.counts[bucketOf(UPSTREAM_BUCKETS, seconds)]!++;
    this.upstreamSeconds.sum += seconds;
  }

  /** `fold` adds what it counted since its last call to `into`; called before every read. */
  addSource(fold: (into: DnsStats) => void): void {
    this.#sources.push(fold);
  }

  /** Folds the other sources' counts in (at scrape time: the native path counts in C). */
  sync(): void {
    for (const fold of this.#sources) fold(this);
  }

  /** `n` replies sent (one by default). `qtype` undefined: the query could not be read. `rcode` may be extended (BADVERS). */
  reply(qtype: number | undefined, rcode: number, n = 1): void {
    const t = qtype === undefined ? OTHER_TYPE : (TYPE_INDEX.get(qtype) ?? OTHER_TYPE);
    const r = RCODE_INDEX.get(rcode) ?? OTHER_RCODE;
    this.replies[t * RCODE_LABELS.length + r]! += n;
  }
}

/** The DNS collectors, read from `stats` at scrape time (after folding the native path's counts in). */
export function registerDnsMetrics(registry: Registry, stats: DnsStats): void {
  const m = readMetrics(registry);
  const synced = (read: () => Sample[]) => (): Sample[] => {
    stats.sync();
    return read();
  };
  m.counter('swarmnet_dns_queries_total', 'DNS queries answered, by query type and response code', ['type', 'rcode'], synced(() => replySamples(stats)));
  m.counter('swarmnet_dns_dropped_total', 'DNS queries dropped without a reply, by reason (short: under a header; long: over the native path\'s 4096-byte buffer; send: the reply could not be sent)', ['reason'], synced(() => by('reason', stats.dropped)));
  m.counter('swarmnet_dns_malformed_total', 'DNS queries that could not be decoded (answered FORMERR)', [], synced(() => one(stats.malformed)));
  m.counter('swarmnet_dns_truncated_total', 'UDP replies cut to the question with TC set (the client retries over TCP)', [], synced(() => one(stats.truncated)));
  m.counter('swarmnet_dns_forwarded_total', 'DNS queries for names outside the cluster passed to the upstream resolvers', [], synced(() => one(stats.forwarded)));
  m.counter('swarmnet_dns_upstream_errors_total', 'Failed exchanges with an upstream resolver, by reason (the next upstream is tried)', ['reason'], synced(() => by('reason', stats.upstreamErrors)));
  m.counter('swarmnet_dns_native_replies_total', 'DNS replies sent by the native (C) fast path; they are counted in swarmnet_dns_queries_total too', [], synced(() => one(stats.nativeReplies)));
  m.counter('swarmnet_dns_forward_cache_total', 'Upstream answers served from the forward cache (hit, negative ones included: RFC 2308) or stored in it (store)', ['result'], synced(() => by('result', { hit: stats.forwardCache.hits, store: stats.forwardCache.stores })));
  m.counter('swarmnet_dns_answer_cache_total', 'Cluster answers served from the ready-answer cache (hit) or built for it (build)', ['result'], synced(() => by('result', { hit: stats.cache.hits, build: stats.cache.builds })));
  m.counter('swarmnet_dns_upstream_dropped_total', 'Datagrams from the upstream socket dropped unmatched, by reason (malformed; bad_id: no query in flight with that id; bad_source: not from the upstream asked; bad_question: another question; RFC 5452 section 9.1)', ['reason'], synced(() => by('reason', stats.upstreamDropped)));
  registerBucketHistogram(registry, {
    name: 'swarmnet_dns_upstream_duration_seconds',
    help: 'Time for an upstream resolver to answer a forwarded query',
    labelNames: [],
    buckets: UPSTREAM_BUCKETS,
    read: () => {
      stats.sync();
      return [{ labels: {}, counts: stats.upstreamSeconds.counts, sum: stats.upstreamSeconds.sum }];
    },
  });
}

/** The non-zero cells of the type x rcode table. */
function replySamples(stats: DnsStats): Sample[] {
  const out: Sample[] = [];
  TYPE_LABELS.forEach((type, t) =>
    RCODE_LABELS.forEach((rcode, r) => {
      const n = stats.replies[t * RCODE_LABELS.length + r]!;
      if (n) out.push([{ type, rcode }, n]);
    }),
  );
  return out;
}
