/**
 * Overlay networks across three namespace-hosts: agents (NATS control plane) carry
 * VXLAN between hosts; containers are network namespaces attached with
 * `task add --netns`. Real ping, dig, TCP clients and backends inside the containers.
 */
import { createSocket } from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { createContainer, createTopology, type Container } from '../helpers/netns.js';
import { startNats } from '../helpers/nats.js';
import { metricValue, startHostAgent, startBackends, DIST, type AgentProc } from '../helpers/procs.js';
import { tcpRequest, until } from '../helpers/net.js';

const CLIENT = join(DIST, 'test/fixtures/client.js');
const topo = createTopology(t, 3);
const nats = await startNats(t, topo.gateway, 4222);
const agentOpts = (i: number) => ({ nats: nats.url, nodeId: `host${i + 1}`, overlay: true, args: ['--dns-upstream', '127.0.0.1:1'] });
const agents: AgentProc[] = [];
for (const [i, h] of topo.hosts.entries()) agents.push(await startHostAgent(t, h, agentOpts(i)));
const [a1, , a3] = agents as [AgentProc, AgentProc, AgentProc];
let a2 = agents[1]!; // restarted in a subtest
const root = t;
const [h1, h2, h3] = topo.hosts as [(typeof topo.hosts)[number], (typeof topo.hosts)[number], (typeof topo.hosts)[number]];
const c1 = createContainer(t, 'c1');
const c2 = createContainer(t, 'c2');
const c3 = createContainer(t, 'c3');
// Task processes inside the containers, listening before the containers are attached.
await startBackends(t, ['w1@0.0.0.0:9000'], c1.spawn);
await startBackends(t, ['w2@0.0.0.0:9000'], c2.spawn);

const taskOf = async (a: AgentProc, name: string) => (JSON.parse(await a.ok('task', 'ls', '--format', 'json')) as Array<{ id: string; name: string; addresses: Array<{ ip: string }> }>).find((x) => x.name === name)!;
const ask = (c: Container, host: string, port: number, n = 1) => c.exec(process.execPath, [CLIENT, host, String(port), String(n)]);
const linksIn = (ns: string) => execFileSync('ip', ['-n', ns, '-o', 'link', 'show'], { encoding: 'utf8' });

await a1.ok('network', 'create', 'appnet');
const net = (JSON.parse(await a1.ok('network', 'inspect', 'appnet')) as Array<{ subnet: string; gateway: string; vni: number }>)[0]!;
await a1.ok('service', 'create', '--name', 'web', '--network', 'appnet', '--publish', '30080:9000');
await a1.ok('service', 'create', '--name', 'probe', '--network', 'appnet');
const vip = (JSON.parse(await a1.ok('service', 'inspect', 'web')) as Array<{ networks: Array<{ vip: string }> }>)[0]!.networks[0]!.vip;

t.test('task add --netns attaches a container: address, MTU, route, resolv.conf', async (t) => {
  await a1.ok('task', 'add', '--service', 'web', '--network', 'appnet', '--netns', c1.path, '--name', 'w1');
  await a2.ok('task', 'add', '--service', 'web', '--network', 'appnet', '--netns', c2.path, '--name', 'w2');
  await a3.ok('task', 'add', '--service', 'probe', '--network', 'appnet', '--netns', c3.ns, '--name', 'p1');
  const w1 = await taskOf(a1, 'w1');
  const eth0 = JSON.parse((await c1.exec('ip', ['-j', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout) as Array<{ mtu: number; address: string; addr_info: Array<{ local: string; prefixlen: number }> }>;
  t.equal(eth0[0]!.mtu, 1450, 'overlay MTU');
  t.same(eth0[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`), [`${w1.addresses[0]!.ip}/24`], 'the IPAM address');
  const link = JSON.parse((await c1.exec('ip', ['-j', 'link', 'show', 'dev', 'eth0'])).stdout) as Array<{ address: string }>;
  t.equal(link[0]!.address, `02:42:${w1.addresses[0]!.ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`, 'MAC derived from the IP');
  t.match((await c1.exec('ip', ['route', 'show', 'default'])).stdout, `default via ${net.gateway} dev eth0`);
  t.match(readFileSync(`/etc/netns/${c1.ns}/resolv.conf`, 'utf8'), `nameserver ${net.gateway}`);
  const bad = await a1.cli('task', 'add', '--service', 'web', '--network', 'appnet', '--netns', '/run/netns/no-such-ns');
  t.not(bad.code, 0);
  t.match(bad.stderr, /netns.*does not exist/);
  t.notOk((JSON.parse(await a1.ok('task', 'ls', '--format', 'json')) as unknown[]).length !== 3, 'nothing stored for the failed add');
});

t.test('ping and TCP between containers on different hosts', async (t) => {
  const [w1, w2, p1] = [await taskOf(a1, 'w1'), await taskOf(a1, 'w2'), await taskOf(a1, 'p1')];
  for (const [from, to, label] of [
    [c3, w1, 'host3 -> host1'],
    [c3, w2, 'host3 -> host2'],
    [c1, w2, 'host1 -> host2'],
    [c2, p1, 'host2 -> host3'],
  ] as const) {
    const r = await from.exec('ping', ['-c', '2', '-W', '2', to.addresses[0]!.ip]);
    t.equal(r.code, 0, `ping ${label}: ${r.stdout.split('\n').slice(-3).join(' ')}`);
  }
  const arp = await a3.metrics();
  t.match(arp, /swarmnet_overlay_arp_total\{result="replied"\} [1-9]/, "host3's ARP proxy answered for the remote containers");
  const r = await ask(c3, w1.addresses[0]!.ip, 9000);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^w1 ${p1.addresses[0]!.ip.replace(/\./g, '\\.')}:`), 'TCP host3 -> host1, the client address kept');
  const big = await c1.exec('ping', ['-c', '1', '-W', '2', '-M', 'do', '-s', '1422', w2.addresses[0]!.ip]);
  t.equal(big.code, 0, 'a full 1450-byte packet crosses without fragmentation');
});

t.test('bulk TCP across hosts arrives byte for byte (segmentation and coalescing on the way)', async (t) => {
  const w2 = await taskOf(a1, 'w2');
  const server = c2.spawn(process.execPath, [join(DIST, 'test/fixtures/bulk.js'), 'serve', '9500']);
  t.teardown(() => server.kill('SIGKILL'));
  await new Promise<void>((r) => server.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && r()));
  const r = await c3.exec(process.execPath, [join(DIST, 'test/fixtures/bulk.js'), 'send', w2.addresses[0]!.ip, '9500', '40'], 60000);
  t.equal(r.code, 0, r.stderr);
  const [sent, received] = r.stdout.trim().split(' ');
  t.match(sent, /^[0-9a-f]{64}$/);
  t.equal(received, sent, '40 MB host3 -> host2, same SHA-256 on both ends');
  const text = await a3.metrics();
  t.match(text, /swarmnet_vxlan_packets_total\{direction="tx"\} [1-9]/, 'sent through the VXLAN engine');
  t.match(text, /swarmnet_vxlan_offload_total\{kind="tso"\} [1-9]/, 'as TCP super-frames cut by the engine');
  const rx = await a2.metrics();
  t.match(rx, /swarmnet_vxlan_offload_total\{kind="gro"\} [1-9]/, 'merged again on the receiving host');
});

t.test('names resolve to overlay addresses from inside containers', async (t) => {
  const [w1, w2] = [await taskOf(a1, 'w1'), await taskOf(a1, 'w2')];
  const dig = async (name: string) => (await c3.exec('dig', ['+short', '+time=2', '+tries=1', name])).stdout.trim().split('\n').filter(Boolean).sort();
  t.same(await dig('web'), [vip], 'service name -> VIP');
  t.same(await dig('tasks.web'), [w1.addresses[0]!.ip, w2.addresses[0]!.ip].sort(), 'tasks.<service> -> task IPs');
  t.same(await dig('w2'), [w2.addresses[0]!.ip], 'task name');
});

t.test('the VIP balances across tasks on other hosts, by IP and by name', async (t) => {
  await until('VIP answers on host3', async () => (await ask(c3, vip, 9000)).code === 0, 15000);
  const byIp = (await ask(c3, vip, 9000, 12)).stdout.trim().split('\n').map((l) => l.split(' ')[0]);
  t.same([...new Set(byIp)].sort(), ['w1', 'w2'], 'VIP from host3 reaches tasks on host1 and host2');
  const byName = await ask(c3, 'web', 9000, 6);
  t.equal(byName.code, 0, byName.stderr);
  t.same([...new Set(byName.stdout.trim().split('\n').map((l) => l.split(' ')[0]))].sort(), ['w1', 'w2'], 'web:9000 from host3');
  const fromW1 = (await ask(c1, vip, 9000, 8)).stdout.trim().split('\n').map((l) => l.split(' ')[0]);
  t.same([...new Set(fromW1)].sort(), ['w1', 'w2'], 'VIP from host1 (one task local, one remote)');
  const published = new Set<string>();
  for (let i = 0; i < 8; i++) published.add((await tcpRequest(h3.ip, 30080)).split(' ')[0]!);
  t.same([...published].sort(), ['w1', 'w2'], 'the published port on host3 reaches the overlay tasks on host1 and host2');
});

t.test('an agent restart keeps its containers attached and carries on', async (t) => {
  const w2 = await taskOf(a1, 'w2');
  await a2.stop();
  t.match((await c2.exec('ip', ['-o', 'link', 'show'])).stdout, /eth0/, "the container keeps its interface while the node's agent is down");
  a2 = await startHostAgent(root, h2, { ...agentOpts(1), dataDir: a2.dataDir });
  await until('host3 reaches w2 again', async () => (await c3.exec('ping', ['-c', '1', '-W', '1', w2.addresses[0]!.ip])).code === 0, 15000);
  t.equal((await ask(c3, w2.addresses[0]!.ip, 9000)).stdout.split(' ')[0], 'w2', 'TCP to the container on the restarted host');
  const veths = linksIn(h2.ns).split('\n').filter((l) => l.includes(`swv${w2.id.slice(0, 12)}`));
  t.equal(veths.length, 1, 'the same veth, adopted, not a second one');
});

t.test('malformed VXLAN packets are counted and dropped', async (t) => {
  const metric = async (reason: string) => metricValue(await a1.metrics(), 'swarmnet_vxlan_dropped_total', `reason="${reason}"`) ?? NaN;
  const before = { short: await metric('short'), flags: await metric('bad_flags'), vni: await metric('unknown_vni'), peer: await metric('unknown_peer') };
  // From host3, a node of the cluster: the header checks apply.
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    const frame = Buffer.alloc(60);
    const pkts = [];
    for (let i = 0; i < 3; i++) pkts.push(Buffer.from([0x08, 0, 0]));                                          // shorter than the header
    for (let i = 0; i < 4; i++) pkts.push(Buffer.concat([Buffer.from([0x00, 0, 0, 0, 0, 0x10, 0x00, 0]), frame])); // I flag clear
    for (let i = 0; i < 5; i++) pkts.push(Buffer.concat([Buffer.from([0x08, 0, 0, 0, 0xfe, 0xdc, 0xba, 0]), frame])); // no such VNI
    pkts.push(Buffer.alloc(0));
    // Valid headers on the network's VNI, random inner frames: half of them claim IPv4/TCP
    // with random header fields, which the engine's coalescing must parse without harm.
    const crypto = require('node:crypto');
    for (let i = 0; i < 2000; i++) {
      const inner = crypto.randomBytes(14 + (i % 200));
      if (i % 2 === 0 && inner.length >= 34) { inner[12] = 0x08; inner[13] = 0x00; inner[14] = 0x40 | (inner[14] & 0x0f); inner[23] = 6; inner[0] = 0x02; }
      pkts.push(Buffer.concat([Buffer.from([0x08, 0, 0, 0, ${net.vni >> 16}, ${(net.vni >> 8) & 0xff}, ${net.vni & 0xff}, 0]), inner]));
    }
    (async () => { for (const p of pkts) await new Promise((r) => s.send(p, 4789, '${h1.ip}', r)); s.close(); })();`;
  const sent = await new Promise<number>((r) => h3.spawn(process.execPath, ['-e', script]).once('exit', (c) => r(c ?? 1)));
  t.equal(sent, 0, 'sent from host3');
  // From the test's own address, not a node: dropped before anything else is looked at.
  const sock = createSocket('udp4');
  for (let i = 0; i < 2; i++) await new Promise<void>((r) => sock.send(Buffer.concat([Buffer.from([0x08, 0, 0, 0, 0, 0x10, 0x00, 0]), Buffer.alloc(60)]), 4789, h1.ip, () => r()));
  sock.close();
  await until('drops counted', async () => (await metric('unknown_vni')) - before.vni === 5, 5000);
  t.equal((await metric('short')) - before.short, 4, 'short (3 + one empty datagram)');
  t.equal((await metric('bad_flags')) - before.flags, 4, 'I flag clear');
  t.equal((await metric('unknown_vni')) - before.vni, 5, 'unknown VNI');
  await until('unknown peer counted', async () => (await metric('unknown_peer')) - before.peer === 2, 5000);
  t.pass('2 from an address that is not a node');
  const w2 = await taskOf(a1, 'w2');
  t.equal((await c1.exec('ping', ['-c', '1', '-W', '2', w2.addresses[0]!.ip])).code, 0, 'the overlay still carries traffic (after 2,000 random frames too)');
  t.equal(a1.child.exitCode, null, 'the agent is still running');
});

t.test('task rm detaches the container and the VIP stops using it', async (t) => {
  const w1 = await taskOf(a1, 'w1');
  await a2.ok('task', 'rm', 'w1');
  await until('veth gone on host1', async () => !linksIn(h1.ns).includes(`swv${w1.id.slice(0, 12)}`), 10000);
  t.notMatch((await c1.exec('ip', ['-o', 'link', 'show'])).stdout, /eth0/, 'the container lost its interface');
  t.notOk(existsSync(`/etc/netns/${c1.ns}/resolv.conf`), 'resolv.conf removed');
  await until('VIP only to w2', async () => {
    const r = (await ask(c3, vip, 9000, 6)).stdout.trim().split('\n').map((l) => l.split(' ')[0]);
    return r.length === 6 && r.every((x) => x === 'w2');
  }, 10000);
  t.pass('VIP from host3 now only reaches w2');
});

t.test('network rm takes the bridge down on every host and frees the node addresses', async (t) => {
  await a1.ok('service', 'rm', 'web');
  await a1.ok('service', 'rm', 'probe');
  await a1.ok('network', 'rm', 'appnet');
  for (const h of [h1, h2, h3]) await until(`bridge gone on ${h.ns}`, async () => !linksIn(h.ns).includes(`snbr${net.vni}`), 10000);
  t.pass('no bridge left');
  const nodes = JSON.parse(await a1.ok('node', 'ls', '--format', 'json')) as Array<{ addresses?: unknown[] }>;
  t.same(nodes.map((n) => n.addresses ?? []), [[], [], []], 'no node keeps an address on the removed network');
  t.equal((await c2.exec('ip', ['-o', 'link', 'show'])).stdout.includes('eth0'), false, "the removed service's container was detached");
});
