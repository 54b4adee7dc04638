/**
 * A cluster as Swarm makes one, on five namespace-hosts with real agents and the
 * nats-servers they supervise: init on host1, a worker join (host2), manager joins
 * (host3, host4); the routing mesh and the overlay across them; mutual TLS
 * everywhere (NATS and the TCP API refuse clients without a certificate of the
 * cluster CA); token rotation; bad joins that leave nothing behind; node rm cutting a
 * node off; losing one of three managers.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { createTopology, createContainer } from '../helpers/netns.js';
import { killOnTeardown, startAgent, startBackends, type AgentProc } from '../helpers/procs.js';
import { tcpRequest, until } from '../helpers/net.js';
import { createCa, createCsr, createKey, formatToken, newSecret, signNodeCert } from '../../src/trust/index.js';

// Five agents, three nats-servers, joins and a manager loss: longer than a unit test.
t.setTimeout(300_000);
const topo = createTopology(t, 5);
const hosts = topo.hosts;
const agents: AgentProc[] = [];
for (const [i, h] of hosts.entries()) {
  agents.push(await startAgent(t, { ip: h.ip, spawner: h.spawn, overlay: i < 2, args: ['--node-id', `host${i + 1}`, '--advertise-addr', h.ip, '--heartbeat', '500ms', '--node-timeout', '3s'] }));
}
const [a1, a2, a3, a4, a5] = agents as [AgentProc, AgentProc, AgentProc, AgentProc, AgentProc];
const [h1, h2, h3, h4, h5] = hosts as [(typeof hosts)[number], (typeof hosts)[number], (typeof hosts)[number], (typeof hosts)[number], (typeof hosts)[number]];
const within = (what: string, fn: () => Promise<boolean>, ms = 20000, detail?: () => Promise<string>) => until(what, fn, ms, detail);
const nodes = async (a: AgentProc) => JSON.parse(await a.ok('node', 'ls', '--format', 'json')) as Array<{ id: string; role?: string; status: string }>;
const info = async (a: AgentProc) => JSON.parse((await a.request('GET', '/v1/info')).text) as { mode: string; cluster?: { role: string } };

/** An HTTPS request to a node's cluster API with the given client certificate (or none). */
function tlsApi(host: string, path: string, tls: { ca: string; cert?: string; key?: string }, method = 'GET'): Promise<{ status: number; text: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request({ host, port: 2377, path, method, ca: tls.ca, ...(tls.cert && { cert: tls.cert, key: tls.key }), timeout: 5000 }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

let workerToken = '';
let managerToken = '';
const trust = (a: AgentProc, f: string) => join(a.dataDir, 'trust', f);
/** Client TLS for NATS: the chain is verified against the CA; node certificates carry IPs, not names. */
const anyServer = <T extends object>(o: T): T => ({ ...o, checkServerIdentity: () => undefined });

t.test('init creates a CA, this node certificate and a supervised nats-server, and prints the join commands', async (t) => {
  const out = await a1.ok('init');
  const lines = out.split('\n').filter((l) => l.includes('swarmnet join --token'));
  t.equal(lines.length, 2, out);
  workerToken = /--token (\S+)/.exec(lines[0]!)![1]!;
  managerToken = /--token (\S+)/.exec(lines[1]!)![1]!;
  t.match(workerToken, /^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  t.not(workerToken, managerToken);
  t.match(lines[0]!, new RegExp(`${h1.ip.replace(/\./g, '\\.')}:2377$`), 'joins go to the advertised address');
  for (const f of ['ca-key.pem', 'node-key.pem']) t.equal(statSync(trust(a1, f)).mode & 0o777, 0o600, `${f} is 0600`);
  t.equal((await info(a1)).cluster?.role, 'manager');
  t.same((await nodes(a1)).map((n) => `${n.id} ${n.role}`), ['host1 manager']);
  t.equal((await a1.ok('join-token', '-q', 'worker')).trim(), workerToken, 'join-token prints the same token again');
});

t.test('a worker and two managers join with their tokens', async (t) => {
  t.match(await a2.ok('join', '--token', workerToken, `${h1.ip}:2377`), /joined the cluster as a worker/);
  t.match(await a3.ok('join', '--token', managerToken, `${h1.ip}:2377`), /joined the cluster as a manager/);
  t.match(await a4.ok('join', '--token', managerToken, `${h3.ip}:2377`), /as a manager/, 'through the second manager');
  t.notOk(existsSync(trust(a2, 'ca-key.pem')), 'a worker never holds the CA key');
  t.ok(existsSync(trust(a3, 'ca-key.pem')), 'a manager does');
  await within('all four ready on every node', async () => {
    for (const a of [a1, a2, a3, a4]) {
      const ns = await nodes(a);
      if (ns.map((n) => `${n.id}=${n.role}/${n.status}`).sort().join(' ') !== 'host1=manager/ready host2=worker/ready host3=manager/ready host4=manager/ready') return false;
    }
    return true;
  }, 30000, async () => JSON.stringify(await nodes(a1)));
  t.pass('node ls agrees on every node');
});

t.test('the routing mesh and the overlay work across the cluster', async (t) => {
  await startBackends(t, [`t2@${h2.ip}:9000`], h2.spawn);
  await startBackends(t, [`t3@${h3.ip}:9000`], h3.spawn);
  await a1.ok('service', 'create', '--name', 'web', '--publish', '30080:9000');
  await a2.ok('task', 'add', '--service', 'web', '--addr', `${h2.ip}:9000`);
  await a3.ok('task', 'add', '--service', 'web', '--addr', `${h3.ip}:9000`);
  for (const h of [h1, h2, h3, h4]) {
    await within(`${h.ip} serves both tasks`, async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) seen.add((await tcpRequest(h.ip, 30080).catch(() => '')).split(' ')[0]!);
      return seen.has('t2') && seen.has('t3');
    });
  }
  t.pass('every node balances over tasks on host2 and host3');
  await a1.ok('network', 'create', 'appnet');
  await a1.ok('service', 'create', '--name', 'api', '--network', 'appnet');
  const c1 = createContainer(t, 'sw1');
  const c2 = createContainer(t, 'sw2');
  await a1.ok('task', 'add', '--service', 'api', '--network', 'appnet', '--netns', c1.path, '--name', 'one');
  await a2.ok('task', 'add', '--service', 'api', '--network', 'appnet', '--netns', c2.path, '--name', 'two');
  const tasks = JSON.parse(await a1.ok('task', 'ls', '--service', 'api', '--format', 'json')) as Array<{ name: string; addresses: Array<{ ip: string }> }>;
  const two = tasks.find((x) => x.name === 'two')!.addresses[0]!.ip;
  await within('container on host1 pings the one on host2 over VXLAN', async () => (await c1.exec('ping', ['-c', '1', '-W', '1', two])).code === 0);
  t.pass('overlay ping across hosts');
});

t.test('NATS and the TCP API admit only certificates of this cluster', async (t) => {
  const ca = readFileSync(trust(a1, 'ca.pem'), 'utf8');
  // No client certificate: NATS refuses.
  await t.rejects(connect({ servers: `tls://${h1.ip}:4222`, tls: anyServer({ ca }), reconnect: false, timeout: 3000 }), 'NATS without a client certificate');
  // A certificate of another CA: refused too.
  const other = await createCa();
  const { keyPem } = await createKey();
  const foreign = await signNodeCert({ caCertPem: other.certPem, caKeyPem: other.keyPem, csrPem: await createCsr({ keyPem, nodeId: 'host2' }), nodeId: 'host2', ips: [], expiryMs: 3600_000 });
  await t.rejects(connect({ servers: `tls://${h1.ip}:4222`, tls: anyServer({ ca, cert: foreign, key: keyPem }), reconnect: false, timeout: 3000 }), 'NATS with a foreign certificate');
  // A member's certificate: admitted.
  const member = { ca, cert: readFileSync(trust(a2, 'node.pem'), 'utf8'), key: readFileSync(trust(a2, 'node-key.pem'), 'utf8') };
  const nc = await connect({ servers: `tls://${h1.ip}:4222`, tls: anyServer({ ...member }), reconnect: false, timeout: 3000 });
  await nc.close();
  t.pass('NATS with a member certificate');

  // A certificate of this very CA that has expired: refused by both.
  const caKey = readFileSync(trust(a1, 'ca-key.pem'), 'utf8');
  const old = await createKey();
  const expired = await signNodeCert({ caCertPem: ca, caKeyPem: caKey, csrPem: await createCsr({ keyPem: old.keyPem, nodeId: 'host2' }), nodeId: 'host2', ips: [h2.ip], expiryMs: 3600_000, now: new Date(Date.now() - 3 * 3600_000) });
  await t.rejects(connect({ servers: `tls://${h1.ip}:4222`, tls: anyServer({ ca, cert: expired, key: old.keyPem }), reconnect: false, timeout: 3000 }), 'NATS with an expired certificate');
  const stale = await tlsApi(h1.ip, '/v1/services', { ca, cert: expired, key: old.keyPem });
  t.ok('error' in stale || stale.status === 403, 'TCP API with an expired certificate: refused');

  const none = await tlsApi(h1.ip, '/v1/services', { ca });
  t.equal('status' in none && none.status, 403, 'TCP API without a certificate: 403');
  const bad = await tlsApi(h1.ip, '/v1/services', { ca, cert: foreign, key: keyPem });
  t.ok('error' in bad || bad.status === 403, 'TCP API with a foreign certificate: refused');
  const good = await tlsApi(h1.ip, '/v1/services', member);
  t.equal('status' in good && good.status, 200, 'TCP API with a member certificate');
  // A worker's certificate cannot join the managers' NATS cluster as a server (route).
  const rogueDir = mkdtempSync(join(tmpdir(), 'swarmnet-rogue-'));
  t.teardown(() => rmSync(rogueDir, { recursive: true, force: true }));
  writeFileSync(join(rogueDir, 'rogue.conf'), [
    'server_name: rogue',
    `listen: "${h2.ip}:14222"`,
    `jetstream { store_dir: "${rogueDir}/js" }`,
    'cluster {',
    '  name: swarmnet',
    `  listen: "${h2.ip}:16222"`,
    `  tls { cert_file: "${trust(a2, 'node.pem')}", key_file: "${trust(a2, 'node-key.pem')}", ca_file: "${trust(a2, 'ca.pem')}", verify: true }`,
    `  routes = [ "nats-route://${h1.ip}:6222" ]`,
    '}',
  ].join('\n'));
  const rogue = h2.spawn('nats-server', ['-c', join(rogueDir, 'rogue.conf')]);
  killOnTeardown(t, rogue);
  let rogueLog = '';
  rogue.stderr?.on('data', (d: Buffer) => (rogueLog += d.toString()));
  await within('the rogue route is refused', async () => /Authorization Violation|Authentication Failure|bad certificate/.test(rogueLog), 15000, async () => rogueLog);
  t.notMatch(rogueLog, /Route connection created[\s\S]*new metadata leader/, 'it never joined the JetStream cluster');
  process.kill(rogue.pid!, 'SIGKILL');
  // What needs the CA key answers managers only: a worker's certificate cannot read the
  // manager token nor promote itself.
  const asWorker = async (method: string, path: string) => {
    const r = await tlsApi(h1.ip, path, member, method);
    return 'status' in r ? r.status : r.error;
  };
  t.equal(await asWorker('GET', '/v1/swarm/join-token/manager'), 403, 'a worker cannot read the manager token');
  t.equal(await asWorker('POST', '/v1/nodes/host2/promote'), 403, 'a worker cannot promote itself');
  t.equal(await asWorker('DELETE', '/v1/nodes/host3?force=1'), 403, 'a worker cannot remove nodes');
  t.equal(await asWorker('POST', '/v1/swarm/role'), 403, 'a worker cannot change roles');
  t.notOk(existsSync(trust(a2, 'ca-key.pem')), 'and still holds no CA key');
  const m = await a3.cli('--host', `tcp://${h1.ip}:2377`, '--cert-dir', join(a3.dataDir, 'trust'), 'join-token', '-q', 'worker');
  t.equal(m.code, 0, `a manager's certificates can: ${m.stderr}`);
  // The CLI over tcp:// with a node's certificates.
  const r = await a2.cli('--host', `tcp://${h1.ip}:2377`, '--cert-dir', join(a2.dataDir, 'trust'), 'service', 'ls');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /web/);
});

t.test('bad joins: one clear line, non-zero exit, nothing stored', async (t) => {
  const check = async (args: string[], message: RegExp, what: string) => {
    const r = await a5.cli('join', ...args);
    t.not(r.code, 0, `${what}: non-zero exit`);
    t.match(r.stderr, message, what);
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    t.equal((await info(a5)).mode, 'single', `${what}: still alone`);
    t.notOk(existsSync(join(a5.dataDir, 'cluster.json')) || existsSync(join(a5.dataDir, 'trust')), `${what}: no cluster files left`);
  };
  const old = workerToken;
  const rotated = await a1.ok('join-token', '--rotate', '-q', 'worker');
  t.not(rotated.trim(), old, 'a new token');
  await check(['--token', old, `${h1.ip}:2377`], /invalid join token/, 'rotated token');
  await check(['--token', old.replace(/-[0-9a-z]{25}$/, '-' + newSecret()), `${h3.ip}:2377`], /invalid join token/, 'wrong secret');
  const other = await createCa();
  await check(['--token', formatToken(other.certPem, newSecret()), `${h1.ip}:2377`], /belongs to another cluster.*not sent/, 'token of another cluster');
  await check(['--token', 'SWMTKN-2-abc', `${h1.ip}:2377`], /token/, 'malformed token');
  await check(['--token', rotated.trim(), `${h5.ip}:2377`], /no manager answers/, 'no manager at that address');
  await check(['--token', rotated.trim(), `${h2.ip}:2377`], /is not a swarmnet manager.*nothing was sent/, 'a worker\'s address');
  // A node id that is taken: host5 under host2's id.
  const clash = await startAgent(t, { ip: h5.ip, spawner: h5.spawn, dataDir: join(a5.dataDir, 'clash'), args: ['--node-id', 'host2', '--advertise-addr', h5.ip] });
  const r = await clash.cli('join', '--token', rotated.trim(), `${h1.ip}:2377`);
  t.not(r.code, 0);
  t.match(r.stderr, /node id host2 is already in the cluster/);
  await clash.stop();
  t.match(await a5.ok('join', '--token', rotated.trim(), `${h1.ip}:2377`), /as a worker/, 'the rotated token works');
});

t.test('node rm cuts the removed node off within 10 s, and it says so', async (t) => {
  // Its credentials, as an attacker who copied them would hold them.
  const ca = readFileSync(trust(a1, 'ca.pem'), 'utf8');
  const cert = readFileSync(trust(a5, 'node.pem'), 'utf8');
  const key = readFileSync(trust(a5, 'node-key.pem'), 'utf8');
  const started = Date.now();
  t.match(await a1.ok('node', 'rm', '--force', 'host5'), /host5/);
  await within('host5 refused by NATS and by the TCP API', async () => {
    const api = await tlsApi(h1.ip, '/v1/services', { ca, cert, key });
    const nats = await connect({ servers: `tls://${h1.ip}:4222`, tls: anyServer({ ca, cert, key }), reconnect: false, timeout: 2000 }).then(
      async (nc) => {
        await nc.close();
        return true;
      },
      () => false,
    );
    return 'status' in api && api.status === 403 && !nats;
  }, 10000);
  t.ok(Date.now() - started < 10000, `cut off in ${Date.now() - started} ms`);
  await within('host5 noticed and went back to its own store', async () => (await info(a5)).mode === 'single', 10000);
  t.notOk((await nodes(a1)).some((n) => n.id === 'host5'), 'gone from node ls');
});

t.test('promote makes a worker a manager (CA key, nats-server); demote undoes it', async (t) => {
  await a1.ok('node', 'promote', 'host2');
  await within('host2 is a manager and does what managers do', async () => (await info(a2)).cluster?.role === 'manager' && (await a2.cli('join-token', 'worker')).stdout.includes('swarmnet join --token SWMTKN-1-'));
  t.ok(existsSync(trust(a2, 'ca-key.pem')), 'it holds the CA key');
  const d = await a2.cli('node', 'demote', 'host2');
  t.not(d.code, 0, 'a manager does not demote itself');
  await a1.ok('node', 'demote', 'host2');
  await within('host2 is a worker again', async () => (await info(a2)).cluster?.role === 'worker');
  t.notOk(existsSync(trust(a2, 'ca-key.pem')), 'the CA key is gone');
  const r = await a2.cli('join-token', 'worker');
  t.not(r.code, 0);
  t.match(r.stderr, /not a manager/, 'a worker cannot print tokens');
  await within('host2 ready as a worker everywhere', async () => (await nodes(a3)).some((n) => n.id === 'host2' && n.role === 'worker' && n.status === 'ready'));
  t.pass('the cluster agrees');
});

t.test('losing one of three managers loses no state and writes go on', async (t) => {
  const ca = readFileSync(trust(a1, 'ca.pem'), 'utf8');
  const nc = await connect({ servers: `tls://${h1.ip}:4222`, tls: anyServer({ ca, cert: readFileSync(trust(a1, 'node.pem'), 'utf8'), key: readFileSync(trust(a1, 'node-key.pem'), 'utf8') }), timeout: 3000 });
  const jsm = await jetstreamManager(nc);
  await within('buckets replicated on the three managers', async () => (await jsm.streams.info('KV_swarmnet-services')).config.num_replicas === 3, 20000);
  await nc.close();
  const before = JSON.parse(await a1.ok('service', 'ls', '--format', 'json')) as Array<{ name: string }>;
  const exited = new Promise((r) => a4.child.once('exit', r));
  process.kill(a4.child.pid!, 'SIGKILL');
  await exited;
  await within('a write through host1 succeeds', async () => (await a1.cli('service', 'create', '--name', 'after-loss', '--publish', '30090:9000')).code === 0, 30000);
  const after = JSON.parse(await a3.ok('service', 'ls', '--format', 'json')) as Array<{ name: string }>;
  t.same(after.map((s) => s.name).filter((n) => n !== 'after-loss'), before.map((s) => s.name), 'nothing lost');
  t.ok(after.some((s) => s.name === 'after-loss'), 'the new write is seen on another manager');
});
