/**
 * Sealing small secrets (join-token secrets) for managers only: AES-256-GCM under a
 * key derived with HKDF-SHA256 (RFC 5869) from the CA private key, which only
 * managers hold. Sealed values may sit in the shared store that workers read too.
 *
 *   sealed = base64( iv (12) | ciphertext | tag (16) )
 */
import { createCipheriv, createDecipheriv, createPrivateKey, hkdfSync, randomBytes } from 'node:crypto';

const IV_BYTES = 12; // NIST SP 800-38D: 96-bit IVs for GCM
const TAG_BYTES = 16;
const INFO = 'swarmnet join-token seal v1';

function sealKey(caKeyPem: string, clusterId: string): Buffer {
  const der = createPrivateKey(caKeyPem).export({ format: 'der', type: 'pkcs8' });
  return Buffer.from(hkdfSync('sha256', der, clusterId, INFO, 32));
}

export function seal(plain: string, caKeyPem: string, clusterId: string): string {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', sealKey(caKeyPem, clusterId), iv);
  const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return Buffer.concat([iv, body, c.getAuthTag()]).toString('base64');
}

/** Throws when the value was not sealed under this CA key (or was altered). */
export function unseal(sealed: string, caKeyPem: string, clusterId: string): string {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('sealed value too short');
  const d = createDecipheriv('aes-256-gcm', sealKey(caKeyPem, clusterId), raw.subarray(0, IV_BYTES));
  d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  return Buffer.concat([d.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), d.final()]).toString('utf8');
}
