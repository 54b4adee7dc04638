/**
 * A local, validated mirror of desired state, kept current by one watch per kind.
 * Consumers (reconciler, DNS) read it synchronously and subscribe to `onChange`,
 * which is coalesced: a burst of store events yields one call. Every node record that
 * arrives is handed to `liveness`, which times the heartbeats as they are received here.
 *
 * `keys` holds key material (the rings of encrypted networks, for the overlay): no API
 * route may return it, and nothing may log it.
 */
import type { InvalidHandler } from './collection.js';
import { KINDS, type Kind } from './constants.js';
import type { Liveness } from './liveness.js';
import { validate, type KeyRing, type Network, type Node, type Service, type Task, type Validator } from './schema.js';
import type { Store, Unwatch, WatchEvent } from './types.js';

type Listener = () => void;

export class View {
  readonly nodes = new Map<string, Node>();
  readonly networks = new Map<string, Network>();
  readonly services = new Map<string, Service>();
  readonly tasks = new Map<string, Task>();
  /** Key rings of encrypted networks by network id: key material, never to be returned or logged. */
  readonly keys = new Map<string, KeyRing>();
  readonly #listeners = new Set<Listener>();
  readonly #unwatch: Unwatch[] = [];
  #scheduled = false;

  constructor(
    private readonly store: Store,
    private readonly onInvalid: InvalidHandler,
    /** Fed by this view; the reconciler and the API's node listing judge nodes with it. */
    readonly liveness: Liveness,
  ) {}

  /** Resolves once every kind's current entries are loaded. */
  async start(): Promise<void> {
    for (const kind of KINDS) {
      // Claims and the cluster's trust records are read on demand, not mirrored.
      if (kind === 'ipam' || kind === 'cluster') continue;
      await new Promise<void>((ready, fail) => {
        this.store.watch(kind, (e) => this.#onEvent(e), ready).then((u) => this.#unwatch.push(u), fail);
      });
    }
  }

  stop(): void {
    for (const u of this.#unwatch.splice(0)) u();
    this.#listeners.clear();
  }

  onChange(fn: Listener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #onEvent(e: WatchEvent): void {
    const [map, schema] = this.#target(e.kind);
    if (e.op === 'del') {
      map.delete(e.key);
      if (e.kind === 'nodes') this.liveness.forget(e.key);
    } else {
      const ok = schema.check(e.value);
      if (!ok) {
        // Never trust a malformed entry, and never let it take down the agent.
        try {
          schema.assert(e.value);
        } catch (err) {
          this.onInvalid(e.kind, e.key, err as Error);
        }
        map.delete(e.key);
        if (e.kind === 'nodes') this.liveness.forget(e.key);
      } else {
        const before = map.get(e.key);
        map.set(e.key, e.value);
        if (e.kind === 'nodes') {
          this.liveness.observe(e.value as Node);
          // A heartbeat only moves lastSeen: liveness is re-evaluated on a timer, so it
          // need not wake every consumer on every node (N agents would cause N^2 passes).
          if (before && sameButLastSeen(before as Node, e.value as Node)) return;
        }
      }
    }
    this.#schedule();
  }

  #target(kind: Kind): [Map<string, unknown>, Validator<unknown>] {
    switch (kind) {
      case 'nodes':
        return [this.nodes, validate.node];
      case 'networks':
        return [this.networks, validate.network];
      case 'services':
        return [this.services, validate.service];
      case 'tasks':
        return [this.tasks, validate.task];
      case 'keys':
        return [this.keys, validate.keyRing];
      default:
        throw new TypeError(`view does not mirror ${kind}`);
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      for (const fn of this.#listeners) fn();
    });
  }
}

function sameButLastSeen(a: Node, b: Node): boolean {
  return JSON.stringify({ ...a, lastSeen: 0 }) === JSON.stringify({ ...b, lastSeen: 0 });
}
