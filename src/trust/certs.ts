/**
 * Node keys, certificate requests and node certificates.
 *
 * Joining: the node makes its key and a CSR (createKey, createCsr); a manager checks the join
 * token, then signs (signNodeCert) with the identity it decides, whatever the CSR asks for; the
 * node stores the certificate and checks it against the pinned CA (verifyCert).
 *
 * Node certificate layout (every node cert is both a TLS server and a TLS client, e.g. for NATS):
 *   subject            CN=<node id>, nothing else: nats-server `verify_and_map` matches the RFC 4514
 *                      string of the subject, so it must be exactly that string
 *   issuer             the CA's subject, byte for byte
 *   subjectAltName     iPAddress entries only (the node's addresses + 127.0.0.1); no dNSName or
 *                      rfc822Name, because nats-server would map those before the subject
 *   basicConstraints   critical  CA:FALSE
 *   keyUsage           critical  digitalSignature, keyAgreement
 *   extKeyUsage        serverAuth, clientAuth
 *   subject/authority key identifiers, a random 128-bit serial
 *   notBefore          now - backdate (clock skew), notAfter now + expiry, capped at the CA's notAfter
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { isIP } from 'node:net';
import { ValidationError } from '../util/errors.js';
import { DEFAULTS, LOOPBACK_IP, NODE_ID_RE, SIGNING_ALGORITHM } from './constants.js';
import { CertExpiredError, CertNotYetValidError, UntrustedCertError } from './errors.js';
import { NODE_CURVE, generateKeyPem, importKeyPair, parsePrivateKey, provider, publicKeyDer, randomSerial, x509 } from './x509.js';

export interface SignNodeCertOptions {
  caCertPem: string;
  caKeyPem: string;
  csrPem: string;
  /** The identity the manager grants; becomes the subject `CN=<nodeId>`. */
  nodeId: string;
  /** The node's addresses, put in the SAN (127.0.0.1 is always added). */
  ips: string[];
  /** Lifetime from `now`; DEFAULTS.certExpiryMs is Swarm's 90 days. */
  expiryMs: number;
  now?: Date;
  /**
   * What the certificate proves besides the node: `manager` (`CN=mgr:<nodeId>`, the
   * identity a manager serves the cluster API with and calls other nodes as) or `system`
   * (`CN=sys:<nodeId>`, a manager's own system-account user on its nats-server). ':'
   * never occurs in a node id, so only a holder of the CA key can have such a name; or
   * `route` (`CN=swarmnet:route`, the name every manager's nats-server routes as).
   */
  identity?: Identity;
}

export type Identity = 'node' | 'manager' | 'system' | 'route';

const IDENTITY_PREFIX: Record<Exclude<Identity, 'route'>, string> = { node: '', manager: 'mgr:', system: 'sys:' };
/** Every manager's nats-server routes as this one name: nats-server authorizes one route user. */
const ROUTE_NAME = 'swarmnet:route';

/** The subject CN of `nodeId`'s certificate of this identity. */
export function identityName(nodeId: string, identity: Identity = 'node'): string {
  return identity === 'route' ? ROUTE_NAME : IDENTITY_PREFIX[identity] + nodeId;
}

/** Reads a CN back: which node, and which identity of it. */
export function parseIdentity(cn: string): { nodeId: string; identity: Identity } {
  if (cn === ROUTE_NAME) return { nodeId: '', identity: 'route' };
  for (const identity of ['manager', 'system'] as const) {
    if (cn.startsWith(IDENTITY_PREFIX[identity])) return { nodeId: cn.slice(IDENTITY_PREFIX[identity].length), identity };
  }
  return { nodeId: cn, identity: 'node' };
}

export interface CertInfo {
  /** The subject's CN. */
  nodeId: string;
  notBefore: Date;
  notAfter: Date;
  /** Hex, upper case, as OpenSSL prints it. */
  serial: string;
  /** SHA-256 of the DER, colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256`. */
  fingerprint256: string;
}

const PEM_CSR_HEADER = '-----BEGIN CERTIFICATE REQUEST-----';

/** A new ECDSA P-256 node key, PKCS#8 PEM. */
export async function createKey(): Promise<{ keyPem: string }> {
  return { keyPem: await generateKeyPem() };
}

/** A PKCS#10 request (RFC 2986) for `keyPem`, subject CN=<nodeId>. The signer decides the final subject anyway. */
export async function createCsr(o: { keyPem: string; nodeId: string }): Promise<string> {
  checkNodeId(o.nodeId);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: [{ CN: [o.nodeId] }], keys: await importKeyPair(o.keyPem, 'keyPem'), signingAlgorithm: SIGNING_ALGORITHM },
    provider,
  );
  return csr.toString('pem');
}

/** Issues a node certificate for a CSR whose signature verifies. Throws ValidationError naming the bad option. */
export async function signNodeCert(o: SignNodeCertOptions): Promise<string> {
  checkNodeId(o.nodeId);
  if (!Number.isSafeInteger(o.expiryMs) || o.expiryMs <= 0) throw new ValidationError('expiryMs', `must be a positive whole number of milliseconds (got ${o.expiryMs})`);
  const ips = sanIps(o.ips);
  const ca = parseCert(o.caCertPem, 'caCertPem');
  if (!ca.ca) throw new ValidationError('caCertPem', 'is not a CA certificate (basicConstraints CA:FALSE)');
  const caKey = parsePrivateKey(o.caKeyPem, 'caKeyPem');
  if (!publicKeyDer(caKey).equals(ca.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new ValidationError('caKeyPem', 'does not belong to the CA certificate');
  }
  const csr = await parseCsr(o.csrPem);
  const caCert = new x509.X509Certificate(o.caCertPem);
  const now = (o.now ?? new Date()).getTime();
  const notAfter = Math.min(now + o.expiryMs, caCert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [{ CN: [identityName(o.nodeId, o.identity)] }],
      issuer: caCert.subjectName,
      notBefore: new Date(now - DEFAULTS.backdateMs),
      notAfter: new Date(notAfter),
      publicKey: csr.publicKey,
      signingKey: (await importKeyPair(o.caKeyPem, 'caKeyPem')).privateKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(ips.map((value) => ({ type: 'ip' as const, value }))),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey, false, provider),
        await authorityKeyId(caCert),
      ],
    },
    provider,
  );
  return cert.toString('pem');
}

/** What a certificate says about itself. Throws ValidationError('cert') if it does not parse. */
export function certInfo(certPem: string): CertInfo {
  const cert = parseCert(certPem, 'cert');
  const cn = /^CN=([^\n]+)$/.exec(cert.subject);
  if (!cn) throw new ValidationError('cert', `subject must be exactly CN=<node id> (got ${JSON.stringify(cert.subject)})`);
  return {
    nodeId: cn[1]!,
    notBefore: parseTime(cert.validFrom),
    notAfter: parseTime(cert.validTo),
    serial: cert.serialNumber,
    fingerprint256: cert.fingerprint256,
  };
}

/**
 * Checks that `certPem` is a node certificate signed by `caCertPem` and that both are valid at
 * `now`. Returns nothing; throws UntrustedCertError, CertExpiredError or CertNotYetValidError
 * (ValidationError if either PEM does not parse). Both are checked at the same `now`, so a
 * certificate outliving an expired CA is still refused.
 */
export function verifyCert(certPem: string, caCertPem: string, now: Date = new Date()): void {
  const cert = parseCert(certPem, 'cert');
  const ca = parseCert(caCertPem, 'caCert');
  if (!ca.ca) throw new UntrustedCertError('the CA certificate is not a CA (basicConstraints CA:FALSE)');
  if (cert.ca) throw new UntrustedCertError('the certificate is a CA certificate, not a node certificate');
  // checkIssued compares issuer/subject names and key identifiers; names alone prove nothing
  // (every cluster's CA is called swarmnet-root-ca), the signature is what binds the two.
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new UntrustedCertError('the certificate is not signed by this CA');
  checkValidity(cert, 'certificate', now);
  checkValidity(ca, 'CA certificate', now);
}

function checkValidity(cert: X509Certificate, what: string, now: Date): void {
  const notBefore = parseTime(cert.validFrom);
  const notAfter = parseTime(cert.validTo);
  if (now < notBefore) throw new CertNotYetValidError(`the ${what} is not valid before ${notBefore.toISOString()} (now ${now.toISOString()})`, notBefore);
  if (now > notAfter) throw new CertExpiredError(`the ${what} expired at ${notAfter.toISOString()} (now ${now.toISOString()})`, notAfter);
}

function checkNodeId(nodeId: string): void {
  if (!NODE_ID_RE.test(nodeId)) {
    throw new ValidationError('nodeId', `${JSON.stringify(nodeId)} is not a valid node id (letters, digits, '_', '.', '-', at most 64, starting with a letter or digit)`);
  }
}

/**
 * Canonical SAN addresses: IPv6 in RFC 5952 form (via the WHATWG URL parser), loopback added,
 * duplicates dropped. Zone ids (fe80::1%eth0) name a local interface and mean nothing to a peer.
 */
function sanIps(ips: string[]): string[] {
  const out = new Set<string>();
  ips.forEach((ip, i) => {
    const family = isIP(ip);
    if (family === 0 || ip.includes('%')) throw new ValidationError(`ips[${i}]`, `${JSON.stringify(ip)} is not an IP address`);
    out.add(family === 4 ? ip : new URL(`http://[${ip}]/`).hostname.slice(1, -1));
  });
  out.add(LOOPBACK_IP);
  return [...out];
}

async function parseCsr(csrPem: string): Promise<InstanceType<typeof x509.Pkcs10CertificateRequest>> {
  let csr: InstanceType<typeof x509.Pkcs10CertificateRequest>;
  try {
    if (!csrPem.includes(PEM_CSR_HEADER)) throw new Error(`no ${PEM_CSR_HEADER} line`);
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new ValidationError('csr', `is not a PEM certificate request (${(err as Error).message})`);
  }
  if (!isP256(csr.publicKey.rawData)) throw new ValidationError('csr', 'the requested key must be ECDSA P-256');
  let ok = false;
  try {
    ok = await csr.verify(provider);
  } catch {
    ok = false;
  }
  // RFC 2986 section 3: the signature proves the requester holds the private key of the
  // public key it asks to certify; without it anyone could get a certificate for someone's key.
  if (!ok) throw new ValidationError('csr', 'signature does not verify (the request was altered or not signed by its key)');
  return csr;
}

function isP256(spki: ArrayBuffer): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === NODE_CURVE;
  } catch {
    return false; // a key type OpenSSL does not even know
  }
}

/** AKI = the CA's SKI when it has one (RFC 5280 section 4.2.1.1), else derived from its key the same way. */
async function authorityKeyId(ca: InstanceType<typeof x509.X509Certificate>): Promise<InstanceType<typeof x509.AuthorityKeyIdentifierExtension>> {
  const ski = ca.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId);
  return x509.AuthorityKeyIdentifierExtension.create(ca.publicKey, false, provider);
}

function parseCert(pem: string, field: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new ValidationError(field, `is not a PEM certificate (${(err as Error).message})`);
  }
}

/** OpenSSL's ASN1_TIME_print form, e.g. `Mar  1 12:00:00 2026 GMT`. */
function parseTime(text: string): Date {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new ValidationError('cert', `unreadable validity time ${JSON.stringify(text)}`);
  return new Date(ms);
}
