/**
 * Typed, validated access to one bucket. Writes are validated before they reach the
 * store (nothing invalid is ever stored); reads are validated too, and a malformed
 * entry is reported through `onInvalid` and skipped rather than trusted.
 */
import type { Kind } from './constants.js';
import type { Validator } from './schema.js';
import type { Store } from './types.js';

export interface Versioned<T> {
  value: T;
  revision: number;
}

export type InvalidHandler = (kind: Kind, key: string, err: Error) => void;

export class Collection<T> {
  constructor(
    readonly store: Store,
    readonly kind: Kind,
    readonly schema: Validator<T>,
    readonly onInvalid: InvalidHandler,
  ) {}

  /** Validates a value read from the store; undefined (and reported) when malformed. */
  parse(key: string, value: unknown): T | undefined {
    try {
      return this.schema.assert(value);
    } catch (err) {
      this.onInvalid(this.kind, key, err as Error);
      return undefined;
    }
  }

  async get(key: string): Promise<Versioned<T> | undefined> {
    const e = await this.store.get(this.kind, key);
    if (!e) return undefined;
    const value = this.parse(key, e.value);
    return value === undefined ? undefined : { value, revision: e.revision };
  }

  async list(): Promise<T[]> {
    const out: T[] = [];
    for (const e of await this.store.list(this.kind)) {
      const v = this.parse(e.key, e.value);
      if (v !== undefined) out.push(v);
    }
    return out;
  }

  create(key: string, value: T): Promise<number> {
    return this.store.create(this.kind, key, this.schema.assert(value));
  }

  update(key: string, value: T, revision: number): Promise<number> {
    return this.store.update(this.kind, key, this.schema.assert(value), revision);
  }

  put(key: string, value: T): Promise<number> {
    return this.store.put(this.kind, key, this.schema.assert(value));
  }

  delete(key: string, revision?: number): Promise<void> {
    return this.store.delete(this.kind, key, revision);
  }
}
