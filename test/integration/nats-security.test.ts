/**
 * TLS (server verified against a CA file) and user/password to NATS, with a real
 * nats-server and certificates made here with openssl.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loopbackNet, startAgent } from '../helpers/procs.js';
import { startNatsWithConfig } from '../helpers/nats.js';

const ip = loopbackNet();
const host = ip(9);
const dir = mkdtempSync(join(tmpdir(), 'swarmnet-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function makeCa(name: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`], { stdio: 'ignore' });
  return { cert, key };
}

const ca = makeCa('swarmnet-test-ca');
const other = makeCa('some-other-ca');
const serverKey = join(dir, 'server.key');
const serverCsr = join(dir, 'server.csr');
const serverCert = join(dir, 'server.pem');
// With an IP URL, nats.js checks the certificate against the name "localhost" (it passes no
// servername for IPs), so the test certificate names both; with DNS names no such need.
writeFileSync(join(dir, "san.ext"), `subjectAltName=IP:${host},DNS:localhost\n`);
execFileSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', serverKey, '-out', serverCsr, '-subj', `/CN=${host}`], { stdio: 'ignore' });
execFileSync('openssl', ['x509', '-req', '-in', serverCsr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', serverCert, '-days', '2', '-extfile', join(dir, 'san.ext')], { stdio: 'ignore' });

await startNatsWithConfig(
  t,
  host,
  4222,
  `tls { cert_file: "${serverCert}", key_file: "${serverKey}" }\nauthorization { user: swarm, password: "s3cret" }\n`,
);
const url = `tls://${host}:4222`;

t.test('TLS verified against the CA, with user and password', async (t) => {
  const agent = await startAgent(t, { ip: ip(1), args: ['--nats', url, '--nats-tls-ca', ca.cert, '--nats-user', 'swarm'], env: { SWARMNET_NATS_PASSWORD: 's3cret' } });
  const r = await agent.cli('service', 'create', '--name', 'secure', '--publish', '28001:80');
  t.equal(r.code, 0, r.stderr);
  t.match((await agent.cli('service', 'ls')).stdout, /secure/);
});

t.test('a wrong password or an untrusted server certificate stops the agent with a clear error', async (t) => {
  await t.rejects(
    startAgent(t, { ip: ip(2), args: ['--nats', url, '--nats-tls-ca', ca.cert, '--nats-user', 'swarm'], env: { SWARMNET_NATS_PASSWORD: 'wrong' } }),
    /cannot connect to NATS at tls:\/\/[\d.]+:4222: .*(auth|Authorization)/i,
  );
  await t.rejects(
    startAgent(t, { ip: ip(3), args: ['--nats', url, '--nats-tls-ca', other.cert, '--nats-user', 'swarm'], env: { SWARMNET_NATS_PASSWORD: 's3cret' } }),
    /cannot connect to NATS at tls:\/\/[\d.]+:4222: .*(certificate|verify|self.signed)/i,
  );
});
