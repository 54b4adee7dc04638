/**
 * Ready answers of cluster names, built once per view and scope and served by copying
 * bytes: a query of the fast path costs a key, one map lookup and a copy, not a decode,
 * a walk of the view and an encode.
 *
 *   (client -> scope key, qtype, name) -> entry
 *     entry: the records after the question, owners pointing at the question's name
 *            (so the id and the client's letter case are the request's own, see wire.ts);
 *            dnsrr: one encoding per rotation, served in turn
 *     null:  not a cluster name (the handler chain decides: forwarding)
 *
 * The view changing empties the cache (the next query builds its entry again), so an
 * answer is never older than the view: the same freshness as answering from the index.
 * Bounded: when full it starts over (names nobody has are cached as null too).
 */
import type { Answer } from 'dns-packet';
import * as packet from 'dns-packet';
import type { View } from '../control/view.js';
import type { ClusterRecords } from './cluster.js';
import { FLAG, QTYPE } from './constants.js';
import type { DnsStats } from './metrics.js';
import { POINTER_TO_QNAME, type ReadyRecords } from './wire.js';

export interface AnswerCacheOptions {
  records: ClusterRecords;
  view: View;
  maxEntries: number;
  /** Hits and builds are counted here. */
  stats: DnsStats;
}

/** What a query gets from the cache: the records to send now. */
export interface AnswerSource {
  /** Undefined: not a cluster name (ask the handler chain). */
  answer(client: string, qtype: number, name: string): ReadyRecords | undefined;
  /** The networks the client may see, as a key ('' for the node): what its answers depend on. */
  scopeKey(client: string): string;
  /** Every rotation of the entry `answer` served for this query, the next to serve first (to copy it elsewhere: the native table). */
  rotations(client: string, qtype: number, name: string): readonly ReadyRecords[] | undefined;
  /** `fn` runs whenever the answers are dropped (the view changed); returns the unsubscribe. */
  onClear(fn: () => void): () => void;
}

interface Entry {
  rotations: ReadyRecords[];
  next: number;
}

export class AnswerCache implements AnswerSource {
  #entries = new Map<string, Entry | null>();

  constructor(private readonly o: AnswerCacheOptions) {
    o.view.onChange(() => this.#entries.clear());
  }

  scopeKey(client: string): string {
    return this.o.records.scopeKey(client);
  }

  rotations(client: string, qtype: number, name: string): readonly ReadyRecords[] | undefined {
    const e = this.#entries.get(`${this.o.records.scopeKey(client)}|${qtype}|${name}`);
    if (!e) return undefined;
    // In serving order from the next one: a copy that takes over continues the rotation.
    const at = e.next % e.rotations.length;
    return at === 0 ? e.rotations : [...e.rotations.slice(at), ...e.rotations.slice(0, at)];
  }

  onClear(fn: () => void): () => void {
    return this.o.view.onChange(fn);
  }

  answer(client: string, qtype: number, name: string): ReadyRecords | undefined {
    const key = `${this.o.records.scopeKey(client)}|${qtype}|${name}`;
    let e = this.#entries.get(key);
    if (e === undefined) {
      e = this.#build(client, qtype, name);
      if (this.#entries.size >= this.o.maxEntries) this.#entries.clear();
      this.#entries.set(key, e);
      this.o.stats.cache.builds++;
    } else this.o.stats.cache.hits++;
    if (e === null) return undefined;
    if (e.rotations.length === 1) return e.rotations[0];
    return e.rotations[e.next++ % e.rotations.length];
  }

  #build(client: string, qtype: number, name: string): Entry | null {
    const r = this.o.records.resolve({ name, type: typeName(qtype), client });
    if (!r) return null;
    const flags = (r.authoritative ? FLAG.AA : 0) | r.rcode;
    const n = r.rotate ? Math.max(r.answers.length, 1) : 1;
    const rotations: ReadyRecords[] = [];
    for (let i = 0; i < n; i++) {
      const answers = [...r.answers.slice(i), ...r.answers.slice(0, i)];
      rotations.push({ flags, count: answers.length, bytes: encodeRecords(answers, name) });
    }
    return { rotations, next: 0 };
  }
}

/** A type code as the handlers name it (dns-packet's names: `A`, `SRV`..., `UNKNOWN_<n>`). */
const TYPE_NAMES = new Map<number, string>(Object.entries(QTYPE).map(([name, code]) => [code, name]));
function typeName(qtype: number): string {
  return TYPE_NAMES.get(qtype) ?? `UNKNOWN_${qtype}`;
}

/** dns-packet's record codec (exported by the library, missing from its type definitions). */
const recordCodec = (packet as unknown as { answer: { encode(a: Answer): Buffer } }).answer;

/** Records whose owner is the question's name get a pointer to it (RFC 1035 section 4.1.4). */
export function encodeRecords(answers: Answer[], qname: string): Buffer {
  const parts: Buffer[] = [];
  for (const a of answers) {
    if (a.name.toLowerCase() !== qname) {
      parts.push(recordCodec.encode(a));
      continue;
    }
    // The root name encodes as one zero byte: swap it for the two-byte pointer.
    const rec = recordCodec.encode({ ...a, name: '.' } as Answer);
    const withPtr = Buffer.allocUnsafe(rec.length + 1);
    withPtr.writeUInt16BE(POINTER_TO_QNAME, 0);
    rec.copy(withPtr, 2, 1);
    parts.push(withPtr);
  }
  return Buffer.concat(parts);
}
