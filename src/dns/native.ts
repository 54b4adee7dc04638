/**
 * The DNS serving hot path in C (native/src/dns_fast.c, addon_dns.c), fed from here:
 *
 *   UDP datagram -> C: plain query found in the C table -> reply sent in a sendmmsg batch
 *                -> C miss -> onMiss (the server's JavaScript path answers, with dnsSend)
 *                   -> the answer it built is copied into the C table (put*): the next
 *                      query of that name is C's
 *                   -> a name it forwarded is marked in the C table (markForward): the
 *                      next queries of it go upstream from C (native/src/dns_forward.c),
 *                      their cacheable replies back here (onAnswer) for the forward cache
 *   view change  -> the C table and the client scopes emptied at once (as the JS cache)
 *   scrape       -> C's counters folded into the node's DnsStats
 *
 * One engine (one C table) per NodeDns: the cluster's answers are shared by the node's
 * servers (server 0 in the table), upstream answers are per server (their upstreams
 * differ). Node's loop polls the sockets; no thread.
 */
import { isIPv4 } from 'node:net';
import type { View } from '../control/view.js';
import { check, loadAddon, type Addon, type DnsEngineHandle } from '../native/index.js';
import type { ClusterRecords } from './cluster.js';
import type { CachedAnswer } from './forward-cache.js';
import type { DnsStats } from './metrics.js';
import type { ReadyRecords } from './wire.js';

export type MissHandler = (msg: Buffer, ip: string, port: number) => void;
/** An upstream's reply to `query` that C relayed to client `ip`, for the forward cache. */
export type AnswerHandler = (query: Buffer, reply: Buffer, ip: string) => void;

interface ServerHandlers {
  miss: MissHandler;
  answer?: AnswerHandler;
}

/** A UDP socket of one DNS server, owned by C. */
export interface NativeUdp {
  readonly id: number;
  send(reply: Buffer, ip: string, port: number): void;
  /** Forwards the names marked with `markForward` from C to `upstreams`; false when the addon cannot. */
  forwardFromC(upstreams: ReadonlyArray<{ host: string; port: number }>, timeoutMs: number): boolean;
  close(): void;
}

export interface NativeDnsOptions {
  records: ClusterRecords;
  view: View;
  stats: DnsStats;
}

/** The header of an entry as addon_dns.c reads it (put_from). */
const PUT_HEAD = 20;
const ROT_HEAD = 8;
/** An upstream as dnsForward reads it: ip(4) port(BE16). */
const UPSTREAM_BYTES = 6;
/** dnsTakeForwardStats: the latency buckets follow these counters. */
const FORWARD_HEAD = 8;
/** The C table's server id of the cluster's answers. */
const CLUSTER = 0;

export class NativeDns {
  readonly #scopeIds = new Map<string, number>();
  #scopesPushed = false;

  private constructor(
    private readonly addon: Addon,
    private readonly engine: DnsEngineHandle,
    /** Server id -> its JavaScript path, for C's misses. */
    private readonly servers: Map<number, ServerHandlers>,
    private readonly o: NativeDnsOptions,
  ) {
    o.view.onChange(() => {
      addon.dnsClear(engine);
      this.#scopeIds.clear();
      this.#scopesPushed = false;
    });
    o.stats.addSource((into) => this.#fold(into));
  }

  /** Undefined when the addon is not built (or predates the DNS calls): the servers stay in JavaScript. */
  static create(o: NativeDnsOptions): NativeDns | undefined {
    const addon = loadAddon();
    if (!addon || typeof addon.dnsEngine !== 'function') return undefined;
    const servers = new Map<number, ServerHandlers>();
    const engine = addon.dnsEngine(
      (id, msg, ip, port) => servers.get(id)?.miss(msg, ip, port),
      (id, query, reply, ip) => servers.get(id)?.answer?.(query, reply, ip),
    );
    if (typeof engine === 'number') return undefined;
    return new NativeDns(addon, engine, servers, o);
  }

  /** Binds host:port (UDP) in C; datagrams C cannot answer go to `onMiss`. */
  open(host: string, port: number, onMiss: MissHandler, onAnswer?: AnswerHandler): NativeUdp {
    const { addon, engine } = this;
    const id = check(addon.dnsOpen(engine, host, port), 'bind');
    this.servers.set(id, { miss: onMiss, answer: onAnswer });
    return {
      id,
      send: (reply, ip, p) => {
        if (addon.dnsSend(engine, id, reply, ip, p) < 0) this.o.stats.dropped.send++;
      },
      forwardFromC: (upstreams, timeoutMs) => {
        const ups = upstreams.filter((u) => isIPv4(u.host));
        if (!addon.dnsForward || !ups.length || ups.length !== upstreams.length) return false;
        const b = Buffer.alloc(UPSTREAM_BYTES * ups.length);
        ups.forEach((u, i) => {
          u.host.split('.').forEach((octet, k) => (b[UPSTREAM_BYTES * i + k] = Number(octet)));
          b.writeUInt16BE(u.port, UPSTREAM_BYTES * i + 4);
        });
        return addon.dnsForward(engine, id, b, timeoutMs) === 0;
      },
      close: () => {
        this.servers.delete(id);
        addon.dnsClose(engine, id);
      },
    };
  }

  /** A cluster answer (every rotation: C rotates them per query as the JS cache does). */
  putCluster(scopeKey: string, qtype: number, name: string, rotations: readonly ReadyRecords[]): void {
    this.#put({ server: CLUSTER, scopeKey, qtype, variant: 0, name, rotations, ttlMs: 0, ttlAt: [] });
  }

  /** An upstream answer of `server`, expiring with its TTL. */
  putForward(server: number, scopeKey: string, qtype: number, variant: number, name: string, a: CachedAnswer): void {
    this.#put({ server, scopeKey, qtype, variant, name, rotations: [a.records], ttlMs: Math.floor(a.ttlMs), ttlAt: a.ttlAt });
  }

  /** A name `server` forwards (the cluster declined it for this scope): its next queries go upstream from C. */
  markForward(server: number, scopeKey: string, qtype: number, variant: number, name: string): void {
    this.#put({ server, scopeKey, qtype, variant, name, rotations: [], ttlMs: 0, ttlAt: [] });
  }

  #put(e: { server: number; scopeKey: string; qtype: number; variant: number; name: string; rotations: readonly ReadyRecords[]; ttlMs: number; ttlAt: number[] }): void {
    if (e.ttlMs <= 0 && e.ttlAt.length) return;
    const scope = this.#scopeId(e.scopeKey);
    if (scope === undefined) return;
    const name = Buffer.from(e.name, 'latin1');
    let size = PUT_HEAD + name.length + 2 * e.ttlAt.length;
    for (const r of e.rotations) size += ROT_HEAD + r.bytes.length;
    const b = Buffer.allocUnsafe(size);
    b.writeUInt16BE(e.server, 0);
    b.writeUInt32BE(scope, 2);
    b.writeUInt16BE(e.qtype, 6);
    b[8] = e.variant;
    b[9] = name.length;
    b.writeUInt16BE(e.rotations[0]?.flags ?? 0, 10);
    b.writeUInt32BE(e.ttlMs, 12);
    b.writeUInt16BE(e.rotations.length, 16);
    b.writeUInt16BE(e.ttlAt.length, 18);
    let at = PUT_HEAD + name.copy(b, PUT_HEAD);
    for (const t of e.ttlAt) at = b.writeUInt16BE(t, at);
    for (const r of e.rotations) {
      at = b.writeUInt16BE(r.count, at);
      at = b.writeUInt16BE(r.authority ?? 0, at);
      at = b.writeUInt16BE(r.additional ?? 0, at);
      at = b.writeUInt16BE(r.bytes.length, at);
      at += r.bytes.copy(b, at);
    }
    // A refusal (no memory, an entry C cannot hold) leaves the name to JavaScript: nothing lost.
    this.addon.dnsPut(this.engine, b);
  }

  /** The C id of a scope key; the client -> scope map is pushed first after a view change. */
  #scopeId(key: string): number | undefined {
    if (!this.#scopesPushed) {
      const keys = this.o.records.scopeKeys();
      const pairs = Buffer.alloc(keys.size * 8);
      let at = 0;
      for (const [ip, k] of keys) {
        if (!isIPv4(ip)) continue;
        let id = this.#scopeIds.get(k);
        if (id === undefined) this.#scopeIds.set(k, (id = this.#scopeIds.size + 1));
        for (const octet of ip.split('.')) pairs[at++] = Number(octet);
        at = pairs.writeUInt32BE(id, at);
      }
      if (this.addon.dnsScopes(this.engine, pairs.subarray(0, at)) < 0) return undefined;
      this.#scopesPushed = true;
    }
    return key === '' ? 0 : this.#scopeIds.get(key);
  }

  /** C's counters since the last scrape, added to the node's. */
  #fold(into: DnsStats): void {
    const s = this.addon.dnsTakeStats(this.engine);
    into.cache.hits += s[0]!;
    into.forwardCache.hits += s[1]!;
    into.truncated += s[2]!;
    into.dropped.short += s[3]!;
    into.dropped.long += s[4]!;
    into.dropped.send += s[5]!;
    for (let i = 6; i + 2 < s.length; i += 3) {
      into.reply(s[i]!, s[i + 1]!, s[i + 2]!);
      into.nativeReplies += s[i + 2]!;
    }
    const f = this.addon.dnsTakeForwardStats?.(this.engine);
    if (!f) return;
    into.forwarded += f[0]!;
    into.upstreamErrors.timeout += f[1]!;
    into.upstreamErrors.error += f[2]!;
    into.upstreamDropped.malformed += f[3]!;
    into.upstreamDropped.bad_id += f[4]!;
    into.upstreamDropped.bad_source += f[5]!;
    into.upstreamDropped.bad_question += f[6]!;
    into.upstreamSeconds.sum += f[7]!;
    for (let b = 0; b < into.upstreamSeconds.counts.length; b++) into.upstreamSeconds.counts[b]! += f[FORWARD_HEAD + b] ?? 0;
  }
}
