/**
 * When a node renews its certificate: at a point between 50% and 80% of the lifetime, as swarmkit
 * (ca/certificates.go calculateRandomExpiry). Unlike swarmkit, which draws the point anew each time
 * the node starts, the point here is derived from the certificate's own fingerprint: pure, so the
 * same certificate always renews at the same instant across restarts and in tests, and still
 * spread, because serials are random and so are fingerprints.
 */
import { certInfo } from './certs.js';
import { DEFAULTS } from './constants.js';

/** 2^32: the first four fingerprint bytes, read as an unsigned integer, divided by this give [0, 1). */
const UINT32_RANGE = 0x1_0000_0000;

/**
 * The renewal instant of a certificate valid from `notBefore` to `notAfter`, for `jitter` in [0, 1):
 * notBefore + lifetime x (0.5 + 0.3 x jitter).
 */
export function renewalTime(o: { notBefore: Date; notAfter: Date; jitter: number }): Date {
  const lifetime = o.notAfter.getTime() - o.notBefore.getTime();
  const span = DEFAULTS.renewUntilFraction - DEFAULTS.renewFromFraction;
  const fraction = DEFAULTS.renewFromFraction + span * Math.min(Math.max(o.jitter, 0), 1);
  return new Date(o.notBefore.getTime() + Math.floor(lifetime * fraction));
}

/**
 * When `certPem` should be renewed (jitter from its SHA-256 fingerprint). The life counts
 * from issuance, not from the backdated notBefore: a short-lived certificate (minutes)
 * would otherwise be due at once, and renewed again and again.
 */
export function renewAt(certPem: string): Date {
  const info = certInfo(certPem);
  const jitter = Buffer.from(info.fingerprint256.replaceAll(':', ''), 'hex').readUInt32BE(0) / UINT32_RANGE;
  const issued = new Date(Math.min(info.notBefore.getTime() + DEFAULTS.backdateMs, info.notAfter.getTime()));
  return renewalTime({ notBefore: issued, notAfter: info.notAfter, jitter });
}

/** True once `now` has reached the certificate's renewal instant (and ever after, expired included). */
export function needsRenewal(certPem: string, now: Date = new Date()): boolean {
  return now.getTime() >= renewAt(certPem).getTime();
}
