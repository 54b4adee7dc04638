/**
 * `swarmnet stack` against a real agent, with compose files written here, checked
 * through the CLI and the real `dig`: a multi-network stack (both port syntaxes,
 * dnsrr, aliases, an encrypted and an external network, an override file,
 * interpolation from the environment and .env), a re-deploy while a long TCP transfer
 * runs through an unchanged service, and invalid files that leave the store's files
 * byte-for-byte as they were.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, loopbackNet, startAgent, type CliResult } from '../helpers/procs.js';

const ip = loopbackNet();
const dnsAt = ip(1);
// Overlay subnets on loopback, so `dig -b <task ip>` asks from a task's address.
const x = Math.floor(Math.random() * 200) + 20;
const sub = (n: number) => `127.${100 + n}.${x}.0/24`;
// No heartbeat writes during the test: the invalid-file checks compare the store's files.
const agent = await startAgent(t, { ip: ip(1), args: ['--dns', `${dnsAt}:53`, '--dns-upstream', `${ip(9)}:53`, '--heartbeat', '10m', '--node-timeout', '1h'] });
const dir = mkdtempSync(join(tmpdir(), 'swarmnet-stack-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** The CLI run from `dir` with extra environment (compose interpolation reads it). */
function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, '--host', `unix://${agent.api}`, ...args], { cwd: dir, env: { ...process.env, ...env }, timeout: 30000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
const dig = (from: string, name: string) =>
  new Promise<string[]>((resolve) => {
    execFile('dig', [`@${dnsAt}`, '-b', from, '+time=3', '+tries=1', '+short', name], { timeout: 10000 }, (_e, out) => resolve(out.trim().split('\n').filter(Boolean).sort()));
  });
interface Svc {
  id: string;
  name: string;
  endpointMode: string;
  lb: string;
  updatedAt: number;
  labels: Record<string, string>;
  ports: Array<{ protocol: string; target: number; published: number; mode: string }>;
  networks: Array<{ network: string; vip?: string; aliases?: string[] }>;
}
interface Net {
  id: string;
  name: string;
  subnet: string;
  encrypted: boolean;
  attachable: boolean;
  labels: Record<string, string>;
}
const services = async (): Promise<Svc[]> => JSON.parse(await agent.ok('service', 'ls', '--format', 'json'));
const networks = async (): Promise<Net[]> => JSON.parse(await agent.ok('network', 'ls', '--format', 'json'));
const svc = async (name: string) => (await services()).find((s) => s.name === name);
const net = async (name: string) => (await networks()).find((n) => n.name === name);
const listening = async (): Promise<string[]> => (JSON.parse((await agent.request('GET', '/v1/info')).text) as { listening: string[] }).listening;
const taskIp = async (service: string, network: string) => {
  const out = await agent.ok('task', 'add', '--service', service, '--network', network);
  const id = out.split('\t')[0]!;
  return (JSON.parse(await agent.ok('task', 'ls', '--format', 'json')) as Array<{ id: string; addresses: Array<{ ip: string }> }>).find((t) => t.id === id)!.addresses[0]!.ip;
};

await agent.ok('network', 'create', '--subnet', sub(9), 'shared-ext');

t.test('a compose stack: two files, interpolation, both port syntaxes, dnsrr, aliases, encrypted, external, default', async (t) => {
  write('.env', 'TLS_PORT=18443\nWEB_PORT=18000\n');
  write(
    'compose.yml',
    `version: "3.8"
services:
  web:
    image: nginx:alpine
    command: ["nginx", "-g", "daemon off;"]
    deploy:
      replicas: 3
      endpoint_mode: vip
      labels: [tier=frontend]
    ports:
      - "\${WEB_PORT:-18001}:80"
      - target: 443
        published: \${TLS_PORT}
        protocol: tcp
        mode: ingress
    networks:
      front:
        aliases: [www]
      back:
  db:
    image: postgres:16
    volumes: [data:/var/lib/postgresql/data]
    deploy:
      endpoint_mode: dnsrr
    networks: [back]
  api:
    ports: ["18053:53/udp"]
    networks: [back, shared]
    x-swarmnet:
      scheduler: lc
  vault:
    networks: [secure]
  cache:
    image: redis
networks:
  front:
    driver: overlay
    attachable: true
    ipam:
      config: [{ subnet: ${sub(1)} }]
  back:
    ipam:
      config: [{ subnet: ${sub(2)} }]
    labels: { team: core }
  secure:
    driver: overlay
    driver_opts: { encrypted: "" }
  shared:
    external: true
    name: shared-ext
volumes:
  data: {}
`,
  );
  write(
    'override.yml',
    `services:
  web:
    ports:
      - "18090:8080"
    labels: { env: test }
  api:
    x-swarmnet:
      scheduler: wlc
`,
  );
  const r = await cli(['stack', 'deploy', '-c', 'compose.yml', '-c', 'override.yml', 'shop'], { WEB_PORT: '18080' });
  t.equal(r.code, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning: ignored'));
  t.equal(warnings.length, 1, 'one line names the ignored keys');
  t.match(warnings[0], /services\.web\.image/);
  t.match(warnings[0], /deploy\.replicas/);

  const ls = await cli(['stack', 'ls']);
  t.match(ls.stdout, /^shop\s+5\s+4$/m, 'five services; four networks: front, back, secure, default (not the external one)');
  const web = (await svc('shop_web'))!;
  t.ok(web, 'services are named STACK_service');
  t.same(
    web.ports.map((p) => `${p.published}:${p.target}/${p.protocol}/${p.mode}`).sort(),
    ['18080:80/tcp/ingress', '18090:8080/tcp/ingress', '18443:443/tcp/ingress'],
    'the environment beats .env, .env fills the rest, the override adds a port',
  );
  t.equal(web.labels['com.docker.stack.namespace'], 'shop');
  t.equal(web.labels.tier, 'frontend', 'deploy.labels');
  t.equal(web.labels.env, 'test', 'labels of the override');
  const front = (await net('shop_front'))!;
  const back = (await net('shop_back'))!;
  t.equal(front.subnet, sub(1));
  t.ok(front.attachable);
  t.equal(back.labels.team, 'core');
  t.equal(back.labels['com.docker.stack.namespace'], 'shop');
  t.ok((await net('shop_secure'))?.encrypted, 'driver_opts encrypted makes an encrypted network');
  t.ok(await net('shop_default'), 'a service with no networks joins STACK_default');
  t.ok((await svc('shop_cache'))!.networks.length === 1);
  t.equal((await svc('shop_db'))!.endpointMode, 'dnsrr');
  const api = (await svc('shop_api'))!;
  t.equal(api.lb, 'wlc', 'x-swarmnet of the override');
  t.same(api.ports.map((p) => `${p.published}:${p.target}/${p.protocol}`), ['18053:53/udp']);
  const ext = (await net('shared-ext'))!;
  t.ok(api.networks.some((n) => n.network === ext.id), 'the external network is used');
  t.notOk((await net('shop_shared')) ?? (await net('shop_shared-ext')), 'and not created');

  const webFront = web.networks.find((n) => n.network === front.id)!.vip!;
  const webBack = web.networks.find((n) => n.network === back.id)!.vip!;
  const onFront = await taskIp('shop_web', 'shop_front');
  const db1 = await taskIp('shop_db', 'shop_back');
  const db2 = await taskIp('shop_db', 'shop_back');
  const onBack = await taskIp('shop_api', 'shop_back');
  t.same(await dig(onFront, 'web'), [webFront], 'the short service name resolves to its VIP on the stack network');
  t.same(await dig(onFront, 'www'), [webFront], 'an alias resolves to the VIP');
  t.same(await dig(onFront, 'shop_web'), [webFront], 'the full name too');
  t.same(await dig(onBack, 'web'), [webBack], 'on another network, that network VIP');
  t.same(await dig(onBack, 'www'), [], 'the alias is only on the network it was given for');
  t.same(await dig(onBack, 'db'), [db1, db2].sort(), 'dnsrr: task IPs');
  t.same(await dig(onBack, 'tasks.web'), [], 'no web task on back');
  t.same(await dig(onFront, 'tasks.www'), [onFront], 'tasks.<alias>');
  t.ok((await listening()).includes(`tcp/${ip(1)}:18080`), 'the published port listens');
  t.match((await agent.ok('network', 'inspect', 'shop_secure')), /"encrypted": true/);

  const services2 = await cli(['stack', 'services', 'shop']);
  t.match(services2.stdout, /shop_web\s+vip/);
  t.match(services2.stdout, /shop_db\s+dnsrr/);
  const ps = await cli(['stack', 'ps', 'shop']);
  t.equal(ps.stdout.split('\n').filter((l) => l.includes('shop_db')).length, 2, 'stack ps lists the tasks');
});

t.test('a re-deploy updates in place: a transfer through an unchanged service completes', async (t) => {
  // A backend that hashes a slow upload (4 s) and answers the hash when the client ends.
  const server = createServer((s) => {
    const h = createHash('sha256');
    s.on('data', (d) => h.update(d));
    s.on('end', () => s.end(h.digest('hex')));
  });
  await new Promise<void>((r) => server.listen(0, ip(3), r));
  t.teardown(() => server.close());
  const backendPort = (server.address() as AddressInfo).port;
  const file = (movePort: number, withGone: boolean) => `services:
  keep:
    ports: ["18100:9000"]
  move:
    ports: ["${movePort}:9000"]
${withGone ? '  gone:\n    ports: ["18102:9000"]\n' : ''}`;
  write('live.yml', file(18101, true));
  t.equal((await cli(['stack', 'deploy', '-c', 'live.yml', 'live'])).code, 0);
  await agent.ok('task', 'add', '--service', 'live_keep', '--addr', `${ip(3)}:${backendPort}`);
  await agent.ok('task', 'add', '--service', 'live_move', '--addr', `${ip(3)}:${backendPort}`);
  const keepBefore = (await svc('live_keep'))!;

  const sock = connect({ host: ip(1), port: 18100 });
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  const sent = createHash('sha256');
  let reply = '';
  let reset: Error | undefined;
  sock.on('data', (d) => (reply += d.toString()));
  sock.on('error', (e) => (reset = e));
  const done = new Promise<void>((r) => sock.once('close', () => r()));
  const sending = (async () => {
    for (let i = 0; i < 80; i++) {
      const chunk = randomBytes(32 * 1024);
      sent.update(chunk);
      sock.write(chunk);
      await new Promise((r) => setTimeout(r, 50));
    }
    sock.end();
  })();

  await new Promise((r) => setTimeout(r, 500));
  write('live.yml', file(18111, false));
  const r = await cli(['stack', 'deploy', '--prune', '-c', 'live.yml', 'live']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /Updating service live_move/);
  t.match(r.stdout, /Removing service live_gone/);
  t.match(r.stdout, /Unchanged: live_keep/);
  await sending;
  await done;
  t.equal(reset, undefined, 'no reset');
  t.equal(reply, sent.digest('hex'), 'every byte arrived through the unchanged service');
  t.equal((await svc('live_keep'))!.updatedAt, keepBefore.updatedAt, 'the unchanged service was not written');
  t.same((await svc('live_move'))!.ports.map((p) => p.published), [18111], 'the changed port');
  t.notOk(await svc('live_gone'), 'pruned');
  const now = await listening();
  t.ok(now.includes(`tcp/${ip(1)}:18111`), 'the new port listens');
  t.notOk(now.includes(`tcp/${ip(1)}:18101`), 'the old port is closed');
  t.notOk(now.includes(`tcp/${ip(1)}:18102`), 'the pruned service port is closed');
  t.ok(now.includes(`tcp/${ip(1)}:18100`), 'the unchanged port still listens');
});

t.test('invalid files change nothing, and say which file and where', async (t) => {
  const storeDir = join(agent.dataDir, 'store');
  const snapshot = () => Object.fromEntries(readdirSync(storeDir).map((f) => [f, createHash('sha256').update(readFileSync(join(storeDir, f))).digest('hex')]));
  const cases: Array<[string, string, RegExp]> = [
    ['bad YAML', 'services:\n  web:\n    ports: [80\n  db: {}\n', /^swarmnet: bad\.yml:\d+:\d+: /],
    ['a version 2 file', 'version: "2.4"\nservices:\n  web: {}\n', /^swarmnet: bad\.yml: version: .*not supported/],
    ['a port out of range', 'services:\n  web:\n    ports: ["70000:80"]\n', /^swarmnet: bad\.yml: services\.web\.ports\[0\]: .*70000.*out of range/],
    ['an unknown port syntax', 'services:\n  web:\n    ports: ["80:90:100:110"]\n', /^swarmnet: bad\.yml: services\.web\.ports\[0\]: /],
    ['an undefined network', 'services:\n  web:\n    networks: [nowhere]\n', /^swarmnet: bad\.yml: services\.web\.networks(\[0\]|\.nowhere): .*nowhere/],
    ['a duplicate published port', 'services:\n  a:\n    ports: ["18200:80"]\n  b:\n    ports: ["18200:81"]\n', /^swarmnet: bad\.yml: services\.b\.ports\[0\]: .*18200/],
    ['a port another stack publishes', 'services:\n  web:\n    ports: ["18100:80"]\n', /^swarmnet: bad\.yml: services\.web\.ports\[0\]: .*18100.*live_keep/],
    ['a bad subnet', 'services:\n  web:\n    networks: [n]\nnetworks:\n  n:\n    ipam:\n      config: [{ subnet: 10.0.0.300/24 }]\n', /^swarmnet: bad\.yml: networks\.n\.ipam\.config\[0\]\.subnet: /],
    ['an overlapping subnet', `services:\n  web:\n    networks: [n]\nnetworks:\n  n:\n    ipam:\n      config: [{ subnet: ${sub(1)} }]\n`, /^swarmnet: bad\.yml: networks\.n\.ipam\.config\[0\]\.subnet: .*overlaps.*shop_front/],
    ['an alias that clashes', 'services:\n  a:\n    networks: [n]\n  b:\n    networks:\n      n:\n        aliases: [a]\nnetworks:\n  n: {}\n', /^swarmnet: bad\.yml: services\.b\.networks\.n(\.aliases\[0\])?: .*clash/],
    ['a missing external network', 'services:\n  web:\n    networks: [e]\nnetworks:\n  e:\n    external: true\n', /^swarmnet: bad\.yml: networks\.e: .*not found/],
    ['a required variable unset', 'services:\n  web:\n    ports: ["${NOPE:?set NOPE}:80"]\n', /^swarmnet: bad\.yml: services\.web\.ports\[0\]: .*NOPE/],
  ];
  const before = snapshot();
  const stacksBefore = (await cli(['stack', 'ls'])).stdout;
  for (const [what, text, message] of cases) {
    write('bad.yml', text);
    const r = await cli(['stack', 'deploy', '-c', 'bad.yml', 'bad']);
    t.not(r.code, 0, `${what}: refused`);
    t.match(r.stderr, message, `${what}: ${r.stderr.trim()}`);
    t.same(snapshot(), before, `${what}: the store's files are byte-for-byte unchanged`);
  }
  t.equal((await cli(['stack', 'ls'])).stdout, stacksBefore);
});

t.test('stack rm: services, then networks; the external network stays', async (t) => {
  const r = await cli(['stack', 'rm', 'shop']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const lastService = lines.map((l) => l.startsWith('Removing service')).lastIndexOf(true);
  const firstNetwork = lines.findIndex((l) => l.startsWith('Removing network'));
  t.ok(lastService >= 0 && firstNetwork > lastService, 'services before networks');
  t.notOk((await services()).some((s) => s.name.startsWith('shop_')));
  t.notOk((await networks()).some((n) => n.name.startsWith('shop_')));
  t.ok(await net('shared-ext'), 'the external network is not the stack');
  const again = await cli(['stack', 'rm', 'shop']);
  t.not(again.code, 0);
  t.match(again.stderr, /nothing found in stack: shop/);
  t.equal((await cli(['stack', 'rm', 'live'])).code, 0);
});
