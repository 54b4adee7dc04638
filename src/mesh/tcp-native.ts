/**
 * TCP routing mesh on the native relay engine (native/src/relay.h): C accepts, picks
 * the task, connects, retries and moves the bytes on the engine's threads; no
 * per-connection call into JS. This file keeps the two in step:
 *
 *   pool rebuilt (membership, weights, health, eligibility) -> push the scheduler's
 *     view to C: every task with its number, the schedulable ones in order, and the
 *     sh/mh tables built here (the same on every node)
 *   sync (before stats, conn ls, pool changes; every second while draining)
 *     -> C counters into the Backend objects and service counters, and a task's
 *     flows registered on the pool while C has any, so drain works as for JS flows
 *   drain timeout -> FIN both ways on the task's relays, in C
 */
import type { Backend } from './backend.js';
import type { ConnView } from './conntable.js';
import type { MeshSettings } from './constants.js';
import type { ListenerInfo, ServiceCounters } from './listener.js';
import type { Pool } from './pool.js';
import type { NativeBackendStats, NativePoolStats, NativeRelay, PoolTable } from './relay.js';
import { maglevSize, maglevTable, sourceHashTable } from './sched/index.js';
import { constants } from 'node:os';
import { errnoName } from '../native/index.js';

/** How often a listener with draining tasks (or closed, with relays left) is synced. */
const DRAIN_SYNC_MS = 1_000;

export class NativeTcpListener {
  #lid = 0;
  readonly #bids = new Map<Backend, number>();
  readonly #byBid = new Map<number, Backend>();
  #nextBid = 1;
  /** The C counters at the last sync, to add only what changed to the service counters. */
  #last: NativePoolStats | undefined;
  /** Per task: the pool registration that stands for its relays in C while it has any. */
  readonly #flows = new Map<Backend, () => void>();
  #timer: NodeJS.Timeout | undefined;
  #gone = false;

  constructor(
    readonly info: ListenerInfo,
    private readonly pool: Pool,
    private readonly settings: MeshSettings,
    private readonly counters: ServiceCounters,
    private readonly relay: NativeRelay,
  ) {}

  async listen(): Promise<void> {
    const s = this.settings;
    this.#lid = this.relay.listen({
      host: this.info.host,
      port: this.info.port,
      keepaliveS: Math.round(s.keepAliveMs / 1000),
      proxy: this.info.proxyProtocol,
      idleTimeoutMs: s.tcpIdleTimeoutMs,
      connectTimeoutMs: s.connectTimeoutMs,
      retries: s.retries,
      replayLimit: s.replayLimitBytes,
      backoffBaseMs: s.backoffBaseMs,
      backoffMaxMs: s.backoffMaxMs,
    });
    this.pool.onRebuild = (list) => this.#push(list);
    this.pool.rebuild();
  }

  /** True once closed and every relay of the listener has ended. */
  get gone(): boolean {
    return this.#gone;
  }

  /** Stops accepting; relays run on (they drain with their tasks) and are still synced. */
  close(): void {
    if (!this.#lid || !this.relay.stats(this.#lid)?.listening) return;
    this.sync();
    this.pool.onRebuild = undefined;
    this.relay.unlisten(this.#lid);
    this.#watch();
  }

  #bid(b: Backend): number {
    let bid = this.#bids.get(b);
    if (bid === undefined) {
      bid = this.#nextBid++;
      this.#bids.set(b, bid);
      this.#byBid.set(bid, b);
    }
    return bid;
  }

  #push(list: readonly Backend[]): void {
    for (const [b, bid] of this.#bids) {
      if (this.pool.backends.get(b.id) === b || this.#flows.has(b)) continue;
      this.#bids.delete(b);
      this.#byBid.delete(bid);
    }
    const known = [...this.pool.backends.values()].map((b) => ({ bid: this.#bid(b), host: b.spec.host, port: b.spec.port, weight: b.spec.weight }));
    const t: PoolTable = { lb: this.pool.lb, known, list: list.map((b) => this.#bid(b)) };
    if (t.lb === 'sh' && list.length) t.sh = sourceHashTable(list);
    if (t.lb === 'mh' && list.length) t.mh = maglevTable(list.map((b) => b.id), maglevSize(list.length));
    this.relay.pool(this.#lid, t);
    this.#watch();
  }

  /** Reads the C counters into the JS objects that metrics, `conn ls` and drain use. */
  sync(): void {
    if (!this.#lid || this.#gone) return;
    const s = this.relay.stats(this.#lid);
    if (!s) return this.#end();
    const last = this.#last;
    const c = this.counters;
    c.active += s.active - (last?.active ?? 0);
    c.total += s.total - (last?.total ?? 0);
    c.bytesIn += s.bytesIn - (last?.bytesIn ?? 0);
    c.bytesOut += s.bytesOut - (last?.bytesOut ?? 0);
    c.noBackend += s.noBackend - (last?.noBackend ?? 0);
    c.retries += s.retries - (last?.retries ?? 0);
    this.#last = s;
    for (const bs of s.backends) {
      const b = this.#byBid.get(bs.bid);
      if (b) this.#syncBackend(b, bs);
    }
    this.#watch();
  }

  #syncBackend(b: Backend, s: NativeBackendStats): void {
    const detach = this.#flows.get(b);
    if (s.active > 0 && !detach) this.#flows.set(b, this.pool.attach(b, { close: () => this.relay.closeBackend(this.#lid, s.bid) }));
    if (s.active === 0 && detach) {
      this.#flows.delete(b);
      detach();
    }
    b.active = s.active;
    b.total = s.total;
    b.bytesIn = s.bytesIn;
    b.bytesOut = s.bytesOut;
    b.failures = s.failures;
    b.connectCounts.set(s.connectCounts);
    b.connectSeconds = s.connectSeconds;
    b.retries = s.retries;
    b.downUntil = s.downInMs > 0 ? Date.now() + s.downInMs : 0;
    if (s.empty) b.errors.set('empty', s.empty);
    if (s.reset) b.errors.set('reset', s.reset);
    for (const [errno, n] of s.errnos) b.errors.set(errno === constants.errno.ECONNREFUSED ? 'refused' : errnoName(errno).toLowerCase(), n);
  }

  /** The relays' pool entries are released and the C listener is forgotten. */
  #end(): void {
    this.#gone = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const [b, detach] of this.#flows) {
      b.active = 0;
      detach();
    }
    this.#flows.clear();
  }

  /** Syncs every second while a task drains or the closed listener has relays left. */
  #watch(): void {
    const closed = this.pool.onRebuild === undefined;
    const wanted = !this.#gone && (closed || [...this.pool.backends.values()].some((b) => b.draining));
    if (wanted && !this.#timer) {
      this.#timer = setInterval(() => this.sync(), DRAIN_SYNC_MS);
      this.#timer.unref();
    } else if (!wanted && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** The listener's rows of `conn ls`. */
  conns(): ConnView[] {
    if (!this.#lid || this.#gone) return [];
    return this.relay.conns(this.#lid).map((c) => {
      const b = this.#byBid.get(c.bid);
      return {
        proto: 'tcp',
        state: c.running ? 'ESTABLISHED' : 'SYN_SENT',
        client: `${c.clientIp}:${c.clientPort}`,
        local: `${c.localIp}:${c.localPort}`,
        service: this.info.service,
        backend: b && `${b.spec.host}:${b.spec.port}`,
        backendName: b?.spec.name,
        expiresInMs: Math.max(0, c.idleTimeoutMs - c.idleMs),
        bytesIn: c.bytesIn,
        bytesOut: c.bytesOut,
      };
    });
  }
}
