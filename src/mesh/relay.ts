/**
 * The native relay engine (native/src/relay.h) as seen from TypeScript: one engine per
 * process, its threads started once; listeners addressed by id. The engine accepts,
 * picks the task (from the table `pool` pushes), connects, retries and relays without
 * calling into JS; JS reads counters and the connection table as snapshots.
 */
import { check, loadAddon, type Addon } from '../native/index.js';
import type { SchedulerName } from '../control/constants.js';
import type { ServiceCounters } from './listener.js';
import { CONNECT_BUCKETS_S } from './constants.js';

/** Scheduler codes of native/src/relay.h enum relay_lb. */
export const LB_CODES: Record<SchedulerName, number> = { rr: 0, wrr: 1, lc: 2, wlc: 3, sh: 4, mh: 5 };
/** PROXY protocol codes of struct relay_listen_args. */
const PROXY_CODES = { none: 0, v1: 1, v2: 2 } as const;

/** Field counts of the snapshots (native/src/addon_relay.c). */
const POOL_FIELDS = 7;
const ERRNO_SLOTS = 6;
/** Per-bucket connect counts (CONNECT_BUCKETS_S and one past them), then their sum in seconds. */
const CONNECT_FIELDS = CONNECT_BUCKETS_S.length + 2;
/** The last: relays moved to another task after this one failed them. */
const BACKEND_FIELDS = 9 + 2 * ERRNO_SLOTS + CONNECT_FIELDS + 1;
const CONN_FIELDS = 10;

export interface ListenOptions {
  host: string;
  port: number;
  keepaliveS: number;
  proxy: keyof typeof PROXY_CODES;
  idleTimeoutMs: number;
  connectTimeoutMs: number;
  retries: number;
  replayLimit: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/** One task as the engine knows it: `bid` is the listener's number for it. */
export interface NativeBackendSpec {
  bid: number;
  host: string;
  port: number;
  weight: number;
}

export interface PoolTable {
  lb: SchedulerName;
  known: NativeBackendSpec[];
  /** bids of the schedulable tasks, in the scheduler's order (sorted by task id). */
  list: number[];
  /** sh: 256 indexes into list; mh: the Maglev table of indexes into list. */
  sh?: Int32Array;
  mh?: Int32Array;
}

/** The listener's service counters as C keeps them, its state and its tasks' counters. */
export interface NativePoolStats extends ServiceCounters {
  listening: boolean;
  backends: NativeBackendStats[];
}

export interface NativeBackendStats {
  bid: number;
  active: number;
  total: number;
  bytesIn: number;
  bytesOut: number;
  failures: number;
  downInMs: number;
  empty: number;
  reset: number;
  /** Failed connects by errno. */
  errnos: Map<number, number>;
  /** Connects (established or failed) per bucket of CONNECT_BUCKETS_S, the last past them; their sum, seconds. */
  connectCounts: Float64Array;
  connectSeconds: number;
  retries: number;
}

export interface NativeConn {
  clientIp: string;
  clientPort: number;
  localIp: string;
  localPort: number;
  /** 0 before the first task was picked. */
  bid: number;
  running: boolean;
  bytesIn: number;
  bytesOut: number;
  idleMs: number;
  idleTimeoutMs: number;
}

/** a.b.c.d -> host-order number, as the addon takes addresses. */
export function ipToNumber(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw Object.assign(new Error(`not an IPv4 address: ${ip}`), { code: 'EINVAL' });
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function numberToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/**
 * The scheduler slice the data-plane threads (TCP relay, UDP engine) ask for when they
 * start: under EEVDF (Linux 6.12+) a short slice makes a woken thread due soon, so a
 * relay woken by a segment does not wait out the slice of whatever runs on its core
 * (native/src/sched_slice.h; docs/bench.md, "p99 at two threads"). 0 keeps the
 * kernel's default. Call before the threads start; nothing to do without the addon.
 */
export function setThreadSlice(us: number): void {
  const addon = loadAddon();
  if (addon) check(addon.threadSlice(us), 'threadSlice');
}

export class NativeRelay {
  readonly #addon: Addon;
  /** Threads the engine runs (the system may have refused some of those asked for). */
  readonly threads: number;
  #nextListener = 1;

  private constructor(addon: Addon, threads: number) {
    this.#addon = addon;
    // The C counts are binned at bounds of its own: the same as the JS path's, or the histogram lies.
    const bounds = addon.relayConnectBuckets();
    if (bounds.length !== CONNECT_BUCKETS_S.length || CONNECT_BUCKETS_S.some((b, i) => Math.abs(bounds[i]! - b) > 1e-12)) {
      throw new Error(`the addon's connect buckets (${[...bounds].join(',')}) are not CONNECT_BUCKETS_S: rebuild it`);
    }
    this.threads = check(addon.relayInit(threads), 'relayInit');
  }

  /**
   * The engine is per process, so there is one NativeRelay per process; the first call
   * sets its thread count. Undefined when the addon could not be built or loaded.
   */
  static shared(threads: number): NativeRelay | undefined {
    if (sharedRelay === null) {
      const addon = loadAddon();
      sharedRelay = addon ? new NativeRelay(addon, threads) : undefined;
    }
    return sharedRelay;
  }

  listen(o: ListenOptions): number {
    const lid = this.#nextListener++;
    const opts = [o.keepaliveS, PROXY_CODES[o.proxy], o.idleTimeoutMs, o.connectTimeoutMs, o.retries, o.replayLimit, o.backoffBaseMs, o.backoffMaxMs];
    check(this.#addon.relayListen(lid, ipToNumber(o.host), o.port, opts), 'listen');
    return lid;
  }

  /** Stops accepting; the listener's relays run on and its stats stay readable until the last ends. */
  unlisten(lid: number): void {
    this.#addon.relayUnlisten(lid);
  }

  pool(lid: number, t: PoolTable): void {
    const known = new Uint32Array(t.known.length * 4);
    t.known.forEach((b, i) => known.set([b.bid, ipToNumber(b.host), b.port, b.weight], i * 4));
    check(this.#addon.relayPool(lid, LB_CODES[t.lb], known, Uint32Array.from(t.list), t.sh, t.mh), 'relayPool');
  }

  /** Undefined once the listener is closed and its last relay ended. */
  stats(lid: number): NativePoolStats | undefined {
    const v = this.#addon.relayStats(lid);
    if (!v) return undefined;
    const backends: NativeBackendStats[] = [];
    for (let i = 0, o = POOL_FIELDS + 1; i < v[POOL_FIELDS]!; i++, o += BACKEND_FIELDS) {
      const errnos = new Map<number, number>();
      for (let s = 0; s < ERRNO_SLOTS; s++) if (v[o + 10 + 2 * s]! > 0) errnos.set(v[o + 9 + 2 * s]!, v[o + 10 + 2 * s]!);
      const c = o + 9 + 2 * ERRNO_SLOTS;
      const connectCounts = v.slice(c, c + CONNECT_BUCKETS_S.length + 1);
      backends.push({ bid: v[o]!, active: v[o + 1]!, total: v[o + 2]!, bytesIn: v[o + 3]!, bytesOut: v[o + 4]!, failures: v[o + 5]!, downInMs: v[o + 6]!, empty: v[o + 7]!, reset: v[o + 8]!, errnos, connectCounts, connectSeconds: v[c + CONNECT_FIELDS - 1]!, retries: v[c + CONNECT_FIELDS]! });
    }
    return { active: v[0]!, total: v[1]!, bytesIn: v[2]!, bytesOut: v[3]!, noBackend: v[4]!, retries: v[5]!, listening: v[6] === 1, backends };
  }

  conns(lid: number): NativeConn[] {
    const v = this.#addon.relayConns(lid) ?? new Float64Array(0);
    const out: NativeConn[] = [];
    for (let o = 0; o + CONN_FIELDS <= v.length; o += CONN_FIELDS) {
      out.push({
        clientIp: numberToIp(v[o]!),
        clientPort: v[o + 1]!,
        localIp: numberToIp(v[o + 2]!),
        localPort: v[o + 3]!,
        bid: v[o + 4]!,
        running: v[o + 5] === 1,
        bytesIn: v[o + 6]!,
        bytesOut: v[o + 7]!,
        idleMs: v[o + 8]!,
        idleTimeoutMs: v[o + 9]!,
      });
    }
    return out;
  }

  /** Per relay thread: connections it accepted, relays it has open. */
  threadStats(): Array<{ accepted: number; open: number }> {
    const v = this.#addon.relayThreads() ?? new Float64Array(0);
    return Array.from({ length: v.length / 2 }, (_, i) => ({ accepted: v[2 * i]!, open: v[2 * i + 1]! }));
  }

  /** FIN both ways on every relay of task `bid` (drain timeout). */
  closeBackend(lid: number, bid: number): number {
    return this.#addon.relayCloseBackend(lid, bid);
  }
}

// Process-wide by nature (see shared()); null = not loaded yet.
let sharedRelay: NativeRelay | undefined | null = null;
