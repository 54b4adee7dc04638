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
} as const;
