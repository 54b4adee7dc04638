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
  /** JetStream replicas per bucket (3 on a 3-server cluster). */
  replicas?: number;
  name?: string;
}

/** Pause before re-establishing a watch that ended. */
const RESUBSCRIBE_MS = 500;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class NatsStore implements Store {
  private constructor(
    readonly nc: NatsConnection,
    private readonly buckets: Map<Kind, KV>,
  ) {}

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
        ...(o.tlsCa && { tls: { caFile: o.tlsCa } }),
      });
    } catch (err) {
      throw new StoreError(`cannot connect to NATS at ${o.servers.join(',')}: ${(err as Error).message}`, { cause: err });
    }
    const kvm = new Kvm(nc);
    const buckets = new Map<Kind, KV>();
    for (const kind of KINDS) {
      buckets.set(kind, await kvm.create(`swarmnet-${kind}`, { history: 1, replicas: o.replicas ?? 1 }));
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
    return { key, value: JSON.parse(decoder.decode(e.value)), revision: e.revision };
  }

  async list(kind: Kind): Promise<Entry[]> {
    const keys: string[] = [];
    for await (const k of await this.#call(() => this.#kv(kind).keys())) keys.push(k);
    const out = await Promise.all(keys.map((k) => this.get(kind, k)));
    return out.filter((e): e is Entry => e !== undefined);
  }

  async create(kind: Kind, key: string, value: unknown): Promise<number> {
    try {
      return await this.#kv(kind).create(key, encoder.encode(JSON.stringify(value)));
    } catch (err) {
      if (isWrongSeq(err)) throw new ConflictError(`${kind}/${key} exists`);
      throw wrap(err);
    }
  }

  async update(kind: Kind, key: string, value: unknown, revision: number): Promise<number> {
    try {
      return await this.#kv(kind).update(key, encoder.encode(JSON.stringify(value)), revision);
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
      await this.#kv(kind).delete(key, revision === undefined ? undefined : { previousSeq: revision });
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
    void (async () => {
      while (!stopped) {
        try {
          const iter = await kv.watch({ key: '>', resumeFromRevision: next, include: KvWatchInclude.AllHistory });
          current = iter;
          if (stopped) iter.stop();
          for await (const e of iter) {
            next = Math.max(next, e.revision + 1);
            if (e.operation === 'PUT') {
              let value: unknown;
              try {
                value = JSON.parse(decoder.decode(e.value));
              } catch {
                value = undefined; // not JSON: the schema check downstream reports and skips it
              }
              deliver({ op: 'put', kind, key: e.key, value, revision: e.revision });
            } else deliver({ op: 'del', kind, key: e.key, revision: e.revision });
          }
        } catch {
          // NATS unreachable or the consumer vanished: try again below
        }
        if (!stopped) await new Promise((r) => setTimeout(r, RESUBSCRIBE_MS));
      }
    })();
    return () => {
      stopped = true;
      current?.stop();
    };
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw wrap(err);
    }
  }
}

function isWrongSeq(err: unknown): boolean {
  const e = err as { code?: unknown; message?: string };
  return e.code === JS_WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(e.message ?? '');
}

function wrap(err: unknown): Error {
  if (err instanceof StoreError) return err;
  return new StoreError(`NATS: ${(err as Error).message}`, { cause: err });
}
