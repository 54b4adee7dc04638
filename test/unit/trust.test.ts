import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CertExpiredError,
  TRUST_DEFAULTS,
  TrustFileError,
  UntrustedCertError,
  caDigest,
  caMatchesDigest,
  certInfo,
  createCa,
  createCsr,
  createKey,
  formatToken,
  hashSecret,
  loadTrust,
  needsRenewal,
  newSecret,
  parseToken,
  removeTrust,
  renewAt,
  renewalTime,
  saveTrust,
  secretMatches,
  signNodeCert,
  trustPaths,
  verifyCert,
} from '../../src/trust/index.js';
import { ValidationError } from '../../src/util/errors.js';

type Teardown = { teardown(f: () => void): void };

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function dir(t: Teardown): string {
  const d = mkdtempSync(join(tmpdir(), 'swarmnet-trust-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Runs the openssl CLI: an implementation independent of ours. */
function openssl(args: string[], input?: string): { ok: boolean; out: string } {
  const r = spawnSync('openssl', args, { input, encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

function files(t: Teardown, pems: Record<string, string>): Record<string, string> {
  const d = dir(t);
  const out: Record<string, string> = {};
  for (const [name, pem] of Object.entries(pems)) writeFileSync((out[name] = join(d, `${name}.pem`)), pem);
  return out;
}

/** The SAN entries openssl prints, e.g. ['IP Address:127.0.0.1']. */
function sanEntries(certFile: string): string[] {
  const { out } = openssl(['x509', '-in', certFile, '-noout', '-ext', 'subjectAltName']);
  const line = out.split('\n').find((l) => /^\s+\S/.test(l)) ?? '';
  return line.trim().split(/,\s*/).sort();
}

async function issue(o: { caCertPem: string; caKeyPem: string }, nodeId: string, opts: { ips?: string[]; expiryMs?: number; now?: Date } = {}) {
  const { keyPem } = await createKey();
  const csrPem = await createCsr({ keyPem, nodeId });
  const certPem = await signNodeCert({ caCertPem: o.caCertPem, caKeyPem: o.caKeyPem, csrPem, nodeId, ips: opts.ips ?? [], expiryMs: opts.expiryMs ?? TRUST_DEFAULTS.certExpiryMs, now: opts.now });
  return { keyPem, csrPem, certPem };
}

// Two clusters whose CAs have the same name: only the keys tell them apart.
const ca = await createCa();
const ca2 = await createCa();
const caMat = { caCertPem: ca.certPem, caKeyPem: ca.keyPem };
const ca2Mat = { caCertPem: ca2.certPem, caKeyPem: ca2.keyPem };
const node1 = await issue(caMat, 'node1', { ips: ['10.0.0.5', 'fd00:0:0::1'] });

t.test('CA: self-signed, CA:TRUE pathlen:0 critical, keyCertSign+cRLSign critical, 20 years (openssl)', async (t) => {
  const f = files(t, { ca: ca.certPem, key: ca.keyPem });
  t.match(openssl(['verify', '-x509_strict', '-CAfile', f.ca!, f.ca!]).out, /: OK/);
  const subject = openssl(['x509', '-in', f.ca!, '-noout', '-subject', '-issuer', '-nameopt', 'RFC2253']).out;
  t.equal(subject, 'subject=CN=swarmnet-root-ca\nissuer=CN=swarmnet-root-ca\n');
  const ext = openssl(['x509', '-in', f.ca!, '-noout', '-ext', 'basicConstraints,keyUsage']).out;
  t.match(ext, /Basic Constraints: critical\n\s+CA:TRUE, pathlen:0/);
  t.match(ext, /Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
  t.match(openssl(['pkey', '-in', f.key!, '-noout', '-text']).out, /NIST CURVE: P-256/);
  t.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
  t.equal(openssl(['x509', '-in', f.ca!, '-noout', '-pubkey']).out, openssl(['pkey', '-in', f.key!, '-pubout']).out, 'key matches cert');
  const info = certInfo(ca.certPem);
  t.ok(Math.abs(info.notBefore.getTime() - (Date.now() - TRUST_DEFAULTS.backdateMs)) < 60_000, 'notBefore backdated');
  t.ok(Math.abs(info.notAfter.getTime() - (Date.now() + TRUST_DEFAULTS.caValidityMs)) < 60_000, 'notAfter in 20 years');
});

t.test('node cert: subject exactly CN=<node id>, IP SANs only, serverAuth+clientAuth (openssl)', async (t) => {
  const f = files(t, { ca: ca.certPem, node: node1.certPem, ca2: ca2.certPem });
  for (const purpose of ['sslserver', 'sslclient']) {
    t.match(openssl(['verify', '-x509_strict', '-purpose', purpose, '-CAfile', f.ca!, f.node!]).out, /node\.pem: OK/, purpose);
  }
  const other = openssl(['verify', '-CAfile', f.ca2!, f.node!]);
  t.notOk(other.ok, 'openssl refuses it under another CA of the same name');
  t.match(other.out, /certificate signature failure|unable to get local issuer/);
  t.equal(openssl(['x509', '-in', f.node!, '-noout', '-subject', '-nameopt', 'RFC2253']).out, 'subject=CN=node1\n', 'the string nats-server maps');
  t.same(sanEntries(f.node!), ['IP Address:10.0.0.5', 'IP Address:127.0.0.1', 'IP Address:FD00:0:0:0:0:0:0:1']);
  const ext = openssl(['x509', '-in', f.node!, '-noout', '-ext', 'extendedKeyUsage,keyUsage,basicConstraints']).out;
  t.match(ext, /TLS Web Server Authentication, TLS Web Client Authentication/);
  t.match(ext, /Key Usage: critical\n\s+Digital Signature, Key Agreement\n/);
  t.match(ext, /Basic Constraints: critical\n\s+CA:FALSE/);
  t.notMatch(openssl(['x509', '-in', f.node!, '-noout', '-text']).out, /DNS:|email:/);
  const x = new X509Certificate(node1.certPem);
  t.equal(x.checkIP('127.0.0.1'), '127.0.0.1');
  t.equal(x.checkIP('fd00::1'), 'fd00::1');
  t.equal(x.checkIP('10.0.0.6'), undefined);
});

t.test('createCsr: a PKCS#10 request openssl verifies', async (t) => {
  const f = files(t, { csr: node1.csrPem });
  const r = openssl(['req', '-in', f.csr!, '-noout', '-verify', '-subject', '-nameopt', 'RFC2253']);
  t.ok(r.ok);
  t.match(r.out, /verify OK/);
  t.match(r.out, /subject=CN=node1\n/);
});

t.test('signNodeCert: an openssl CSR asking for another subject and SANs gets CN=<node id> and IPs only', async (t) => {
  const d = dir(t);
  const [key, csr, cert, caFile] = ['k.pem', 'csr.pem', 'cert.pem', 'ca.pem'].map((n) => join(d, n)) as [string, string, string, string];
  const made = openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr,
    '-subj', '/CN=admin/O=evil', '-addext', 'subjectAltName=DNS:nats.example,email:root@example.com,IP:1.2.3.4']);
  t.ok(made.ok, made.out);
  const csrPem = readFileSync(csr, 'utf8');
  const pem = await signNodeCert({ ...caMat, csrPem, nodeId: 'node2', ips: ['192.168.1.20'], expiryMs: DAY });
  writeFileSync(cert, pem);
  writeFileSync(caFile, ca.certPem);
  t.match(openssl(['verify', '-x509_strict', '-CAfile', caFile, cert]).out, /cert\.pem: OK/);
  t.equal(openssl(['x509', '-in', cert, '-noout', '-subject', '-nameopt', 'RFC2253']).out, 'subject=CN=node2\n');
  t.same(sanEntries(cert), ['IP Address:127.0.0.1', 'IP Address:192.168.1.20']);
  t.equal(openssl(['x509', '-in', cert, '-noout', '-pubkey']).out, openssl(['pkey', '-in', key, '-pubout']).out, 'certifies the requester key');
});

t.test('signNodeCert refuses a tampered, foreign-key or garbage CSR', async (t) => {
  // Change the requested CN inside the signed part: the signature no longer covers it.
  const der = Buffer.from(node1.csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const at = der.indexOf('node1');
  t.ok(at > 0);
  der[at + 4] = '9'.charCodeAt(0);
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
  const base = { ...caMat, nodeId: 'node1', ips: [], expiryMs: DAY };
  await t.rejects(signNodeCert({ ...base, csrPem: tampered }), { code: 'EINVALID', field: 'csr', message: /^csr: signature does not verify/ });
  await t.rejects(signNodeCert({ ...base, csrPem: 'hello' }), { field: 'csr', message: /is not a PEM certificate request/ });
  await t.rejects(signNodeCert({ ...base, csrPem: node1.certPem }), { field: 'csr', message: /is not a PEM certificate request/ });
  const d = dir(t);
  const p384 = openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', join(d, 'k'), '-out', join(d, 'r'), '-subj', '/CN=x']);
  t.ok(p384.ok, p384.out);
  const csrPem = readFileSync(join(d, 'r'), 'utf8');
  await t.rejects(signNodeCert({ ...base, csrPem }), { field: 'csr', message: /ECDSA P-256/ });
});

t.test('signNodeCert validates its options', async (t) => {
  const base = { ...caMat, csrPem: node1.csrPem, nodeId: 'node1', ips: ['10.0.0.1'], expiryMs: DAY };
  const cases: Array<[string, Partial<typeof base>, string, RegExp]> = [
    ['DN injection in node id', { nodeId: 'x,O=admin' }, 'nodeId', /is not a valid node id/],
    ['empty node id', { nodeId: '' }, 'nodeId', /is not a valid node id/],
    ['node id over 64', { nodeId: 'a'.repeat(65) }, 'nodeId', /at most 64/],
    ['bad IPv4', { ips: ['10.0.0.256'] }, 'ips[0]', /is not an IP address/],
    ['host name', { ips: ['10.0.0.1', 'node1.example'] }, 'ips[1]', /is not an IP address/],
    ['zone id', { ips: ['fe80::1%eth0'] }, 'ips[0]', /is not an IP address/],
    ['zero expiry', { expiryMs: 0 }, 'expiryMs', /positive/],
    ['NaN expiry', { expiryMs: Number.NaN }, 'expiryMs', /positive/],
    ['CA key of another CA', { caKeyPem: ca2.keyPem }, 'caKeyPem', /does not belong to the CA certificate/],
    ['not a key', { caKeyPem: 'nope' }, 'caKeyPem', /is not a PEM private key/],
    ['a node cert as CA', { caCertPem: node1.certPem }, 'caCertPem', /is not a CA certificate/],
  ];
  for (const [name, change, field, message] of cases) {
    const err = await signNodeCert({ ...base, ...change }).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof ValidationError, name);
    t.match(err, { code: 'EINVALID', field, message }, name);
  }
});

t.test('certInfo agrees with openssl', async (t) => {
  const f = files(t, { node: node1.certPem });
  const info = certInfo(node1.certPem);
  t.equal(info.nodeId, 'node1');
  t.equal(`serial=${info.serial}\n`, openssl(['x509', '-in', f.node!, '-noout', '-serial']).out);
  t.match(openssl(['x509', '-in', f.node!, '-noout', '-fingerprint', '-sha256']).out, `Fingerprint=${info.fingerprint256}\n`);
  const lifetime = info.notAfter.getTime() - info.notBefore.getTime();
  t.equal(lifetime, TRUST_DEFAULTS.certExpiryMs + TRUST_DEFAULTS.backdateMs, 'notBefore = now - 1 h, notAfter = now + 90 days');
  t.ok(Math.abs(info.notBefore.getTime() - (Date.now() - HOUR)) < 60_000);
  t.not(certInfo((await issue(caMat, 'node1')).certPem).serial, info.serial, 'random serials');
  t.throws(() => certInfo('garbage'), { code: 'EINVALID', field: 'cert' });
});

t.test('verifyCert: this CA and in validity, else a typed error', async (t) => {
  const now = new Date();
  t.doesNotThrow(() => verifyCert(node1.certPem, ca.certPem));
  t.doesNotThrow(() => verifyCert(node1.certPem, ca.certPem, new Date(now.getTime() - 30 * 60_000)), 'a clock 30 min behind the issuer still accepts it');
  const err = (() => {
    try {
      verifyCert(node1.certPem, ca2.certPem);
    } catch (e) {
      return e;
    }
  })();
  t.ok(err instanceof UntrustedCertError, 'another CA (same name) fails');
  t.match(err, { code: 'ECERTUNTRUSTED', message: /not signed by this CA/ });
  const foreign = await issue(ca2Mat, 'node1');
  t.throws(() => verifyCert(foreign.certPem, ca.certPem), { code: 'ECERTUNTRUSTED' });
  t.throws(() => verifyCert(ca.certPem, ca.certPem), { code: 'ECERTUNTRUSTED', message: /is a CA certificate/ });
  t.throws(() => verifyCert(node1.certPem, node1.certPem), { code: 'ECERTUNTRUSTED', message: /not a CA/ });
  t.throws(() => verifyCert(node1.certPem, ca.certPem, new Date(now.getTime() - 2 * HOUR)), { code: 'ECERTNOTYETVALID' });
  t.throws(() => verifyCert(node1.certPem, ca.certPem, new Date(now.getTime() + 91 * DAY)), { code: 'ECERTEXPIRED' });
  t.throws(() => verifyCert('x', ca.certPem), { code: 'EINVALID', field: 'cert' });

  // Issued 100 days ago for one day: expired now, for us and for openssl.
  const old = await issue(caMat, 'node3', { expiryMs: DAY, now: new Date(now.getTime() - 100 * DAY) });
  const e2 = (() => {
    try {
      verifyCert(old.certPem, ca.certPem);
    } catch (e) {
      return e;
    }
  })();
  t.ok(e2 instanceof CertExpiredError);
  t.match(e2, { code: 'ECERTEXPIRED', message: /^the certificate expired at / });
  const f = files(t, { ca: ca.certPem, old: old.certPem });
  t.match(openssl(['verify', '-CAfile', f.ca!, f.old!]).out, /certificate has expired/);
});

t.test('a node certificate never outlives its CA', async (t) => {
  const long = await issue(caMat, 'node4', { expiryMs: 30 * 365 * DAY });
  t.same(certInfo(long.certPem).notAfter, certInfo(ca.certPem).notAfter);
});

t.test('renewal: between 50% and 80% of the lifetime, fixed per certificate', async (t) => {
  const notBefore = new Date('2026-01-01T00:00:00Z');
  const notAfter = new Date('2026-01-11T00:00:00Z');
  for (const [jitter, day] of [[0, 5], [0.5, 6.5], [1, 8]] as const) {
    t.same(renewalTime({ notBefore, notAfter, jitter }), new Date(notBefore.getTime() + day * DAY), `jitter ${jitter}`);
  }
  const info = certInfo(node1.certPem);
  const lifetime = info.notAfter.getTime() - info.notBefore.getTime();
  const at = renewAt(node1.certPem);
  t.ok(at.getTime() >= info.notBefore.getTime() + lifetime * 0.5 && at.getTime() <= info.notBefore.getTime() + lifetime * 0.8, `${at.toISOString()} in range`);
  t.same(renewAt(node1.certPem), at, 'pure: same certificate, same instant');
  t.notOk(needsRenewal(node1.certPem, new Date(at.getTime() - 1)));
  t.ok(needsRenewal(node1.certPem, at));
  t.ok(needsRenewal(node1.certPem, new Date(info.notAfter.getTime() + DAY)), 'expired: renew');
  t.notOk(needsRenewal(node1.certPem), 'fresh certificate: not yet');
  const spread = new Set<number>();
  for (let i = 0; i < 5; i++) spread.add(renewAt((await issue(caMat, 'node1')).certPem).getTime());
  t.ok(spread.size >= 4, 'certificates issued together renew at different times');
});

t.test('tokens: format, parse and pin the CA', async (t) => {
  const secret = newSecret();
  t.match(secret, /^[0-9a-z]{25}$/);
  const token = formatToken(ca.certPem, secret);
  t.match(token, /^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  t.same(parseToken(token), { version: 1, caDigest: caDigest(ca.certPem), secret });
  t.same(parseToken(`  ${token}\n`).secret, secret, 'surrounding white space ignored');
  t.ok(caMatchesDigest(ca.certPem, parseToken(token).caDigest));
  t.notOk(caMatchesDigest(ca2.certPem, parseToken(token).caDigest), 'the other cluster\'s CA does not match');
  t.notOk(caMatchesDigest('<html>not a manager</html>', parseToken(token).caDigest), 'garbage does not match');
  t.throws(() => caDigest(''), { code: 'EINVALID', field: 'caCertPem' });
  // Independent digest: openssl's DER and sha256, rendered in base 36.
  const f = files(t, { ca: ca.certPem });
  const der = spawnSync('openssl', ['x509', '-in', f.ca!, '-outform', 'DER']).stdout;
  const hex = createHash('sha256').update(der).digest('hex');
  t.equal(caDigest(ca.certPem), BigInt(`0x${hex}`).toString(36).padStart(50, '0'));
  const secrets = new Set(Array.from({ length: 200 }, () => newSecret()));
  t.equal(secrets.size, 200);
  t.equal(parseToken(formatToken(ca.certPem, '0000000000000000000000001')).secret, '0000000000000000000000001', 'zero padding is part of the secret');
  t.throws(() => formatToken(ca.certPem, 'short'), { code: 'EINVALID', field: 'secret' });
});

t.test('parseToken names each problem, never echoing the secret', async (t) => {
  const digest = caDigest(ca.certPem);
  const secret = 'abcdefghijklmnopqrstuvwxy';
  const cases: Array<[string, string, RegExp]> = [
    ['empty', '', /^token: must start with SWMTKN-$/],
    ['wrong prefix', `SWMTKM-1-${digest}-${secret}`, /must start with SWMTKN-/],
    ['lower-case prefix', `swmtkn-1-${digest}-${secret}`, /must start with SWMTKN-/],
    ['version 2', `SWMTKN-2-${digest}-${secret}`, /unsupported version "2"/],
    ['no version', 'SWMTKN', /unsupported version ""/],
    ['too few parts', `SWMTKN-1-${digest}`, /must have 4 parts separated by '-' \(got 3\)/],
    ['too many parts', `SWMTKN-1-${digest}-${secret}-x`, /must have 4 parts separated by '-' \(got 5\)/],
    ['short digest', `SWMTKN-1-${digest.slice(1)}-${secret}`, /CA digest must be 50 characters \(got 49\)/],
    ['long digest', `SWMTKN-1-${digest}0-${secret}`, /CA digest must be 50 characters \(got 51\)/],
    ['upper-case digest', `SWMTKN-1-${digest.toUpperCase()}-${secret}`, /CA digest must be lower-case base 36/],
    ['short secret', `SWMTKN-1-${digest}-${secret.slice(1)}`, /secret must be 25 characters \(got 24\)/],
    ['long secret', `SWMTKN-1-${digest}-${secret}z`, /secret must be 25 characters \(got 26\)/],
    ['bad secret character', `SWMTKN-1-${digest}-${secret.slice(1)}_`, /secret must be lower-case base 36/],
  ];
  for (const [name, text, message] of cases) {
    const err = (() => {
      try {
        parseToken(text);
      } catch (e) {
        return e;
      }
    })();
    t.ok(err instanceof ValidationError, name);
    t.match(err, { code: 'EINVALID', field: 'token', message }, name);
    t.notMatch((err as Error).message, secret.slice(0, 20), `${name}: secret not in the message`);
  }
});

t.test('secrets are stored hashed and compared in constant time', async (t) => {
  t.equal(hashSecret('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'FIPS 180-2 test vector');
  const secret = newSecret();
  const hash = hashSecret(secret);
  t.match(hash, /^[0-9a-f]{64}$/);
  t.ok(secretMatches(secret, hash));
  t.notOk(secretMatches(newSecret(), hash));
  t.notOk(secretMatches(secret, ''), 'malformed hash');
  t.notOk(secretMatches(secret, hash.slice(2)), 'short hash');
  t.notOk(secretMatches(secret, secret), 'a plain secret is not a hash');
});

t.test('files: layout, modes, atomic replace, load, remove', async (t) => {
  const dataDir = join(dir(t), 'data');
  const p = trustPaths(dataDir);
  t.same(p, { dir: join(dataDir, 'trust'), caCert: join(dataDir, 'trust/ca.pem'), caKey: join(dataDir, 'trust/ca-key.pem'), nodeCert: join(dataDir, 'trust/node.pem'), nodeKey: join(dataDir, 'trust/node-key.pem') });
  t.equal(await loadTrust(dataDir), undefined, 'nothing yet');
  const all = { caCertPem: ca.certPem, caKeyPem: ca.keyPem, nodeCertPem: node1.certPem, nodeKeyPem: node1.keyPem };
  // With umask 0 a file gets exactly the mode open() asks for: keys must still be 0600.
  const umask = process.umask(0);
  try {
    await saveTrust(dataDir, all);
  } finally {
    process.umask(umask);
  }
  const mode = (f: string) => statSync(f).mode & 0o777;
  t.equal(mode(p.dir), 0o700);
  t.equal(mode(p.caKey), 0o600);
  t.equal(mode(p.nodeKey), 0o600);
  t.equal(mode(p.caCert), 0o644);
  t.equal(mode(p.nodeCert), 0o644);
  t.same(await loadTrust(dataDir), all);

  const next = await issue(caMat, 'node1');
  await saveTrust(dataDir, { nodeCertPem: next.certPem, nodeKeyPem: next.keyPem });
  t.same(await loadTrust(dataDir), { ...all, nodeCertPem: next.certPem, nodeKeyPem: next.keyPem }, 'replaced; others kept');
  t.same(readdirSync(p.dir).sort(), ['ca-key.pem', 'ca.pem', 'node-key.pem', 'node.pem'], 'no temporary files left');
  t.equal(mode(p.nodeKey), 0o600, 'replacement key 0600 too');

  chmodSync(p.nodeKey, 0o640);
  const err = await loadTrust(dataDir).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof TrustFileError);
  t.match(err, { code: 'ETRUSTFILE', path: p.nodeKey, message: /mode 0640/ });

  await removeTrust(dataDir);
  t.equal(await loadTrust(dataDir), undefined);
  await removeTrust(dataDir);
  t.ok(statSync(dataDir).isDirectory(), 'the data dir itself stays');
});

t.test('files: a worker (no CA key), a join in progress, a too-open directory', async (t) => {
  const dataDir = dir(t);
  mkdirSync(join(dataDir, 'trust'), { mode: 0o755 });
  chmodSync(join(dataDir, 'trust'), 0o755);
  await saveTrust(dataDir, { nodeKeyPem: node1.keyPem });
  t.equal(statSync(join(dataDir, 'trust')).mode & 0o777, 0o700, 'narrowed to 0700');
  t.same(await loadTrust(dataDir), { nodeKeyPem: node1.keyPem }, 'key made, certificate not yet received');
  await saveTrust(dataDir, { caCertPem: ca.certPem, nodeCertPem: node1.certPem });
  t.same(await loadTrust(dataDir), { caCertPem: ca.certPem, nodeCertPem: node1.certPem, nodeKeyPem: node1.keyPem });
});

t.test('mutual TLS with issued certificates (node:tls)', async (t) => {
  const server = await issue(caMat, 'server-node', { ips: ['127.0.0.1'] });
  const client = await issue(caMat, 'client-node', { ips: ['10.1.1.1'] });
  const foreign = await issue(ca2Mat, 'client-node');

  const seen: { peers: string[]; clientErrors: string[] } = { peers: [], clientErrors: [] };
  const srv = createServer({ key: server.keyPem, cert: server.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
    seen.peers.push(String(s.getPeerCertificate().subject.CN));
    s.end('hello');
  });
  srv.on('tlsClientError', (err) => seen.clientErrors.push((err as NodeJS.ErrnoException).code ?? err.message));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => srv.close());
  const port = (srv.address() as AddressInfo).port;

  /** Connects and reads to the end; resolves with what happened instead of rejecting. */
  const dial = (o: { key: string; cert: string; ca: string }) =>
    new Promise<{ data: string; error?: string; serverCn?: string }>((resolve) => {
      let data = '';
      const s: TLSSocket = connect({ host: '127.0.0.1', port, ...o });
      s.on('data', (b: Buffer) => (data += b.toString()));
      s.on('error', (err: NodeJS.ErrnoException) => resolve({ data, error: err.code ?? err.message }));
      s.on('end', () => resolve({ data, serverCn: String(s.getPeerCertificate().subject?.CN) }));
    });

  const ok = await dial({ key: client.keyPem, cert: client.certPem, ca: ca.certPem });
  t.same(ok, { data: 'hello', serverCn: 'server-node' }, 'handshake completes; server verified on 127.0.0.1');
  t.same(seen.peers, ['client-node'], 'server sees the client node id');

  // In TLS 1.3 the client finishes its side before the server has checked the client's
  // certificate; Node's server then destroys the socket (no alert), so the client sees the
  // connection end without data and the server reports a tlsClientError.
  const refused = await dial({ key: foreign.keyPem, cert: foreign.certPem, ca: ca.certPem });
  t.equal(refused.data, '', 'a client certificate from another CA gets nothing');
  t.same(seen.peers, ['client-node'], 'no connection accepted');
  t.equal(seen.clientErrors.length, 1, `server refused it (${seen.clientErrors[0]})`);

  // The server sends its chain (leaf + its CA, completed from its `ca` store), so a client
  // trusting only the other CA meets an untrusted self-signed CA in the chain.
  const wrongCa = await dial({ key: client.keyPem, cert: client.certPem, ca: ca2.certPem });
  t.equal(wrongCa.data, '');
  t.match(wrongCa.error, /^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/, `a client pinned to another CA refuses the server (${wrongCa.error})`);
});
