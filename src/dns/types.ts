/** Seams of the embedded DNS server: a chain of small handlers (CoreDNS plugin style). */
import type { Answer } from 'dns-packet';

export interface Query {
  /** Lower-case, without the trailing dot. */
  name: string;
  type: string;
  /** Client source address: decides which networks it may see. */
  client: string;
  /** The query as received, for handlers that pass it on (forwarding). */
  raw: Buffer;
  transport: 'udp' | 'tcp';
}

/** A reply built by a handler, or the raw bytes of one obtained elsewhere (upstream). */
export type Reply = { rcode: number; answers: Answer[]; authoritative: boolean } | { raw: Buffer };

/**
 * One link of the chain. Returns a reply, or undefined to let the next handler try
 * (CoreDNS's "fallthrough"). Must not throw for a well-formed query: a failure is a
 * SERVFAIL reply.
 */
export type Handler = (q: Query) => Promise<Reply | undefined>;
