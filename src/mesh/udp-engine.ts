/**
 * The native UDP engine (native/src/udp.h) as seen from TypeScript: one per Mesh, run
 * on this thread's event loop, or one per data-plane thread (options.threads). C owns the sockets and the flows; JS decides which
 * task a flow goes to (one call per receive batch of new flows, through a shared
 * Uint32Array) and hears of ended flows and failed tasks (batched, through a shared
 * Float64Array), dispatched to the listener by id.
 *
 *   C: batch of new flows -> decide(n) -> owner.decide per record -> tag, ip, port
 *   C: flows ended, tasks failed, watched flows answered -> events(n)
 *      -> owner.closed / owner.failed / owner.answered
 */
import { check, loadAddon, type Addon, type UdpHandle } from '../native/index.js';

/** A task as C knows it: JS's tag for it and its address (ip as in_addr.s_addr reads on this host). */
export interface UdpTarget {
  readonly tag: number;
  readonly ip: number;
  readonly port: number;
  /** Whether C should report the flow's first answer (the task has failures to clear). */
  readonly watch: boolean;
}

/** A listener's side of the engine. Handlers run synchronously inside the engine and must not call back into it. */
export interface UdpFlowOwner {
  /** A task for a new flow (exclude 0) or for a flow whose task `exclude` failed; undefined drops the flow. */
  decide(clientIp: number, clientPort: number, exclude: number, tries: number): UdpTarget | undefined;
  /** A flow JS gave a task has ended; tag 0 when it had none left. */
  closed(tag: number, reason: number, bytesIn: number, bytesOut: number): void;
  /** Task `tag` answered a flow's datagram with an ICMP error (errno as the kernel names it). */
  failed(tag: number, errno: number): void;
  /** Task `tag` answered a flow decided with `watch` set: it works again. */
  answered(tag: number): void;
}

/** The engine's counters (names from native/src/udp.h UDP_STATS). */
export interface UdpStats {
  flows: number;
  sockets: number;
  flowsTotal: number;
  earlyDrop: number;
  tableFull: number;
  noPort: number;
  rxPackets: number;
  txPackets: number;
  truncated: number;
  badSource: number;
  stray: number;
  icmp: number;
  replayed: number;
  replayLost: number;
  unforwarded: number;
  txErrors: number;
  socketErrors: number;
}

/** Constants from C (addon udpConst): record sizes, event types, close reasons. */
const CONST_KEYS = ['decideMax', 'eventMax', 'decisionFields', 'eventFields', 'flowFields', 'evClosed', 'evFailed', 'evAnswered', 'rIdle', 'rEarlyDrop', 'rNoPort', 'rNoBackend', 'rClosed'] as const;
export type UdpConst = Record<(typeof CONST_KEYS)[number], number>;

export interface UdpEngineOptions {
  maxFlows: number;
  /** Pool of upstream sockets per thread: the engine's file descriptors, and the most flows toward one task. */
  sockets: number;
  /**
   * Data-plane threads (--threads). 1: the engine runs on this thread's loop. More: an
   * engine per thread, each on a thread of its own with its own flow table (max-flows
   * split evenly), pool and listeners bound with SO_REUSEPORT, so the kernel hashes each
   * flow's 4-tuple to one thread; decisions and events still run here.
   */
  threads?: number;
}

/** One native engine: on this loop, or one data-plane thread's. */
interface Part {
  readonly handle: UdpHandle;
  readonly dec: Uint32Array;
  readonly ev: Float64Array;
}

/** in_addr.s_addr as read on a little-endian host <-> dotted quad. */
export function ipv4FromU32(v: number): string {
  return `${v & 255}.${(v >>> 8) & 255}.${(v >>> 16) & 255}.${v >>> 24}`;
}

export function ipv4ToU32(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return undefined;
  return (o[0]! | (o[1]! << 8) | (o[2]! << 16) | (o[3]! << 24)) >>> 0;
}

export class UdpEngine {
  readonly #addon: Addon;
  readonly #parts: Part[] = [];
  readonly c: UdpConst;
  readonly #owners = new Map<number, UdpFlowOwner>();
  /** Per listener, the engines it is bound on: all, or the first only for an ephemeral port (each would draw its own). */
  readonly #bound = new Map<number, Part[]>();
  #nextLid = 1;
  #destroyed = false;
  /** Exceptions thrown by owners' handlers (a bug); the engine carries on. */
  handlerErrors = 0;

  private constructor(addon: Addon, c: UdpConst, o: UdpEngineOptions) {
    this.#addon = addon;
    this.c = c;
    const threads = Math.max(1, Math.floor(o.threads ?? 1));
    const maxFlows = Math.ceil(o.maxFlows / threads);
    try {
      for (let i = 0; i < threads; i++) {
        const dec = new Uint32Array(c.decideMax * c.decisionFields);
        const ev = new Float64Array(c.eventMax * c.eventFields);
        const h = addon.udpCreate!(maxFlows, o.sockets, dec, ev, (n) => this.#decide(dec, n), (n) => this.#events(ev, n), threads > 1);
        if (typeof h === 'number') check(h, 'udpCreate');
        this.#parts.push({ handle: h as UdpHandle, dec, ev });
      }
    } catch (err) {
      for (const p of this.#parts) addon.udpDestroy(p.handle);
      throw err;
    }
  }

  /** Engines (data-plane threads) running. */
  get threads(): number {
    return this.#parts.length;
  }

  /** An engine, or undefined when the addon is missing or predates the UDP engine. */
  static create(o: UdpEngineOptions): UdpEngine | undefined {
    const addon = loadAddon();
    const c = addon?.udpConst;
    if (!addon?.udpCreate || !c || !CONST_KEYS.every((k) => typeof c[k] === 'number')) return undefined;
    return new UdpEngine(addon, c as UdpConst, o);
  }

  /** Binds ip:port for `owner`; returns the listener id. */
  listen(owner: UdpFlowOwner, ip: string, port: number, idleMs: number): number {
    const lid = this.#nextLid++;
    this.#owners.set(lid, owner);
    const parts = port === 0 ? this.#parts.slice(0, 1) : this.#parts;
    const done: Part[] = [];
    try {
      for (const p of parts) {
        check(this.#addon.udpListen(p.handle, lid, ip, port, Math.min(idleMs, 0xffffffff)), 'bind');
        done.push(p);
      }
    } catch (err) {
      for (const p of done) this.#addon.udpUnlisten(p.handle, lid);
      this.#owners.delete(lid);
      throw err;
    }
    this.#bound.set(lid, parts);
    return lid;
  }

  /** Closes the listener; its flows' CLOSED events reach the owner before this returns. */
  unlisten(lid: number): void {
    if (!this.#destroyed) for (const p of this.#on(lid)) this.#addon.udpUnlisten(p.handle, lid);
    this.#owners.delete(lid);
    this.#bound.delete(lid);
  }

  /** Closes the listener's flows on task `tag` (drain timeout). */
  closeTag(lid: number, tag: number): void {
    if (!this.#destroyed) for (const p of this.#on(lid)) this.#addon.udpCloseTag(p.handle, lid, tag);
  }

  #on(lid: number): readonly Part[] {
    return this.#bound.get(lid) ?? [];
  }

  /** The listener's flows, `c.flowFields` numbers each: client ip, client port, tag, idle ms, bytes in, bytes out, answered. */
  flows(lid: number): Float64Array {
    if (this.#destroyed) return new Float64Array(0);
    const all = this.#on(lid).map((p) => this.#addon.udpFlows(p.handle, lid)).filter((r): r is Float64Array => typeof r !== 'number');
    if (all.length === 1) return all[0]!;
    const out = new Float64Array(all.reduce((n, r) => n + r.length, 0));
    let at = 0;
    for (const r of all) {
      out.set(r, at);
      at += r.length;
    }
    return out;
  }

  /** The counters summed over the threads. */
  stats(): UdpStats | undefined {
    const per = this.threadStats();
    if (!per) return undefined;
    const sum: Record<string, number> = {};
    for (const s of per) for (const [k, v] of Object.entries(s)) sum[k] = (sum[k] ?? 0) + v;
    return sum as unknown as UdpStats;
  }

  /** Each thread's counters (one entry with --threads 1): how the kernel spread the flows. */
  threadStats(): UdpStats[] | undefined {
    if (this.#destroyed) return undefined;
    const out: UdpStats[] = [];
    for (const p of this.#parts) {
      const s = this.#addon.udpStats(p.handle);
      if (typeof s === 'number') return undefined;
      out.push(s as unknown as UdpStats);
    }
    return out;
  }

  /** Closes every socket (once libuv releases the poll handle). Listeners first: they end their flows with events. */
  destroy(): void {
    if (this.#destroyed) return;
    for (const lid of [...this.#owners.keys()]) this.unlisten(lid);
    this.#destroyed = true;
    for (const p of this.#parts) this.#addon.udpDestroy(p.handle);
  }

  #decide(d: Uint32Array, n: number): void {
    const f = this.c.decisionFields;
    for (let i = 0; i < n; i++) {
      const b = i * f;
      let t: UdpTarget | undefined;
      try {
        t = this.#owners.get(d[b]!)?.decide(d[b + 1]!, d[b + 2]!, d[b + 3]!, d[b + 4]!);
      } catch {
        this.handlerErrors++;
      }
      d[b + 5] = t?.tag ?? 0;
      d[b + 6] = t?.ip ?? 0;
      d[b + 7] = t?.port ?? 0;
      d[b + 8] = t?.watch ? 1 : 0;
    }
  }

  #events(e: Float64Array, n: number): void {
    const f = this.c.eventFields;
    for (let i = 0; i < n; i++) {
      const b = i * f;
      const owner = this.#owners.get(e[b + 1]!);
      if (!owner) continue;
      try {
        if (e[b] === this.c.evClosed) owner.closed(e[b + 2]!, e[b + 3]!, e[b + 4]!, e[b + 5]!);
        else if (e[b] === this.c.evFailed) owner.failed(e[b + 2]!, e[b + 3]!);
        else if (e[b] === this.c.evAnswered) owner.answered(e[b + 2]!);
      } catch {
        this.handlerErrors++;
      }
    }
  }
}
