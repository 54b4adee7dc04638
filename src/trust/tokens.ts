/**
 * Join tokens, in Docker Swarm's format (swarmkit ca/config.go):
 *
 *   SWMTKN-1-<CA digest: 50 base-36 digits>-<secret: 25 base-36 digits>
 *
 * The digest pins the cluster's root CA: a joining node fetches the CA certificate from the manager
 * over an unauthenticated connection and accepts it only if it hashes to the digest, so a man in the
 * middle cannot substitute its own CA. The secret authorises the join; the cluster stores only its
 * hash (one per role), so a copy of the store does not hand out tokens.
 * Digest: SHA-256 of the CA certificate's DER (swarmkit hashes the PEM text as stored; DER does not
 * depend on line wrapping). Both numbers are lower-case base 36, zero-padded on the left.
 */
import { X509Certificate, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ValidationError } from '../util/errors.js';
import { TOKEN_CHAR_RE, TOKEN_DIGEST_CHARS, TOKEN_PARTS, TOKEN_PREFIX, TOKEN_RADIX, TOKEN_SECRET_BYTES, TOKEN_SECRET_CHARS, TOKEN_VERSION } from './constants.js';

export interface JoinToken {
  version: number;
  caDigest: string;
  secret: string;
}

const SHA256_HEX_RE = /^[0-9a-f]{64}$/;

/** The CA digest a token carries: SHA-256 of the certificate's DER, base 36, 50 digits. */
export function caDigest(caCertPem: string): string {
  let der: Buffer;
  try {
    der = new X509Certificate(caCertPem).raw;
  } catch (err) {
    throw new ValidationError('caCertPem', `is not a PEM certificate (${(err as Error).message})`);
  }
  return base36(createHash('sha256').update(der).digest(), TOKEN_DIGEST_CHARS);
}

/**
 * True when `digest` (as in a token) is the digest of `caCertPem`; false too when `caCertPem` is
 * not a certificate at all (whatever a peer sent, it is not the pinned CA). Both values are public,
 * so a plain comparison is fine.
 */
export function caMatchesDigest(caCertPem: string, digest: string): boolean {
  try {
    return caDigest(caCertPem) === digest;
  } catch {
    return false;
  }
}

/** A new join secret: 128 random bits, base 36, 25 digits. */
export function newSecret(): string {
  return base36(randomBytes(TOKEN_SECRET_BYTES), TOKEN_SECRET_CHARS);
}

/** `SWMTKN-1-<digest>-<secret>`. */
export function formatToken(caCertPem: string, secret: string): string {
  checkPart('secret', 'secret', secret, TOKEN_SECRET_CHARS);
  return [TOKEN_PREFIX, TOKEN_VERSION, caDigest(caCertPem), secret].join('-');
}

/**
 * Parses a token; surrounding white space (a pasted newline) is ignored. Throws
 * ValidationError('token', problem); the problem never quotes the token, which is a secret.
 */
export function parseToken(text: string): JoinToken {
  const parts = text.trim().split('-');
  const [prefix, version, digest, secret] = parts;
  if (prefix !== TOKEN_PREFIX) throw new ValidationError('token', `must start with ${TOKEN_PREFIX}-`);
  if (version !== String(TOKEN_VERSION)) throw new ValidationError('token', `unsupported version ${JSON.stringify(version ?? '')} (this agent reads version ${TOKEN_VERSION})`);
  if (parts.length !== TOKEN_PARTS) throw new ValidationError('token', `must have ${TOKEN_PARTS} parts separated by '-' (got ${parts.length})`);
  checkPart('token', 'CA digest', digest!, TOKEN_DIGEST_CHARS);
  checkPart('token', 'secret', secret!, TOKEN_SECRET_CHARS);
  return { version: TOKEN_VERSION, caDigest: digest!, secret: secret! };
}

/** What the cluster stores for a secret: SHA-256, lower-case hex. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Whether `secret` hashes to `hash`, compared in constant time (a timing oracle would leak the hash byte by byte). */
export function secretMatches(secret: string, hash: string): boolean {
  if (!SHA256_HEX_RE.test(hash)) return false;
  return timingSafeEqual(createHash('sha256').update(secret).digest(), Buffer.from(hash, 'hex'));
}

/** Length first, then characters; the messages give counts and rules, never the (secret) value. */
function checkPart(field: string, name: string, value: string, chars: number): void {
  if (value.length !== chars) throw new ValidationError(field, `${name} must be ${chars} characters (got ${value.length})`);
  if (!TOKEN_CHAR_RE.test(value)) throw new ValidationError(field, `${name} must be lower-case base 36 (0-9, a-z)`);
}

/** Big-endian bytes as a base-36 number, zero-padded to `width`. */
function base36(bytes: Buffer, width: number): string {
  return BigInt(`0x${bytes.toString('hex')}`).toString(TOKEN_RADIX).padStart(width, '0');
}
