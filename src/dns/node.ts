/**
 * The DNS of one node: the cluster's records, their ready-answer cache and the counters,
 * shared by the `--dns` server and every network gateway's; each server differs only in
 * its address and its upstreams.
 */
import type { View } from '../control/view.js';
import { AnswerCache } from './cache.js';
import { ClusterRecords, clusterHandler } from './cluster.js';
import { DEFAULTS } from './constants.js';
import { forwardHandler, type Upstream } from './forward.js';
import { DnsStats } from './metrics.js';
import { NativeDns } from './native.js';
import type { DnsServerOptions } from './server.js';
import type { Handler } from './types.js';

export interface NodeDnsOptions {
  view: View;
  ttlSeconds: number;
  /** Serve UDP from the C fast path when the addon is built (native.ts). */
  native?: boolean;
}

export class NodeDns {
  readonly stats = new DnsStats();
  readonly answers: AnswerCache;
  readonly #cluster: Handler;
  readonly #native: NativeDns | undefined;

  constructor(o: NodeDnsOptions) {
    const records = new ClusterRecords(o);
    this.answers = new AnswerCache({ records, view: o.view, maxEntries: DEFAULTS.answerCacheEntries, stats: this.stats });
    this.#cluster = clusterHandler(records);
    this.#native = o.native ? NativeDns.create({ records, view: o.view, stats: this.stats }) : undefined;
  }

  /** Whether UDP is served by the C fast path. */
  get native(): boolean {
    return this.#native !== undefined;
  }

  /** What a server of this node needs besides its address: cluster then forward to `upstreams`. */
  serverOptions(upstreams: Upstream[]): Omit<DnsServerOptions, 'host' | 'port'> {
    return {
      handlers: [this.#cluster, forwardHandler({ upstreams, timeoutMs: DEFAULTS.upstreamTimeoutMs, stats: this.stats })],
      forward: { upstreams, timeoutMs: DEFAULTS.upstreamTimeoutMs },
      answers: this.answers,
      stats: this.stats,
      ...(this.#native && { native: this.#native }),
    };
  }
}
