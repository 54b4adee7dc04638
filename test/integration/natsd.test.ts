/**
 * The supervised nats-server of a manager, with real processes and certificates made
 * here with openssl (ECDSA P-256, subject CN=<node id>, IP SANs, EKU serverAuth +
 * clientAuth): mutual TLS and users mapped from certificates, a removed node cut off
 * on update, two servers routed over TLS (the first standalone until the second
 * comes, its bucket adopted into the cluster), restart after a kill.
 */
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { pino } from 'pino';
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { certUser, NatsServer, NatsdReloadError, NatsdStartError, renderConfig, type NatsdConfig, type NatsServerOptions } from '../../src/agent/natsd/index.js';
import { isCode } from '../../src/util/errors.js';
import { killOnTeardown, loopbackNet } from '../helpers/procs.js';
import { onCleanup } from '../helpers/cleanup.js';
import { sleep, until } from '../helpers/net.js';

type T = { teardown(fn: () => unknown): void };

const ip = loopbackNet();
const dir = mkdtempSync(join(tmpdir(), 'swarmnet-natsd-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// ---- certificates ----

interface Cert {
  cert: string;
  key: string;
}

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

function makeCa(name: string): Cert {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key);
  openssl('req', '-x509', '-new', '-key', key, '-subj', `/CN=${name}`, '-days', '2', '-out', cert);
  return { cert, key };
}

/** A node certificate as the cluster CA issues them: subject exactly CN=<id>, IP SANs, both EKUs. */
function makeNode(ca: Cert, id: string, addr: string): Cert {
  const base = join(dir, `node-${Buffer.from(id).toString('hex')}-${addr}-${ca === cluster ? 'ca' : 'other'}`);
  const [key, csr, cert, ext] = [`${base}.key`, `${base}.csr`, `${base}.pem`, `${base}.ext`];
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key);
  openssl('req', '-new', '-key', key, '-subj', `/CN=${id}`, '-out', csr);
  writeFileSync(ext, `subjectAltName=IP:${addr},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n`);
  openssl('x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-out', cert, '-extfile', ext);
  return { cert, key };
}

const cluster = makeCa('swarmnet-test-ca');
const other = makeCa('some-other-ca');
const WEIRD = 'we"ird,one'; // a node id needing both config quoting and RFC 4514 escaping

// ---- helpers ----

const logs: Array<{ level: number; msg: string } & Record<string, unknown>> = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) logs.push(JSON.parse(l) as (typeof logs)[number]);
      cb();
    },
  }),
);

interface Node {
  id: string;
  host: string;
  cert: Cert;
}

function node(id: string, host: string): Node {
  return { id, host, cert: makeNode(cluster, id, host) };
}

function options(n: Node, o: Partial<NatsdConfig> = {}): NatsServerOptions {
  const d = join(dir, `srv-${n.id}-${n.host}`);
  return {
    dir: d,
    logger,
    serverName: n.id,
    host: n.host,
    clientPort: 4222,
    clusterPort: 6222,
    storeDir: join(d, 'jetstream'),
    tls: { certFile: n.cert.cert, keyFile: n.cert.key, caFile: cluster.cert },
    routes: [],
    users: [n.id],
    backoff: { initialMs: 200 },
    ...o,
  };
}

/** A supervised server, stopped in teardown; whatever process it has then is killed by pid. */
async function supervise(t: T, n: Node, o: Partial<NatsdConfig> = {}): Promise<NatsServer> {
  const srv = new NatsServer(options(n, o));
  t.teardown(() => srv.stop());
  onCleanup(t, () => {
    const pid = srv.pid;
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
  await srv.start();
  return srv;
}

/**
 * A client of `host` with `cert` (none: TLS without a client certificate). nats.js checks a
 * server certificate against "localhost" when the URL holds an IP; ours have IP SANs only,
 * so the address dialled is checked instead.
 */
async function client(t: T, host: string, cert: Cert | undefined, o: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  const tls = { caFile: cluster.cert, ...(cert && { certFile: cert.cert, keyFile: cert.key }), checkServerIdentity: (_n: string, c: PeerCertificate) => checkServerIdentity(host, c) };
  const nc = await connect({ servers: `tls://${host}:4222`, tls, reconnect: false, timeout: 5000, ...o });
  t.teardown(() => nc.close());
  return nc;
}

const text = (v: Uint8Array | undefined) => new TextDecoder().decode(v);

/** One JetStream API request, its JSON reply. */
async function jsApi(nc: NatsConnection, subject: string, body?: unknown): Promise<Record<string, unknown>> {
  const m = await nc.request(`$JS.API.${subject}`, body === undefined ? undefined : JSON.stringify(body), { timeout: 5000 });
  return JSON.parse(text(m.data)) as Record<string, unknown>;
}

// ---- tests ----

t.test('the config: what nats-server 2.9.10 accepts, quoted and escaped', async (t) => {
  const n = { id: WEIRD, host: ip(1), cert: makeNode(cluster, 'cfg', ip(1)) };
  const base = options(n, { storeDir: join(dir, 'odd "dir" $HOME\\x'), users: ['node2', WEIRD, 'node2'] });
  const cases: Array<{ name: string; routes: string[]; lockStreams?: boolean; has: RegExp[]; hasNot: RegExp[] }> = [
    { name: 'alone: standalone, no cluster block', routes: [], has: [/verify_and_map: true/, /server_tags: \["node:we\\"ird,one"\]/, /user: "CN=we\\\\\\"ird\\\\,one"/], hasNot: [/cluster \{/, /deny/] },
    { name: 'with other managers: a TLS-verified cluster', routes: [`${ip(2)}:6222`, `${ip(3)}:6222`, `${ip(2)}:6222`], has: [/cluster \{/, /verify: true/, /name: "swarmnet"/], hasNot: [/deny/] },
    { name: 'adopting: others may not create streams', routes: [`${ip(2)}:6222`], lockStreams: true, has: [/user: "CN=node2", permissions: \{ publish: \{ deny: \["\$JS\.API\.STREAM\.CREATE\.>"\] \} \}/], hasNot: [/ird\\\\,one", permissions/] },
  ];
  for (const c of cases) {
    const conf = renderConfig({ ...base, routes: c.routes, lockStreams: c.lockStreams ?? false });
    for (const re of c.has) t.match(conf, re, `${c.name}: ${re}`);
    for (const re of c.hasNot) t.notMatch(conf, re, `${c.name}: not ${re}`);
    t.equal(conf.match(/\{ user: /g)?.length, 2, `${c.name}: users de-duplicated, own node included`);
    t.equal(conf.match(/"nats:\/\//g)?.length ?? 0, new Set(c.routes).size, `${c.name}: one route per manager`);
    const file = join(dir, 'check.conf');
    writeFileSync(file, conf);
    t.doesNotThrow(() => execFileSync('nats-server', ['-t', '-c', file], { stdio: 'pipe' }), `${c.name}: nats-server -t accepts it`);
  }
  t.equal(certUser(WEIRD), 'CN=we\\"ird\\,one');
  t.equal(certUser('a+b<c>;d'), 'CN=a\\+b\\<c\\>\\;d');
  t.equal(certUser('#x y '), 'CN=\\#x y\\ ');
  const bad: Array<[string, Partial<NatsdConfig>, RegExp]> = [
    ['a route without a port', { routes: [ip(2)] }, /routes\[0\]/],
    ['an unbracketed IPv6 route', { routes: ['fd00::1:6222'] }, /routes\[0\]/],
    ['one port for both', { clusterPort: 4222 }, /clusterPort/],
    ['a server name with a space', { serverName: 'a b' }, /serverName/],
  ];
  for (const [what, o, re] of bad) t.throws(() => renderConfig({ ...base, ...o }), re, `refused: ${what}`);
});

const node1 = node('node1', ip(10));
const node2 = node('node2', ip(11));
const node3 = node('node3', ip(12));
const weird = node(WEIRD, ip(13));

t.test('clients: the certificate is the user', async (t) => {
  const srv = await supervise(t, node1, { users: ['node1', 'node2', WEIRD] });
  t.equal(statSync(srv.configFile).mode & 0o777, 0o600, 'config written 0600');
  t.ok(srv.pid && srv.pid > 0, `running as pid ${srv.pid}`);

  t.test('a node in users connects with its certificate and uses a KV bucket', async (t) => {
    const nc = await client(t, node1.host, node1.cert);
    const kv = await new Kvm(nc).create('natsd-t1', { history: 1 });
    const rev = await kv.put('k', 'v1');
    t.equal(text((await kv.get('k'))?.value), 'v1');
    t.equal(await kv.update('k', 'v2', rev), rev + 1, 'compare-and-set works');
    const nw = await client(t, node1.host, weird.cert);
    t.equal(text((await (await new Kvm(nw).open('natsd-t1')).get('k'))?.value), 'v2', `the node "${WEIRD}" (escaped subject) is mapped too`);
  });

  t.test('no certificate, a certificate of another CA, or a node not in users: refused', async (t) => {
    await t.rejects(client(t, node1.host, undefined), /bad certificate|certificate required|ECONNRESET|socket hang up/i, 'no client certificate');
    const foreign = makeNode(other, 'node1', node1.host); // the right name, the wrong CA
    await t.rejects(client(t, node1.host, foreign), /ECONNRESET|unknown ca|bad certificate|socket hang up/i, 'a certificate of another CA');
    await t.rejects(client(t, node1.host, node3.cert), /Authorization Violation/, 'a valid certificate whose node is not in users');
  });

  t.test('a node removed from users is disconnected within a few seconds of update()', async (t) => {
    const n1 = await client(t, node1.host, node1.cert);
    const n2 = await client(t, node1.host, node2.cert, { reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    await n2.flush();
    let disconnected = 0;
    void (async () => {
      for await (const s of n2.status()) if (s.type === 'disconnect' && !disconnected) disconnected = Date.now();
    })();
    const pid = srv.pid;
    const start = Date.now();
    t.equal(await srv.update({ users: ['node1', WEIRD] }), 'reloaded');
    const closed = await Promise.race([n2.closed(), sleep(8000).then(() => 'still open')]);
    const ms = Date.now() - start;
    t.ok(closed instanceof Error, `node2's connection closed (${String(closed)})`);
    t.match((closed as Error).message, /Authorization Violation/, 'nats.js ends it with the server\'s authorization error');
    t.equal((closed as Error).name, 'AuthorizationError');
    t.ok(disconnected > 0 && disconnected - start < 1000, `disconnected ${disconnected - start} ms after update()`);
    t.ok(ms < 5000, `closed for good ${ms} ms after update() (nats.js gives up after the same auth error twice)`);
    await t.rejects(client(t, node1.host, node2.cert), /Authorization Violation/, 'and cannot come back');
    t.equal(srv.pid, pid, 'reloaded in place, not restarted');
    await n1.flush();
    t.equal(text((await (await new Kvm(n1).open('natsd-t1')).get('k'))?.value), 'v2', 'node1, still in users, kept its connection');
    t.equal(await srv.update({ users: [WEIRD, 'node1'] }), 'unchanged', 'the same users in another order: no reload');
  });

  t.test('reload(): a renewed certificate is taken in place; a broken one is refused', async (t) => {
    const pid = srv.pid;
    const reloads = srv.reloads;
    makeNode(cluster, 'node1', node1.host); // renewed: new key and certificate, same files
    await srv.reload();
    t.equal(srv.reloads, reloads + 1, 'the server confirmed the reload');
    await (await client(t, node1.host, node1.cert)).flush();
    const good = readFileSync(node1.cert.cert);
    writeFileSync(node1.cert.cert, 'not a certificate\n');
    const err = await srv.reload().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    t.ok(err instanceof NatsdReloadError && isCode(err, 'ENATSDRELOAD'), `a NatsdReloadError: ${err?.message}`);
    t.match(err?.message, /kept its previous configuration: .*certificate/);
    writeFileSync(node1.cert.cert, good);
    await (await client(t, node1.host, weird.cert)).flush();
    t.equal(srv.pid, pid, 'still serving, never restarted');
  });

  t.test('the supervisor restarts a killed server', async (t) => {
    const old = srv.pid!;
    const before = srv.restarts;
    process.kill(old, 'SIGKILL');
    await until('a new server up', async () => srv.restarts === before + 1, 10000);
    t.ok(srv.pid !== undefined && srv.pid !== old, `a new pid (${srv.pid}, was ${old})`);
    const down = logs.find((l) => l.msg === 'nats-server is down; restarting it' && l.exit === 'was killed by SIGKILL');
    t.ok(down, 'the exit is logged with how it ended');
    t.ok(logs.some((l) => l.msg === 'nats-server restarted'), 'and the restart');
    const nc = await client(t, node1.host, node1.cert);
    t.equal(text((await (await new Kvm(nc).open('natsd-t1')).get('k'))?.value), 'v2', 'the store survived');
  });

  t.test('stop() ends the server', async (t) => {
    const pid = srv.pid!;
    await srv.stop();
    t.equal(srv.pid, undefined);
    t.throws(() => process.kill(pid, 0), /ESRCH/, `pid ${pid} is gone`);
    t.equal(await srv.update({ users: ['node1'] }), 'saved', 'an update while stopped is kept for the next start');
  });
});

t.test('two managers: standalone until the second comes, then routed over TLS', async (t) => {
  const m1 = { ...node1, host: ip(20), cert: makeNode(cluster, 'node1', ip(20)) };
  const m2 = { ...node2, host: ip(21), cert: makeNode(cluster, 'node2', ip(21)) };
  const users = ['node1', 'node2'];
  const s1 = await supervise(t, m1, { users });
  t.notMatch(readFileSync(s1.configFile, 'utf8'), /cluster \{/, 'alone: standalone (a lone clustered server has no JetStream)');
  const c1 = await client(t, m1.host, m1.cert, { reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  const tasks = await new Kvm(c1).create('swarmnet-tasks', { history: 1 });
  for (let i = 1; i <= 5; i++) await tasks.put(`k${i}`, `v${i}`);

  // The first manager learns of the second before the second's server is up: its
  // JetStream waits for a meta leader, and only it may create streams meanwhile.
  const pid1 = s1.pid;
  t.equal(await s1.update({ routes: [`${m2.host}:6222`] }), 'restarted', 'the first route makes it clustered: a restart');
  t.not(s1.pid, pid1);
  const adoptFile = join(s1.config.storeDir, '..', 'adopt.json');
  t.ok(existsSync(adoptFile), 'its streams are listed for adoption');
  t.match(readFileSync(s1.configFile, 'utf8'), /"CN=node2", permissions: \{ publish: \{ deny/, 'other nodes may not create streams until adopted');
  const early = await client(t, m1.host, m2.cert);
  await t.rejects(early.request('$JS.API.STREAM.CREATE.KV_swarmnet-tasks', '{}', { timeout: 3000 }), /Permissions Violation/, 'a stream create by node2 is refused');
  await early.close();
  await supervise(t, m2, { users, routes: [`${m1.host}:6222`] });
  await s1.adopted();
  t.notOk(existsSync(adoptFile), 'nothing left to adopt');
  t.notMatch(readFileSync(s1.configFile, 'utf8'), /deny/, 'then they may again');
  t.ok(logs.some((l) => l.msg === 'standalone stream adopted into the cluster' && l.stream === 'KV_swarmnet-tasks'), 'adoption logged');

  const c2 = await client(t, m2.host, m2.cert);
  const tasks2 = await new Kvm(c2).open('swarmnet-tasks');
  t.equal(text((await tasks2.get('k3'))?.value), 'v3', 'the standalone bucket is in the cluster, read through the other server');
  t.equal(await tasks2.put('k6', 'v6'), 6, 'revisions carry on from the standalone ones');

  const info = await jsApi(c2, 'STREAM.INFO.KV_swarmnet-tasks');
  const config = info.config as Record<string, unknown>;
  t.equal(config.placement, undefined, 'adopted without a lasting placement');
  const scaled = await jsApi(c2, 'STREAM.UPDATE.KV_swarmnet-tasks', { ...config, num_replicas: 2 });
  t.equal(scaled.error, undefined, 'and scaled to 2 replicas by a stream update');
  await until('both replicas current', async () => {
    const cl = (await jsApi(c2, 'STREAM.INFO.KV_swarmnet-tasks')).cluster as { leader?: string; replicas?: Array<{ current: boolean }> };
    return !!cl.leader && cl.replicas?.length === 1 && cl.replicas.every((r) => r.current);
  }, 10000);

  const across = await new Kvm(c2).create('natsd-across', { history: 1, replicas: 2 });
  await across.put('from', 'node2');
  const seen = await new Kvm(c1).open('natsd-across');
  t.equal(text((await seen.get('from'))?.value), 'node2', 'an R2 bucket written through one server is read through the other');

  t.test('a server with a certificate of another CA cannot route in', async (t) => {
    const evilHost = ip(22);
    const evil = makeNode(other, 'node3', evilHost);
    const evilCa = join(dir, 'some-other-ca.pem');
    const d = join(dir, 'evil');
    mkdirSync(d, { recursive: true });
    const file = join(d, 'nats.conf');
    writeFileSync(file, renderConfig({ serverName: 'node3', host: evilHost, clientPort: 4222, clusterPort: 6222, storeDir: join(d, 'js'), tls: { certFile: evil.cert, keyFile: evil.key, caFile: evilCa }, routes: [`${m1.host}:6222`], users: ['node3'] }));
    const child = spawn('nats-server', ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    killOnTeardown(t, child);
    let out = '';
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    await until('the route refused', async () => /TLS route handshake error/.test(out), 10000, async () => out);
    t.match(out, /unknown authority|bad certificate/, 'refused on certificate verification');
    t.notMatch(out, /JetStream cluster new metadata leader/, 'never joined the cluster');
  });
});

t.test('start() fails with the server\'s own words', async (t) => {
  const n = node('broken', ip(30));
  const srv = new NatsServer(options(n, { tls: { certFile: join(dir, 'missing.pem'), keyFile: n.cert.key, caFile: cluster.cert } }));
  t.teardown(() => srv.stop());
  const err = await srv.start().then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  t.ok(err instanceof NatsdStartError && isCode(err, 'ENATSDSTART'), `a NatsdStartError: ${err?.message}`);
  t.match(err?.message, /exited with code 1 .*missing\.pem/, 'naming the exit and the server\'s last lines');
  t.equal(srv.pid, undefined);
});

t.test('a nats-server left by an earlier agent run is replaced', async (t) => {
  const n = node('node9', ip(31));
  const o = options(n);
  mkdirSync(o.dir, { recursive: true });
  const file = join(o.dir, 'nats.conf');
  const pidFile = join(o.dir, 'nats-server.pid');
  writeFileSync(file, renderConfig({ ...o, pidFile }));
  const stale = spawn('nats-server', ['-c', file], { stdio: 'ignore' });
  killOnTeardown(t, stale);
  await until('the stale server writes its pid', async () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(stale.pid), 10000);
  const srv = await supervise(t, n);
  t.not(srv.pid, stale.pid, 'a server of its own');
  t.ok(stale.exitCode !== null || stale.signalCode !== null, `the stale one (pid ${stale.pid}) ended`);
  t.ok(logs.some((l) => l.msg === 'stopping a nats-server left by an earlier run' && l.pid === stale.pid), 'logged');
});
