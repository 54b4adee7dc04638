/**
 * The one place that loads @peculiar/x509 and turns PEM keys into WebCrypto keys for it.
 *
 * @peculiar/x509 2.x resolves its algorithm providers through tsyringe, which throws at load
 * unless a Reflect metadata polyfill is installed first (the library's README, "Reflect Polyfill
 * Required"). ES modules evaluate their imports in order, so importing `reflect-metadata` on the
 * line above makes the library load; every other trust file imports the library from here.
 *
 * The library's default crypto provider is a process-wide registry; we pass Node's WebCrypto
 * explicitly to each call instead, so nothing depends on (or changes) that global.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, generateKeyPair, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { ValidationError } from '../util/errors.js';
import { KEY_ALGORITHM, SERIAL_BYTES } from './constants.js';

export { x509 };

/** Node's WebCrypto, typed as the provider @peculiar/x509 expects (the same Web Crypto API). */
export const provider = webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.create>[1];

type CryptoKeyPair = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'];
type WebCryptoKey = CryptoKeyPair['privateKey'];

/** OpenSSL's name for P-256 (RFC 5480 secp256r1), as Node reports it in asymmetricKeyDetails. */
export const NODE_CURVE = 'prime256v1';

/** A fresh ECDSA P-256 private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). */
export async function generateKeyPem(): Promise<string> {
  const { privateKey } = await promisify(generateKeyPair)('ec', {
    namedCurve: NODE_CURVE,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return privateKey;
}

/** Parses a PEM private key and insists on ECDSA P-256; `field` names it in the ValidationError. */
export function parsePrivateKey(keyPem: string, field: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new ValidationError(field, `is not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== NODE_CURVE) {
    const got = [key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve].filter(Boolean).join(' ');
    throw new ValidationError(field, `must be an ECDSA P-256 key (got ${got})`);
  }
  return key;
}

/** The WebCrypto key pair of a PEM private key: private for signing, public for the certificate. */
export async function importKeyPair(keyPem: string, field: string): Promise<CryptoKeyPair> {
  const key = parsePrivateKey(keyPem, field);
  const privateKey = await webcrypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), KEY_ALGORITHM, false, ['sign']);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const publicKey = await webcrypto.subtle.importKey('spki', spki, KEY_ALGORITHM, true, ['verify']);
  return { privateKey: privateKey as unknown as WebCryptoKey, publicKey: publicKey as unknown as WebCryptoKey };
}

/** DER SubjectPublicKeyInfo of a private key's public half, to compare keys byte for byte. */
export function publicKeyDer(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' });
}

/**
 * A random certificate serial, hex. Random (not sequential) so that no two certificates a CA
 * issues share one even across managers with no coordination; the library encodes it as a
 * positive DER INTEGER (RFC 5280 section 4.1.2.2).
 */
export function randomSerial(): string {
  return randomBytes(SERIAL_BYTES).toString('hex');
}
