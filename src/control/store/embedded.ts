/**
 * Embedded store: one node, no server, persisted in the data dir.
 *
 * Durability is a snapshot plus an append-only journal:
 *   state.json     full state, replaced atomically (write tmp, fsync, rename, fsync dir)
 *   journal.jsonl  one JSON line per mutation since the snapshot, fdatasync'd per write
 * On open the snapshot is loaded and the journal replayed; a torn last line (crash
 * mid-append) is discarded, so each mutation is all-or-nothing. When the journal grows
 * past a bound it is folded into a new snapshot.
 *
 * The state holds secrets (the key rings of encrypted networks): the directory is 0700
 * and every file 0600, also when an older version left them more open.
 */
import { chmodSync, closeSync, fchmodSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, existsSync, ftruncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictError, RevisionMismatchError, StoreError } from '../../util/errors.js';
import { KINDS, type Kind } from '../constants.js';
import type { Entry, Store, Unwatch, WatchEvent } from '../types.js';

/** Journal lines before folding into a snapshot; bounds replay time at start. */
const COMPACT_EVERY = 2000;
const SNAPSHOT = 'state.json';
const JOURNAL = 'journal.jsonl';
const LOCK = 'lock';
/** Owner only: the store holds key material. */
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

type Bucket = Map<string, { value: unknown; revision: number }>;
type Mutation = { k: Kind; key: string; v?: unknown; r: number };

export class EmbeddedStore implements Store {
  readonly #buckets = new Map<Kind, Bucket>(KINDS.map((k) => [k, new Map()]));
  readonly #watchers = new Map<Kind, Set<(e: WatchEvent) => void>>(KINDS.map((k) => [k, new Set()]));
  readonly #dir: string;
  #revision = 0;
  #journalFd = -1;
  #journalLines = 0;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  static open(dir: string): EmbeddedStore {
    mkdirSync(dir, { recursive: true, mode: DIR_MODE });
    chmodSync(dir, DIR_MODE);
    lockDir(dir);
    const s = new EmbeddedStore(dir);
    s.#load();
    return s;
  }

  #load(): void {
    const snap = join(this.#dir, SNAPSHOT);
    if (existsSync(snap)) {
      const data = JSON.parse(readFileSync(snap, 'utf8')) as { revision: number; buckets: Record<string, Record<string, { value: unknown; revision: number }>> };
      this.#revision = data.revision;
      for (const kind of KINDS) {
        for (const [key, e] of Object.entries(data.buckets[kind] ?? {})) this.#bucket(kind).set(key, e);
      }
    }
    if (existsSync(snap)) chmodSync(snap, FILE_MODE);
    const jpath = join(this.#dir, JOURNAL);
    let validBytes = 0;
    if (existsSync(jpath)) {
      const text = readFileSync(jpath, 'utf8');
      for (const line of text.split('\n')) {
        if (!line) continue;
        let m: Mutation;
        try {
          m = JSON.parse(line) as Mutation;
        } catch {
          break; // torn tail from a crash mid-append: the mutation never completed
        }
        validBytes += Buffer.byteLength(line) + 1;
        if (m.r <= this.#revision) continue; // already in the snapshot
        this.#apply(m);
        this.#journalLines++;
      }
    }
    this.#journalFd = openSync(jpath, 'a', FILE_MODE);
    fchmodSync(this.#journalFd, FILE_MODE);
    ftruncateSync(this.#journalFd, validBytes);
  }

  #bucket(kind: Kind): Bucket {
    const b = this.#buckets.get(kind);
    if (!b) throw new TypeError(`unknown kind ${String(kind)}`);
    return b;
  }

  #apply(m: Mutation): void {
    const b = this.#bucket(m.k);
    if (m.v === undefined) b.delete(m.key);
    else b.set(m.key, { value: m.v, revision: m.r });
    this.#revision = m.r;
  }

  /** Journals, applies and announces one mutation. Synchronous: mutations never interleave. */
  #commit(kind: Kind, key: string, value: unknown | undefined): number {
    const m: Mutation = { k: kind, key, v: value, r: this.#revision + 1 };
    writeSync(this.#journalFd, JSON.stringify(m) + '\n');
    fdatasyncSync(this.#journalFd);
    this.#apply(m);
    if (++this.#journalLines >= COMPACT_EVERY) this.#compact();
    const ev: WatchEvent = value === undefined ? { op: 'del', kind, key, revision: m.r } : { op: 'put', kind, key, value: structuredClone(value), revision: m.r };
    for (const w of this.#watchers.get(kind) ?? []) queueMicrotask(() => w(ev));
    return m.r;
  }

  #compact(): void {
    const buckets: Record<string, Record<string, unknown>> = {};
    for (const [k, b] of this.#buckets) buckets[k] = Object.fromEntries(b);
    const tmp = join(this.#dir, `${SNAPSHOT}.tmp`);
    const fd = openSync(tmp, 'w', FILE_MODE);
    try {
      fchmodSync(fd, FILE_MODE); // a tmp file left by a crash keeps its old mode otherwise
      writeSync(fd, JSON.stringify({ revision: this.#revision, buckets }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.#dir, SNAPSHOT));
    const dfd = openSync(this.#dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
    ftruncateSync(this.#journalFd, 0);
    this.#journalLines = 0;
  }

  async get(kind: Kind, key: string): Promise<Entry | undefined> {
    const e = this.#bucket(kind).get(key);
    return e && { key, value: structuredClone(e.value), revision: e.revision };
  }

  async list(kind: Kind): Promise<Entry[]> {
    return [...this.#bucket(kind)].map(([key, e]) => ({ key, value: structuredClone(e.value), revision: e.revision }));
  }

  async create(kind: Kind, key: string, value: unknown): Promise<number> {
    if (this.#bucket(kind).has(key)) throw new ConflictError(`${kind}/${key} exists`);
    return this.#commit(kind, key, value);
  }

  async update(kind: Kind, key: string, value: unknown, revision: number): Promise<number> {
    const cur = this.#bucket(kind).get(key);
    if (!cur || cur.revision !== revision) throw new RevisionMismatchError(`${kind}/${key} changed (expected revision ${revision})`);
    return this.#commit(kind, key, value);
  }

  async put(kind: Kind, key: string, value: unknown): Promise<number> {
    return this.#commit(kind, key, value);
  }

  async delete(kind: Kind, key: string, revision?: number): Promise<void> {
    const cur = this.#bucket(kind).get(key);
    if (!cur) return;
    if (revision !== undefined && cur.revision !== revision) throw new RevisionMismatchError(`${kind}/${key} changed (expected revision ${revision})`);
    this.#commit(kind, key, undefined);
  }

  async watch(kind: Kind, onEvent: (e: WatchEvent) => void, onReady?: () => void): Promise<Unwatch> {
    for (const [key, e] of this.#bucket(kind)) onEvent({ op: 'put', kind, key, value: structuredClone(e.value), revision: e.revision });
    onReady?.();
    const set = this.#watchers.get(kind)!;
    set.add(onEvent);
    return () => set.delete(onEvent);
  }

  async close(): Promise<void> {
    if (this.#journalFd < 0) return;
    this.#compact();
    closeSync(this.#journalFd);
    this.#journalFd = -1;
    for (const set of this.#watchers.values()) set.clear();
    try {
      unlinkSync(join(this.#dir, LOCK));
    } catch {
      // already taken over (tests open one dir twice in one process)
    }
  }
}

/**
 * One process per data dir: a second agent appending to the same journal would
 * corrupt it. The lock file holds the owner's pid; a lock whose owner is gone (a crash)
 * is taken over.
 */
function lockDir(dir: string): void {
  const path = join(dir, LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', FILE_MODE);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(path, 'utf8'));
      if (pid && pid !== process.pid && isAlive(pid)) throw new StoreError(`data dir ${dir} is in use by process ${pid}`);
      unlinkSync(path);
    }
  }
  throw new StoreError(`cannot lock data dir ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
