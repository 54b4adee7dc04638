/**
 * The overlay between two namespace-hosts, each with an agent and a container:
 * ping, TCP and UDP across, dnsrr names, a VIP over one local and one remote task
 * (TCP and UDP through the mesh), detach.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { createContainer, createTopology, type Container } from '../helpers/netns.js';
import { startNats } from '../helpers/nats.js';
import { startHostAgent, startBackends, DIST, type AgentProc } from '../helpers/procs.js';
import { until } from '../helpers/net.js';

const CLIENT = join(DIST, 'test/fixtures/client.js');
const topo = createTopology(t, 2);
const nats = await startNats(t, topo.gateway, 4222);
const agents: AgentProc[] = [];
for (const [i, h] of topo.hosts.entries()) agents.push(await startHostAgent(t, h, { nats: nats.url, nodeId: `pair${i + 1}`, overlay: true, args: ['--dns-upstream', '127.0.0.1:1'] }));
const [a1, a2] = agents as [AgentProc, AgentProc];
const [c1, c2] = [createContainer(t, 'p1'), createContainer(t, 'p2')];
await startBackends(t, ['one@0.0.0.0:7000'], c1.spawn);
await startBackends(t, ['two@0.0.0.0:7000'], c2.spawn);

const ask = (c: Container, host: string, port: number, n: number, proto = 'tcp') => c.exec(process.execPath, [CLIENT, host, String(port), String(n), proto]);
const names = (out: string) => [...new Set(out.trim().split('\n').map((l) => l.split(' ')[0]))].sort();

await a1.ok('network', 'create', 'pairnet');
await a1.ok('service', 'create', '--name', 'api', '--network', 'pairnet', '--publish', '31000:7000', '--publish', '31000:7000/udp');
await a1.ok('service', 'create', '--name', 'peers', '--network', 'pairnet', '--endpoint-mode', 'dnsrr');
await a1.ok('task', 'add', '--service', 'api', '--network', 'pairnet', '--netns', c1.path, '--name', 'one');
await a2.ok('task', 'add', '--service', 'api', '--network', 'pairnet', '--netns', c2.path, '--name', 'two');
const tasks = JSON.parse(await a1.ok('task', 'ls', '--format', 'json')) as Array<{ id: string; name: string; addresses: Array<{ ip: string }> }>;
const ipOf = (name: string) => tasks.find((x) => x.name === name)!.addresses[0]!.ip;
const vip = (JSON.parse(await a1.ok('service', 'inspect', 'api')) as Array<{ networks: Array<{ vip: string }> }>)[0]!.networks[0]!.vip;

t.test('ping, TCP and UDP between the two hosts', async (t) => {
  t.equal((await c1.exec('ping', ['-c', '2', '-W', '2', ipOf('two')])).code, 0, 'ping host1 -> host2');
  t.equal((await c2.exec('ping', ['-c', '2', '-W', '2', ipOf('one')])).code, 0, 'ping host2 -> host1');
  t.match((await ask(c1, ipOf('two'), 7000, 1)).stdout, /^two /, 'TCP host1 -> host2');
  t.match((await ask(c2, ipOf('one'), 7000, 1, 'udp')).stdout, /^one hello/, 'UDP host2 -> host1');
});

t.test('names from inside a container: dnsrr gives task IPs, tasks.<service> too', async (t) => {
  await a1.ok('task', 'add', '--service', 'peers', '--network', 'pairnet', '--name', 'peer-a');
  await a2.ok('task', 'add', '--service', 'peers', '--network', 'pairnet', '--name', 'peer-b');
  const all = JSON.parse(await a1.ok('task', 'ls', '--service', 'peers', '--format', 'json')) as Array<{ addresses: Array<{ ip: string }> }>;
  const dig = async (c: Container, name: string) => (await c.exec('dig', ['+short', '+time=2', '+tries=1', name])).stdout.trim().split('\n').filter(Boolean).sort();
  t.same(await dig(c2, 'peers'), all.map((x) => x.addresses[0]!.ip).sort(), 'dnsrr: peers -> its task IPs (host2)');
  t.same(await dig(c1, 'tasks.api'), [ipOf('one'), ipOf('two')].sort(), 'tasks.api (host1)');
  t.same(await dig(c1, 'api'), [vip], 'api -> VIP');
});

t.test('the VIP balances TCP and UDP over a local and a remote task', async (t) => {
  await until('VIP up on host1', async () => (await ask(c1, vip, 7000, 1)).code === 0, 15000);
  t.same(names((await ask(c1, vip, 7000, 8)).stdout), ['one', 'two'], 'TCP to the VIP from host1');
  t.same(names((await ask(c2, 'api', 7000, 8)).stdout), ['one', 'two'], 'TCP to api:7000 from host2');
  t.same(names((await ask(c2, vip, 7000, 8, 'udp')).stdout), ['one', 'two'], 'UDP to the VIP from host2');
});

t.test('task rm detaches the container on its host', async (t) => {
  const id = tasks.find((x) => x.name === 'two')!.id;
  await a1.ok('task', 'rm', 'two');
  await until('veth gone', async () => !execFileSync('ip', ['-n', topo.hosts[1]!.ns, '-o', 'link'], { encoding: 'utf8' }).includes(`swv${id.slice(0, 12)}`), 10000);
  t.notMatch((await c2.exec('ip', ['-o', 'link', 'show'])).stdout, /eth0/);
  await until('VIP only to one', async () => names((await ask(c1, vip, 7000, 4)).stdout).join() === 'one', 10000);
  t.pass('the VIP only reaches the remaining task');
});
