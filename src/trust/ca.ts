/**
 * The cluster's root CA: one self-signed ECDSA P-256 certificate per cluster. Its key stays on
 * managers (ca-key.pem); every node keeps the certificate (ca.pem) and trusts exactly it, and a
 * join token pins it by digest (tokens.ts), so a joining node cannot be handed another CA.
 */
import { CA_COMMON_NAME, DEFAULTS, SIGNING_ALGORITHM } from './constants.js';
import { generateKeyPem, importKeyPair, provider, randomSerial, x509 } from './x509.js';

export interface CaMaterial {
  /** The CA certificate, PEM; distributed to every node. */
  certPem: string;
  /** The CA private key, PKCS#8 PEM; managers only. */
  keyPem: string;
}

export interface CreateCaOptions {
  /** Issue time (default: now); notBefore is backdated from it. */
  now?: Date;
}

/**
 * A new root CA. Extensions (RFC 5280 section 4.2.1):
 *   basicConstraints  critical  CA:TRUE, pathlen:0  (it signs node certificates only, no intermediates)
 *   keyUsage          critical  keyCertSign, cRLSign
 *   subjectKeyIdentifier        SHA-1 of the public key, so node certificates name it in their AKI
 */
export async function createCa(options: CreateCaOptions = {}): Promise<CaMaterial> {
  const now = (options.now ?? new Date()).getTime();
  const keyPem = await generateKeyPem();
  const keys = await importKeyPair(keyPem, 'keyPem');
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [CA_COMMON_NAME] }],
      notBefore: new Date(now - DEFAULTS.backdateMs),
      notAfter: new Date(now + DEFAULTS.caValidityMs),
      signingAlgorithm: SIGNING_ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, provider),
      ],
    },
    provider,
  );
  return { certPem: cert.toString('pem'), keyPem };
}
