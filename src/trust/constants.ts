/** Trust constants: token format and X.509 facts first, then tunables with their defaults. */

/** Join tokens: `SWMTKN-1-<CA digest>-<secret>`, the format of Docker Swarm (swarmkit `ca/config.go`). */
export const TOKEN_PREFIX = 'SWMTKN';
export const TOKEN_VERSION = 1;
/** The four dash-separated parts of a version-1 token: prefix, version, digest, secret. */
export const TOKEN_PARTS = 4;
/** Digest and secret are base-36 numbers, lower case, zero-padded to a fixed width (as swarmkit). */
export const TOKEN_RADIX = 36;
/** 36^50 > 2^256: a SHA-256 digest always fits in 50 base-36 digits. */
export const TOKEN_DIGEST_CHARS = 50;
/** Secrets carry 128 random bits; 36^25 > 2^128, so 25 base-36 digits hold any of them. */
export const TOKEN_SECRET_BYTES = 16;
export const TOKEN_SECRET_CHARS = 25;
export const TOKEN_CHAR_RE = /^[0-9a-z]+$/;

/** Node certificate subject is `CN=<node id>`; CN holds at most 64 characters (RFC 5280 appendix A, ub-common-name). */
export const CN_MAX_CHARS = 64;
/** Node ids that are safe inside an RFC 4514 DN string with no escaping (nats-server matches that string). */
export const NODE_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
/** The root CA's common name; every cluster's CA has it, so trust comes from the key, never the name. */
export const CA_COMMON_NAME = 'swarmnet-root-ca';
/** Always in a node certificate's SAN, so local clients may dial the node's own services on loopback. */
export const LOOPBACK_IP = '127.0.0.1';
/** Random serial numbers: 128 bits, well under the 20-octet limit of RFC 5280 section 4.1.2.2. */
export const SERIAL_BYTES = 16;

/** ECDSA P-256 with SHA-256 (RFC 5480, RFC 5758): small keys, supported by OpenSSL, Go (nats-server) and WebCrypto. */
export const EC_CURVE = 'P-256';
export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
export const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: EC_CURVE } as const;

const DAY_MS = 24 * 60 * 60 * 1000;

/** Tunables. */
export const DEFAULTS = {
  /** Node certificates live 90 days, as Swarm's default `--cert-expiry`. */
  certExpiryMs: 90 * DAY_MS,
  /** The root CA lives 20 years, as swarmkit's RootCAExpiration; rotating it is a cluster-wide event. */
  caValidityMs: 20 * 365 * DAY_MS,
  /**
   * notBefore is set this far in the past: nodes' clocks may differ by minutes, and a certificate
   * issued by a manager whose clock runs ahead must still verify on a node whose clock lags.
   */
  backdateMs: 60 * 60 * 1000,
  /**
   * Renewal happens at a point between these fractions of the certificate's lifetime (notBefore to
   * notAfter), as swarmkit's CertLowerRotationRange/CertUpperRotationRange. Spreading the point
   * keeps a cluster whose nodes joined together from renewing all at once; renewing well before
   * the end leaves days to retry through a manager outage.
   */
  renewFromFraction: 0.5,
  renewUntilFraction: 0.8,
} as const;
