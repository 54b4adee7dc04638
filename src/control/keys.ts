/**
 * Key rings of encrypted overlay networks (`keys` bucket, key = network id). Every node
 * derives its ESP security associations from the ring (overlay/esp.ts); this file only
 * makes, rotates, promotes and removes rings. One rule shapes it:
 *
 *   every receiver installs a key before any sender uses it
 *
 *   rotate   gen N+1 is added (32 random bytes); primary stays N, so nobody sends with it
 *   install  each node's overlay installs the inbound SAs of every key of the ring and
 *            reports the highest generation done as `espInstalled[network]` (its node record)
 *   promote  primary := N+1 once every live node with an address on the network reports
 *            N+1, or once N+1 has waited KEY_PROMOTE_TIMEOUT_MS (a dead or stuck node
 *            cannot hold rotation up forever; the caller logs that)
 *   drop     a rotation past KEY_RING_MAX keys drops the oldest key that is not the primary
 *
 * Every change is a compare-and-set on the ring: two managers racing cannot rotate twice
 * (the condition is checked again on the fresh ring when the write loses) nor undo each
 * other's promotion. Key material is never logged nor returned by the API.
 */
import { randomBytes } from 'node:crypto';
import { isCode, NotFoundError, ValidationError } from '../util/errors.js';
import { DEFAULT_CIPHER, KEY_PROMOTE_TIMEOUT_MS, KEY_RING_MAX, RING_KEY_BYTES } from './constants.js';
import type { Versioned } from './collection.js';
import { withCas, type Context } from './context.js';
import type { NetworkOps } from './networks.js';
import type { KeyRing, Network, Node } from './schema.js';

type Undo = (step: () => Promise<void>) => void;
type RingKey = KeyRing['keys'][number];

export interface RotateOptions {
  /**
   * Rotate only if the newest key is at least this old (wall clock of the ring's
   * `createdAt`) and already primary: the periodic rotator's condition, checked again on
   * every compare-and-set attempt so a rotation another manager just made counts.
   */
  ifOlderThanMs?: number;
}

export interface RotateResult {
  network: string;
  /** The newest generation after the call. */
  gen: number;
  rotated: boolean;
}

export interface PromoteOptions {
  /** Is the node up, as the caller judges it (its View's liveness)? Down nodes are not waited for. */
  isUp(node: Node): boolean;
  /**
   * How long the newest key has been waiting, measured by the caller on its own monotonic
   * clock (never by comparing its wall clock with the `createdAt` another manager wrote).
   */
  waitedMs: number;
  /** Default KEY_PROMOTE_TIMEOUT_MS. */
  timeoutMs?: number;
}

export interface PromoteResult {
  network: string;
  /** The newest generation of the ring. */
  gen: number;
  /** It is primary now (by this call). */
  promoted: boolean;
  /** Promoted on the timeout with nodes still not reporting it (they are in `waitingFor`). */
  forced: boolean;
  /** Live nodes on the network that have not reported the newest generation installed. */
  waitingFor: string[];
}

/** A fresh ring key: 32 random bytes, base64. */
export function newRingKey(gen: number, now: number): RingKey {
  return { gen, key: randomBytes(RING_KEY_BYTES).toString('base64'), createdAt: now };
}

/** The ring of a new encrypted network: one key, primary. */
export function newRing(network: Pick<Network, 'id' | 'cipher'>, now: number): KeyRing {
  return { network: network.id, cipher: network.cipher ?? DEFAULT_CIPHER, keys: [newRingKey(1, now)], primary: 1 };
}

/**
 * Stores the ring of a new encrypted network (in NetworkOps.create's transaction, before
 * the network itself, so no encrypted network is ever seen without its ring).
 */
export async function storeNewRing(ctx: Context, network: Network, undo: Undo): Promise<KeyRing> {
  const ring = newRing(network, ctx.now());
  await ctx.keys.create(network.id, ring);
  undo(() => ctx.keys.delete(network.id));
  return ring;
}

/** The newest key of a ring (rings are never empty: the schema says so). */
export function newest(ring: KeyRing): RingKey {
  return ring.keys[ring.keys.length - 1]!;
}

/** Live nodes with an address on `network` that have not reported generation `gen` installed. */
export function waitingFor(network: string, gen: number, nodes: Iterable<Node>, isUp: (n: Node) => boolean): string[] {
  const out: string[] = [];
  for (const n of nodes) {
    if (n.status === 'removed' || !n.addresses?.some((a) => a.network === network) || !isUp(n)) continue;
    if ((n.espInstalled?.[network] ?? 0) < gen) out.push(n.id);
  }
  return out.sort();
}

/** `ring` with a new newest key, trimmed to KEY_RING_MAX by dropping the oldest keys that are not primary. */
export function addKey(ring: KeyRing, now: number): KeyRing {
  const keys = [...ring.keys, newRingKey(newest(ring).gen + 1, now)];
  while (keys.length > KEY_RING_MAX) keys.splice(keys.findIndex((k) => k.gen !== ring.primary), 1);
  return { ...ring, keys };
}

export class KeyOps {
  constructor(
    private readonly ctx: Context,
    private readonly networks: NetworkOps,
  ) {}

  get(networkId: string): Promise<Versioned<KeyRing> | undefined> {
    return this.ctx.keys.get(networkId);
  }

  /**
   * Makes the ring of an encrypted network that has none (a network stored before rings
   * existed); a ring another manager made meanwhile is kept. Returns the ring in force.
   */
  async ensure(network: Network): Promise<{ ring: KeyRing; created: boolean }> {
    if (!network.encrypted) throw new ValidationError('network', `network ${network.name} is not encrypted`);
    const have = await this.ctx.keys.get(network.id);
    if (have) return { ring: have.value, created: false };
    const ring = newRing(network, this.ctx.now());
    try {
      await this.ctx.keys.create(network.id, ring);
      return { ring, created: true };
    } catch (err) {
      if (!isCode(err, 'ECONFLICT')) throw err;
      const won = await this.ctx.keys.get(network.id);
      if (!won) throw err;
      return { ring: won.value, created: false };
    }
  }

  /** With its network (ControlPlane.removeNetwork). */
  remove(networkId: string): Promise<void> {
    return this.ctx.keys.delete(networkId);
  }

  /** `network rotate-key`: a new key, installed by every node before it becomes primary. */
  async rotate(ref: string, o: RotateOptions = {}): Promise<RotateResult> {
    const net = (await this.networks.resolve(ref)).value;
    return this.rotateNetwork(net, o);
  }

  async rotateNetwork(net: Network, o: RotateOptions = {}): Promise<RotateResult> {
    if (!net.encrypted) throw new ValidationError('network', `network ${net.name} is not encrypted`);
    const { ctx } = this;
    return withCas(async () => {
      const cur = await ctx.keys.get(net.id);
      if (!cur) {
        // No ring yet (a network from before rings): its first key is the rotation.
        const { ring, created } = await this.ensure(net);
        return { network: net.id, gen: newest(ring).gen, rotated: created };
      }
      const ring = cur.value;
      const last = newest(ring);
      const now = ctx.now();
      if (o.ifOlderThanMs !== undefined && (last.gen !== ring.primary || now - last.createdAt < o.ifOlderThanMs)) return { network: net.id, gen: last.gen, rotated: false };
      const next = addKey(ring, now);
      await ctx.keys.update(net.id, next, cur.revision);
      return { network: net.id, gen: newest(next).gen, rotated: true };
    });
  }

  /**
   * Makes the ring's newest key primary when every live receiver has installed it, or
   * when it has waited past the timeout. A no-op when it already is primary.
   */
  async promote(networkId: string, o: PromoteOptions): Promise<PromoteResult> {
    const { ctx } = this;
    const timeoutMs = o.timeoutMs ?? KEY_PROMOTE_TIMEOUT_MS;
    return withCas(async () => {
      const cur = await ctx.keys.get(networkId);
      if (!cur) throw new NotFoundError(`network ${networkId} has no key ring`);
      const ring = cur.value;
      const gen = newest(ring).gen;
      if (ring.primary === gen) return { network: networkId, gen, promoted: false, forced: false, waitingFor: [] };
      const waiting = waitingFor(networkId, gen, await ctx.nodes.list(), o.isUp);
      if (waiting.length > 0 && o.waitedMs < timeoutMs) return { network: networkId, gen, promoted: false, forced: false, waitingFor: waiting };
      await ctx.keys.update(networkId, { ...ring, primary: gen }, cur.revision);
      return { network: networkId, gen, promoted: true, forced: waiting.length > 0, waitingFor: waiting };
    });
  }
}
