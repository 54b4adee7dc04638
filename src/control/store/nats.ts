/**
 * Store on NATS JetStream KV, for clusters: one bucket per kind (`swarmnet-<kind>`),
 * compare-and-set through KV create/update (JetStream's expected-last-sequence), and
 * one wildcard watch per bucket per caller.
 *
 * Watch start without gaps: read the stream's last sequence S, load every live key,
 * then watch from S+1. Changes that raced the load are delivered again by the watch;
 * events are applied per key only when newer than what was delivered, so the result
 * is the same as one ordered history.
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, usernamePasswordAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, KvWatchInclude, type KV } from '@nats-io/kv';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { ConflictError, RevisionMismatchError, StoreError } from '../../util/errors.js';
import { KINDS, type Kind } from '../constants.js';
import type { Entry, Store, Unwatch, WatchEvent } from '../types.js';

/** JetStream API error: the stream's last sequence for the subject is not the expected one. */
const JS_WRONG_LAST_SEQUENCE = 10071;

export interface NatsStoreOptions {
  servers: string[];
  /** A .creds file (JWT + nkey seed). */
  creds?: string;
  user?: string;
  pass?: string;
  /** CA that must have signed the server certificate; enables TLS. */
  tlsCa?: string;
  /**
   * This node's certificate and key (mutual TLS, files re-read at every connect so a
   * renewed certificate is used on the next reconnect). Set by cluster mode, where any
   * certificate of the cluster CA is a member: the server's name is not checked, as
   * servers gossip addresses their certificates need not list.
   */
  tlsCert?: string;
  tlsKey?: string;
  /** JetStream replicas per bucket (3 on a 3-server cluster). */
  replicas?: number;
  /**
   * Bind to buckets that must exist, never create them (cluster members: only `init`
   * creates the buckets; a node that created its own while the cluster's were not yet
   * reachable would hide them behind empty ones).
   */
  bindOnly?: boolean;
  name?: string;
}

/** Pause before re-establishing a watch that ended. */
const RESUBSCRIBE_MS = 500;
/** How often a watch checks that it is not behind its bucket. */
const WATCHDOG_MS = 2000;
/** A watch whose consumer is not set up by then is retried. */
const WATCH_START_MS = 5000;

/** Binds to an existing bucket (its stream must answer), keeping its direct-get setting. */
async function bind(kvm: Kvm, name: string): Promise<KV> {
  const status = await (await kvm.open(name)).status();
  return kvm.open(name, { allow_direct: status.streamInfo.config.allow_direct });
}

/**
 * Kinds added after clusters already existed: a cluster made by an older version has no
 * bucket for them, and nobody runs `init` again. A member that bound every older bucket
 * is talking to the cluster's JetStream (not to an empty server of its own), so making
 * the missing one there hides nothing; it takes the replicas of the `nodes` bucket.
 */
const LATER_KINDS: ReadonlySet<Kind> = new Set<Kind>(['keys']);
/** JetStream API error: stream not found. */
const JS_STREAM_NOT_FOUND = 10059;

async function bindOrAdd(kvm: Kvm, kind: Kind, buckets: Map<Kind, KV>): Promise<KV> {
  try {
    return await bind(kvm, `swarmnet-${kind}`);
  } catch (err) {
    const nodes = buckets.get('nodes');
    if (!LATER_KINDS.has(kind) || !nodes || !isStreamNotFound(err)) throw err;
    const replicas = (await nodes.status()).streamInfo.config.num_replicas;
    return kvm.create(`swarmnet-${kind}`, { history: 1, replicas });
  }
}

function isStreamNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return e.code === JS_STREAM_NOT_FOUND || e.api_error?.err_code === JS_STREAM_NOT_FOUND || /stream not found/i.test(e.message ?? '');
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class NatsStore implements Store {
  /** Watches to restart after a reconnect (their consumer may have lived on the lost server). */
  readonly #onReconnect = new Set<() => void>();

  private constructor(
    readonly nc: NatsConnection,
    private readonly buckets: Map<Kind, KV>,
  ) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'reconnect') for (const fn of this.#onReconnect) fn();
      }
    })();
  }

  static async open(o: NatsStoreOptions): Promise<NatsStore> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: o.servers,
        name: o.name ?? 'swarmnet',
        maxReconnectAttempts: -1, // keep serving from memory and come back whenever NATS does
        reconnectTimeWait: 500,
        ...(o.creds && { authenticator: credsAuthenticator(readFileSync(o.creds)) }),
        ...(o.user && { authenticator: usernamePasswordAuthenticator(o.user, o.pass ?? '') }),
        ...(o.tlsCa && { tls: { caFile: o.tlsCa, ...(o.tlsCert && { certFile: o.tlsCert, keyFile: o.tlsKey, checkServerIdentity: () => undefined }) } }),
      });
    } catch (err) {
      throw new StoreError(`cannot connect to NATS at ${o.servers.join(',')}: ${(err as Error).message}`, { cause: err });
    }
    const kvm = new Kvm(nc);
    const buckets = new Map<Kind, KV>();
    try {
      // In parallel (later kinds after the others: they take the replicas of `nodes`):
      // each bind is JetStream API round trips, and while JetStream elects leaders
      // (a manager just demoted or lost) each can wait out its timeout: one after
      // another, seven of them can keep a demoted manager out of its worker role for
      // half a minute (the suspected cause of swarm.test's occasional demote timeouts).
      for (const group of [KINDS.filter((k) => !LATER_KINDS.has(k)), KINDS.filter((k) => LATER_KINDS.has(k))]) {
        const bound = await Promise.all(group.map(async (kind) => [kind, o.bindOnly ? await bindOrAdd(kvm, kind, buckets) : await kvm.create(`swarmnet-${kind}`, { history: 1, replicas: o.replicas ?? 1 })] as const));
        for (const [kind, kv] of bound) buckets.set(kind, kv);
      }
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw new StoreError(`NATS at ${o.servers.join(',')}: buckets not available: ${(err as Error).message}`, { cause: err });
    }
    return new NatsStore(nc, buckets);
  }

  #kv(kind: Kind): KV {
    const kv = this.buckets.get(kind);
    if (!kv) throw new TypeError(`unknown kind ${String(kind)}`);
    return kv;
  }

  async get(kind: Kind, key: string): Promise<Entry | undefined> {
    const e = await this.#call(() => this.#kv(kind).get(key));
    if (!e || e.operation !== 'PUT') return undefined;
    return { key, value: parseValue(e.value), revision: e.revision };
  }

  /**
   * The bucket's keys come from its stream's per-subject state (one request, no
   * consumer: a consumer-based key lister can stall while JetStream moves leaders,
   * seen here as listings that never returned); deleted keys still have a subject (their
   * tombstone) and are dropped by `get`.
   */
  async list(kind: Kind): Promise<Entry[]> {
    const prefix = `$KV.swarmnet-${kind}.`;
    const info = await this.#call(async () => (await this.#jsm()).streams.info(`KV_swarmnet-${kind}`, { subjects_filter: `${prefix}>` }));
    const keys = Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
    const out = await Promise.all(keys.map((k) => this.get(kind, k)));
    return out.filter((e): e is Entry => e !== undefined);
  }

  #jsmPromise: Promise<JetStreamManager> | undefined;
  #jsm(): Promise<JetStreamManager> {
    this.#jsmPromise ??= jetstreamManager(this.nc);
    return this.#jsmPromise;
  }

  async create(kind: Kind, key: string, value: unknown): Promise<number> {
    try {
      return await whileNoLeader(() => this.#kv(kind).create(key, encoder.encode(JSON.stringify(value))));
    } catch (err) {
      if (isWrongSeq(err)) throw new ConflictError(`${kind}/${key} exists`);
      throw wrap(err);
    }
  }

  async update(kind: Kind, key: string, value: unknown, revision: number): Promise<number> {
    try {
      return await whileNoLeader(() => this.#kv(kind).update(key, encoder.encode(JSON.stringify(value)), revision));
    } catch (err) {
      if (isWrongSeq(err)) throw new RevisionMismatchError(`${kind}/${key} changed (expected revision ${revision})`);
      throw wrap(err);
    }
  }

  put(kind: Kind, key: string, value: unknown): Promise<number> {
    return this.#call(() => this.#kv(kind).put(key, encoder.encode(JSON.stringify(value))));
  }

  async delete(kind: Kind, key: string, revision?: number): Promise<void> {
    try {
      await whileNoLeader(() => this.#kv(kind).delete(key, revision === undefined ? undefined : { previousSeq: revision }));
    } catch (err) {
      if (isWrongSeq(err)) throw new RevisionMismatchError(`${kind}/${key} changed (expected revision ${revision})`);
      throw wrap(err);
    }
  }

  async watch(kind: Kind, onEvent: (e: WatchEvent) => void, onReady?: () => void): Promise<Unwatch> {
    const kv = this.#kv(kind);
    const status = await this.#call(() => kv.status());
    const from = status.streamInfo.state.last_seq;
    const seen = new Map<string, number>();
    const deliver = (e: WatchEvent) => {
      if ((seen.get(e.key) ?? 0) >= e.revision) return;
      seen.set(e.key, e.revision);
      onEvent(e);
    };
    for (const e of await this.list(kind)) deliver({ op: 'put', kind, key: e.key, value: e.value, revision: e.revision });
    onReady?.();
    // The watch is re-established after any interruption (server restart, lost
    // consumer), resuming after the last revision delivered: no update is lost.
    let next = from + 1;
    let stopped = false;
    let current: { stop(): void } | undefined;
    const restart = () => current?.stop();
    this.#onReconnect.add(restart);
    // Watchdog: a watch consumer that lived on a lost server can stall without the
    // connection noticing. If the bucket has revisions we have not seen on two checks
    // in a row, the watch is restarted from where it got to.
    let behind = false;
    const watchdog = setInterval(() => {
      kv.status().then(
        (st) => {
          const lagging = st.streamInfo.state.last_seq >= next;
          if (lagging && behind) restart();
          behind = lagging;
        },
        () => undefined,
      );
    }, WATCHDOG_MS);
    watchdog.unref();
    void (async () => {
      while (!stopped) {
        try {
          const iter = await withTimeout(kv.watch({ key: '>', resumeFromRevision: next, include: KvWatchInclude.AllHistory }), WATCH_START_MS);
          current = iter;
          if (stopped) iter.stop();
          for await (const e of iter) {
            next = Math.max(next, e.revision + 1);
            if (e.operation === 'PUT') deliver({ op: 'put', kind, key: e.key, value: parseValue(e.value), revision: e.revision });
            else deliver({ op: 'del', kind, key: e.key, revision: e.revision });
          }
        } catch {
          // NATS unreachable or the consumer vanished: try again below
        }
        if (!stopped) await new Promise((r) => setTimeout(r, RESUBSCRIBE_MS));
      }
    })();
    return () => {
      stopped = true;
      clearInterval(watchdog);
      this.#onReconnect.delete(restart);
      current?.stop();
    };
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await whileNoLeader(fn);
    } catch (err) {
      throw wrap(err);
    }
  }
}

/** How long a request waits for a stream to have a leader again (elections take a few seconds). */
const NO_LEADER_MS = 8000;

/**
 * Runs `fn` again while JetStream has no responder for it: a stream between leaders (a
 * manager joined, left or was demoted, and the streams scale or re-elect) answers
 * nobody, which nats.js reports as "jetstream is not enabled". Nobody received the
 * request, so nothing was written and sending it again is safe, compare-and-set too.
 */
async function whileNoLeader<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + NO_LEADER_MS;
  for (let wait = 100; ; wait = Math.min(wait * 2, 1000)) {
    try {
      return await fn();
    } catch (err) {
      // By name: @nats-io/jetstream does not export the class.
      if ((err as Error | undefined)?.name !== 'JetStreamNotEnabled' || Date.now() + wait > deadline) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Stored bytes as JSON; anything else is passed on as text for the schema check to reject and report. */
function parseValue(bytes: Uint8Array): unknown {
  const text = decoder.decode(bytes);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Rejects if `p` takes longer than `ms`; a late result is stopped, so nothing leaks. */
function withTimeout<T extends { stop(): void }>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new StoreError('watch did not start in time'));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        if (late) v.stop();
        else resolve(v);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

function isWrongSeq(err: unknown): boolean {
  const e = err as { code?: unknown; message?: string };
  return e.code === JS_WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(e.message ?? '');
}

function wrap(err: unknown): Error {
  if (err instanceof StoreError) return err;
  return new StoreError(`NATS: ${(err as Error).message}`, { cause: err });
}
