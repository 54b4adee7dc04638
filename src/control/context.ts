/** What every control-plane operation works with: typed collections over one store, and IPAM. */
import type { Collection, InvalidHandler } from './collection.js';
import { Collection as Col } from './collection.js';
import { Ipam } from './ipam.js';
import { validate, type Claim, type KeyRing, type Network, type Node, type Service, type Task } from './schema.js';
import type { Store } from './types.js';

export interface Context {
  readonly store: Store;
  readonly nodes: Collection<Node>;
  readonly networks: Collection<Network>;
  readonly services: Collection<Service>;
  readonly tasks: Collection<Task>;
  readonly claims: Collection<Claim>;
  /** Key rings of encrypted networks, by network id (key material: never log or return it). */
  readonly keys: Collection<KeyRing>;
  readonly ipam: Ipam;
  /** The node this process runs on: the default node of new tasks. */
  readonly localNode: string;
  now(): number;
}

export function createContext(store: Store, localNode: string, onInvalid: InvalidHandler): Context {
  const claims = new Col(store, 'ipam', validate.claim, onInvalid);
  return {
    store,
    nodes: new Col(store, 'nodes', validate.node, onInvalid),
    networks: new Col(store, 'networks', validate.network, onInvalid),
    services: new Col(store, 'services', validate.service, onInvalid),
    tasks: new Col(store, 'tasks', validate.task, onInvalid),
    claims,
    keys: new Col(store, 'keys', validate.keyRing, onInvalid),
    ipam: new Ipam(claims),
    localNode,
    now: () => Date.now(),
  };
}

/** Runs `fn` with an undo list; on failure the undo steps run in reverse, so nothing half-made stays stored. */
export async function transaction<T>(fn: (undo: (step: () => Promise<void>) => void) => Promise<T>): Promise<T> {
  const steps: Array<() => Promise<void>> = [];
  try {
    return await fn((s) => steps.push(s));
  } catch (err) {
    for (const s of steps.reverse()) await s().catch(() => undefined);
    throw err;
  }
}

/** Retries a read-modify-write that lost a compare-and-set race. */
export async function withCas<T>(fn: () => Promise<T>, attempts = 8): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts || (err as { code?: string }).code !== 'EREVISION') throw err;
    }
  }
}
