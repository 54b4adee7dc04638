/**
 * The CLI contract against a real agent: listings, inspect, errors (one line on
 * stderr, non-zero exit, nothing stored), and restarts that keep every service.
 */
import t from 'tap';
import { loopbackNet, runCli, startAgent, startBackends } from '../helpers/procs.js';
import { tcpRequest } from '../helpers/net.js';

const ip = loopbackNet();
/** Agents restarted inside a subtest must outlive it: their teardown belongs to the file. */
const root = t;
const dataDir = (await import('node:fs')).mkdtempSync((await import('node:path')).join((await import('node:os')).tmpdir(), 'swarmnet-cli-'));
t.teardown(async () => (await import('node:fs')).rmSync(dataDir, { recursive: true, force: true }));
let agent = await startAgent(t, { ip: ip(1), dataDir });
await startBackends(t, [`c1@${ip(2)}:9501`, `c2@${ip(2)}:9502`]);

t.test('create, list, inspect, ps', async (t) => {
  const net = await agent.cli('network', 'create', '--driver', 'overlay', 'appnet');
  t.equal(net.code, 0, net.stderr);
  const c = await agent.cli('service', 'create', '--name', 'web', '--publish', '22001:80', '--publish', 'published=22002,target=81,protocol=udp', '--network', 'appnet', '--lb', 'wrr', '--label', 'tier=front');
  t.equal(c.code, 0, c.stderr);
  t.equal((await agent.cli('task', 'add', '--service', 'web', '--addr', `${ip(2)}:9501`, '--weight', '2')).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'web', '--addr', `${ip(2)}:9502`)).code, 0);
  t.equal((await agent.cli('service', 'create', '--name', 'auto', '--publish', '80')).code, 0);

  const ls = await agent.cli('service', 'ls');
  t.match(ls.stdout, /^ID\s+NAME\s+MODE\s+LB\s+TASKS\s+PORTS\n/);
  t.match(ls.stdout, /web\s+vip\s+wrr\s+2\s+\*:22001->80\/tcp, \*:22002->81\/udp/);
  t.match(ls.stdout, /auto\s+vip\s+rr\s+0\s+\*:30000->80\/tcp/, 'published port auto-assigned from 30000');
  const json = JSON.parse((await agent.cli('service', 'ls', '--format', 'json')).stdout) as Array<{ name: string }>;
  t.same(json.map((s) => s.name), ['auto', 'web']);

  const inspect = JSON.parse((await agent.cli('service', 'inspect', 'web')).stdout) as Array<{ networks: Array<{ vip: string }>; labels: Record<string, string> }>;
  t.equal(inspect[0]!.networks[0]!.vip, '10.0.1.2', 'VIP from the network subnet');
  t.same(inspect[0]!.labels, { tier: 'front' });
  const pretty = await agent.cli('service', 'inspect', '--pretty', 'web');
  t.match(pretty.stdout, /Scheduler:\s+wrr/);
  t.match(pretty.stdout, /appnet VIP 10\.0\.1\.2/);
  const ps = await agent.cli('service', 'ps', 'web');
  t.match(ps.stdout, /web\.1\s+\S+\s+[\d.]+:9501\s+2\s+running\s+up/);
  t.match((await agent.cli('network', 'ls')).stdout, /appnet\s+overlay\s+10\.0\.1\.0\/24\s+4096\s+no/);
  t.match((await agent.cli('node', 'ls')).stdout, /ready\s+active/);
  const u = await agent.cli('service', 'update', 'web', '--lb', 'rr', '--publish-add', '22003:82');
  t.equal(u.code, 0, u.stderr);
  t.match((await agent.cli('service', 'ls')).stdout, /web\s+vip\s+rr\s+2\s+.*\*:22003->82\/tcp/);
  t.match(await tcpRequest(agent.ingress, 22001), /^c[12] /);
});

const bad: Array<[string[], RegExp]> = [
  [['service', 'create', '--name', 'bad name'], /^swarmnet: name: "bad name" is not a valid name/],
  [['service', 'create', '--name', 'p0', '--publish', '0:80'], /^swarmnet: ports\[0\]\.published: must be from 1 to 65535 \(got 0\)/],
  [['service', 'create', '--name', 'pbig', '--publish', '70000:80'], /^swarmnet: ports\[0\]\.published: must be from 1 to 65535 \(got 70000\)/],
  [['service', 'create', '--name', 'tbig', '--publish', '65536'], /^swarmnet: ports\[0\]\.target: must be from 1 to 65535/],
  [['service', 'create', '--name', 'sched', '--lb', 'fastest'], /^swarmnet: lb: must be one of rr, wrr, lc, wlc, sh, mh \(got "fastest"\)/],
  [['service', 'create', '--name', 'dup', '--publish', '22001:80'], /^swarmnet: ports\[0\]\.published: port 22001\/tcp is already published by service web/],
  [['service', 'create', '--name', 'dup2', '--publish', '22099:80', '--publish', '22002:80/udp'], /^swarmnet: ports\[1\]\.published: port 22002\/udp is already published by service web/],
  [['service', 'create', '--name', 'web'], /^swarmnet: name: service web already exists/],
  [['service', 'create', '--name', 'pp', '--proxy-protocol', 'v3'], /^swarmnet: proxyProtocol: must be one of none, v1, v2/],
  [['service', 'create', '--name', 'garbage', '--publish', 'abc'], /^swarmnet: --publish: 'abc': 'abc' is not a port number/],
  [['service', 'create', '--publish', '80'], /^error: required option '--name <name>' not specified/],
  [['service', 'inspect', 'nope'], /^swarmnet: service nope not found/],
  [['task', 'add', '--service', 'web', '--addr', '1.2.3'], /^swarmnet: addr: "1.2.3" is not a valid endpoint/],
  [['task', 'add', '--service', 'web', '--addr', '127.0.0.1:1', '--weight', 'heavy'], /^swarmnet: --weight: 'heavy' is not a whole number/],
  [['network', 'create', '--subnet', '10.0.1.0/24', 'clash'], /^swarmnet: subnet: 10\.0\.1\.0\/24 overlaps 10\.0\.1\.0\/24/],
  [['network', 'rm', 'appnet'], /^swarmnet: network appnet is in use by service web/],
];

t.test('bad input: one clear line on stderr, non-zero exit, store unchanged', async (t) => {
  const state = async () => [(await agent.cli('service', 'ls', '--format', 'json')).stdout, (await agent.cli('task', 'ls', '--format', 'json')).stdout, (await agent.cli('network', 'ls', '--format', 'json')).stdout];
  const before = await state();
  for (const [args, message] of bad) {
    const r = await agent.cli(...args);
    t.not(r.code, 0, `${args.join(' ')}: non-zero exit`);
    t.match(r.stderr, message, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.equal(r.stdout, '', 'nothing on stdout');
  }
  t.same(await state(), before, 'nothing stored or lost');
  const down = await runCli(`${dataDir}/none.sock`, ['service', 'ls']);
  t.not(down.code, 0);
  t.match(down.stderr, /^swarmnet: cannot reach the agent at unix:\/\/\S+none\.sock \(ENOENT\); is 'swarmnet agent' running\?/);
});

t.test('restart keeps services, tasks and published ports (clean stop and crash)', async (t) => {
  const before = (await agent.cli('service', 'ls', '--format', 'json')).stdout;
  const tasksBefore = (await agent.cli('task', 'ls', '--format', 'json')).stdout.replace(/"observed"[^}]*}/g, '');
  for (const how of ['SIGTERM', 'SIGKILL'] as const) {
    if (how === 'SIGTERM') await agent.stop();
    else {
      const exited = new Promise((r) => agent.child.once('exit', r));
      agent.child.kill('SIGKILL');
      await exited;
    }
    agent = await startAgent(root, { ip: ip(1), dataDir });
    t.equal((await agent.cli('service', 'ls', '--format', 'json')).stdout, before, `${how}: services identical after restart`);
    t.equal((await agent.cli('task', 'ls', '--format', 'json')).stdout.replace(/"observed"[^}]*}/g, ''), tasksBefore, `${how}: tasks identical`);
    t.match(await tcpRequest(agent.ingress, 22001), /^c[12] /, `${how}: the published port serves again`);
  }
  const again = await agent.cli('service', 'create', '--name', 'after', '--publish', '80');
  t.match(again.stdout, /published 30001\/tcp/, 'IPAM state survived too: 30000 is still taken');
});

t.test('rm frees the name and port; the listener closes', async (t) => {
  t.equal((await agent.cli('service', 'rm', 'web')).code, 0);
  await t.rejects(tcpRequest(agent.ingress, 22001, 'x', { timeoutMs: 1000 }), 'published port closed');
  const r = await agent.cli('service', 'create', '--name', 'web', '--publish', '22001:80');
  t.equal(r.code, 0, r.stderr);
  t.equal((await agent.cli('network', 'rm', 'appnet')).code, 0);
});
