/**
 * Interop with the Linux kernel's VXLAN (RFC 7348): two namespace-hosts, host1 runs
 * the swarmnet overlay with a container, host2 is a kernel VTEP
 * (`ip link add ... type vxlan`) whose address is registered as a task on host2.
 * Its agent only joins the control plane (--no-overlay), so the kernel owns UDP 4789 there.
 *
 *   c1 (netns) -- host1: swarmnet bridge + TAP ==VXLAN== host2: kernel vx0 (X/24)
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { createContainer, createTopology } from '../helpers/netns.js';
import { startNats } from '../helpers/nats.js';
import { startHostAgent, startBackends, DIST, type AgentProc } from '../helpers/procs.js';

const CLIENT = join(DIST, 'test/fixtures/client.js');
const topo = createTopology(t, 2);
const nats = await startNats(t, topo.gateway, 4222);
const [h1, h2] = topo.hosts as [(typeof topo.hosts)[number], (typeof topo.hosts)[number]];
const args = ['--dns-upstream', '127.0.0.1:1'];
const a1 = await startHostAgent(t, h1, { nats: nats.url, nodeId: 'host1', overlay: true, args });
const a2 = await startHostAgent(t, h2, { nats: nats.url, nodeId: 'host2', args });
const c1 = createContainer(t, 'k1');
await startBackends(t, ['swarm@0.0.0.0:9000'], c1.spawn);

const inH2 = (...args: string[]) => execFileSync('ip', ['netns', 'exec', h2.ns, ...args], { encoding: 'utf8', stdio: 'pipe' });

await a1.ok('network', 'create', '--subnet', '10.77.0.0/24', 'mixed');
const net = (JSON.parse(await a1.ok('network', 'inspect', 'mixed')) as Array<{ vni: number }>)[0]!;
await a1.ok('service', 'create', '--name', 'app', '--network', 'mixed');
await a1.ok('task', 'add', '--service', 'app', '--network', 'mixed', '--netns', c1.path, '--name', 'onswarm');
await a2.ok('task', 'add', '--service', 'app', '--network', 'mixed', '--ip', '10.77.0.50', '--node', 'host2', '--name', 'onkernel');
const swarmIp = (JSON.parse(await a1.ok('task', 'ls', '--format', 'json')) as Array<{ name: string; addresses: Array<{ ip: string }> }>).find((x) => x.name === 'onswarm')!.addresses[0]!.ip;

// The kernel VTEP: the MAC swarmnet derives for 10.77.0.50 (02:42 + the IP), no
// learning, and everything unknown (ARP for the container) sent to host1.
inH2('ip', 'link', 'add', 'vx0', 'type', 'vxlan', 'id', String(net.vni), 'local', h2.ip, 'dstport', '4789', 'nolearning');
inH2('ip', 'link', 'set', 'vx0', 'address', '02:42:0a:4d:00:32', 'mtu', '1450', 'up');
inH2('ip', 'addr', 'add', '10.77.0.50/24', 'dev', 'vx0');
inH2('bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', h1.ip);
// Between namespaces a veth carries the kernel's "checksum later" (CHECKSUM_PARTIAL)
// state along, so the inner TCP checksum of vx0's packets would never be filled in for
// a userspace receiver; a physical NIC fills it on the wire. Checksum in software here.
inH2('ethtool', '-K', 'vx0', 'tx', 'off');
const kernelServer = h2.spawn(process.execPath, [join(DIST, 'test/fixtures/backend.js'), 'kernel@10.77.0.50:9100']);
t.teardown(() => kernelServer.kill('SIGKILL'));
await new Promise<void>((resolve, reject) => {
  kernelServer.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
  kernelServer.once('exit', (code) => reject(new Error(`kernel-side backend exited ${code}`)));
});

t.test('task add --netns: refused without the overlay, and for another node', async (t) => {
  const off = await a2.cli('task', 'add', '--service', 'app', '--network', 'mixed', '--netns', c1.path);
  t.not(off.code, 0);
  t.match(off.stderr, /netns: the overlay is off on this node/);
  const other = await a1.cli('task', 'add', '--service', 'app', '--network', 'mixed', '--netns', c1.path, '--node', 'host2');
  t.not(other.code, 0);
  t.match(other.stderr, /netns: .*send task add to that node/);
  const gone = await a1.cli('task', 'add', '--service', 'app', '--network', 'mixed', '--netns', '/run/netns/swarmnet-no-such-ns');
  t.not(gone.code, 0, 'a namespace that does not exist is refused');
  const names = (JSON.parse(await a1.ok('task', 'ls', '--format', 'json')) as Array<{ name: string }>).map((x) => x.name).sort();
  t.same(names, ['onkernel', 'onswarm'], 'nothing stored by the refused adds');
});

t.test('ping both ways between a swarmnet container and a kernel VXLAN endpoint', async (t) => {
  const fromKernel = await new Promise<number>((r) => h2.spawn('ping', ['-c', '3', '-W', '2', swarmIp]).once('exit', (c) => r(c ?? 1)));
  t.equal(fromKernel, 0, `kernel host2 -> ${swarmIp} (container on host1)`);
  t.equal((await c1.exec('ping', ['-c', '3', '-W', '2', '10.77.0.50'])).code, 0, 'container on host1 -> kernel host2');
});

t.test('TCP both ways', async (t) => {
  const toKernel = await c1.exec(process.execPath, [CLIENT, '10.77.0.50', '9100', '3']);
  t.equal(toKernel.code, 0, toKernel.stderr);
  t.match(toKernel.stdout, new RegExp(`^kernel ${swarmIp.replace(/\./g, '\\.')}:`), 'container -> kernel side, its address seen');
  const fromKernel = await new Promise<{ code: number; out: string }>((resolve) => {
    const p = h2.spawn(process.execPath, [CLIENT, swarmIp, '9000', '3']);
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.once('exit', (code) => resolve({ code: code ?? 1, out }));
  });
  t.equal(fromKernel.code, 0);
  t.match(fromKernel.out, /^swarm 10\.77\.0\.50:/, 'kernel side -> container');
});
