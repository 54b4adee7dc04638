/** DNS protocol constants (RFC 1035) and the embedded server's tunables. */

/** Response codes, RFC 1035 section 4.1.1 (carried in the low 4 bits of the flags). */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** A DNS header is 12 bytes (RFC 1035 section 4.1.1); anything shorter is dropped. */
export const HEADER_BYTES = 12;
/** Largest UDP reply without EDNS (RFC 1035 section 4.2.1). */
export const UDP_PLAIN_MAX = 512;
/** Cap on an EDNS UDP payload size we honour (RFC 6891 section 6.2.5 suggests 4096). */
export const UDP_EDNS_MAX = 4096;

export const DEFAULTS = {
  /** Short TTL so changes are seen on the next query (Docker uses 600). */
  ttlSeconds: 5,
  upstreamTimeoutMs: 2000,
  /** Ready answers kept (per scope, type and name) before the cache starts over; a view change empties it. */
  answerCacheEntries: 65536,
  /** Upstream answers kept (forward-cache.ts); the oldest goes first when full. */
  forwardCacheEntries: 16384,
  /** Cap on how long an upstream answer is kept, whatever its TTL (RFC 2308 section 5 suggests 1-3 hours for negative ones). */
  forwardMaxTtlSeconds: 3600,
} as const;

/** Header flags, RFC 1035 section 4.1.1 (AD and CD: RFC 4035 section 3.2). */
export const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080 } as const;
/** Opcode bits of the flags (RFC 1035 section 4.1.1): 0 is a standard query. */
export const OPCODE_MASK = 0x7800;

/** Record types the server names (RFC 1035 section 3.2.2, AAAA RFC 3596, SRV RFC 2782, OPT RFC 6891). */
export const QTYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, ANY: 255 } as const;
/** Class IN (RFC 1035 section 3.2.4). */
export const CLASS_IN = 1;

/**
 * EDNS (RFC 6891): the OPT pseudo-record. The payload size we advertise (section 6.2.5
 * suggests 4096 as a starting point); the only version we speak; BADVERS, the extended
 * rcode 16 (its upper 8 bits go in the OPT TTL, section 6.1.3); the DO bit (RFC 3225).
 */
export const EDNS = { udpPayload: UDP_EDNS_MAX, version: 0, badvers: 16, doBit: 0x8000 } as const;

/** Longest name on the wire (RFC 1035 section 2.3.4); longest label (section 3.1). */
export const MAX_NAME_BYTES = 255;
export const MAX_LABEL_BYTES = 63;
