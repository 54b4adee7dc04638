/**
 * Three agents as separate hosts: network namespaces on a bridge (veth, own IPs),
 * NATS on the bridge address, tasks running on the hosts, clients from outside.
 */
import t from 'tap';
import { createTopology } from '../helpers/netns.js';
import { startNats } from '../helpers/nats.js';
import { startHostAgent, startBackends, type AgentProc } from '../helpers/procs.js';
import { tcpRequest, until } from '../helpers/net.js';

const topo = createTopology(t, 3);
const nats = await startNats(t, topo.gateway, 4222);
const [h1, h2, h3] = topo.hosts as [(typeof topo.hosts)[number], (typeof topo.hosts)[number], (typeof topo.hosts)[number]];
const agents: AgentProc[] = [];
for (const [i, h] of topo.hosts.entries()) agents.push(await startHostAgent(t, h, { nats: nats.url, nodeId: `host${i + 1}`, args: ['--node-timeout', '3s'] }));
await startBackends(t, [`t1@${h1.ip}:9000`], h1.spawn);
await startBackends(t, [`t2@${h2.ip}:9000`], h2.spawn);

const within = (what: string, fn: () => Promise<boolean>, ms = 15000, detail?: () => Promise<string>) => until(what, fn, ms, detail);

const ask = (host: string) => tcpRequest(host, 30080).then((r) => r.split(' ')[0]!, () => '');

t.test('the routing mesh across hosts: any host reaches the tasks on the others', async (t) => {
  t.equal((await agents[0]!.cli('service', 'create', '--name', 'web', '--publish', '30080:9000')).code, 0);
  t.equal((await agents[0]!.cli('task', 'add', '--service', 'web', '--addr', `${h1.ip}:9000`, '--node', 'host1')).code, 0);
  t.equal((await agents[1]!.cli('task', 'add', '--service', 'web', '--addr', `${h2.ip}:9000`, '--node', 'host2')).code, 0);
  for (const h of [h1, h2, h3]) {
    await within(`${h.ip} serves`, async () => (await ask(h.ip)) !== '');
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(await ask(h.ip));
    t.same([...seen].sort(), ['t1', 't2'], `${h.ip} (${h.ns}) balances over tasks on host1 and host2`);
  }
});

t.test('a host whose agent dies: its tasks leave rotation on the others', async (t) => {
  const exited = new Promise((r) => agents[1]!.child.once('exit', r));
  process.kill(agents[1]!.child.pid!, 'SIGKILL');
  await exited;
  await within('host2 out of rotation on host3', async () => {
    const r = new Set<string>();
    for (let i = 0; i < 8; i++) r.add(await ask(h3.ip));
    return r.size === 1 && r.has('t1');
  });
  t.pass('host3 sends everything to the task on host1');
  const nodes = JSON.parse((await agents[2]!.cli('node', 'ls', '--format', 'json')).stdout) as Array<{ id: string; status: string; addr: string }>;
  t.same(nodes.map((n) => `${n.id} ${n.addr} ${n.status}`).sort(), [`host1 ${h1.ip} ready`, `host2 ${h2.ip} down`, `host3 ${h3.ip} ready`]);
});

t.test('50 concurrent service creates through the hosts get distinct ports and VIPs', async (t) => {
  const live = [agents[0]!, agents[2]!];
  t.equal((await live[0]!.cli('network', 'create', 'appnet')).code, 0);
  const errors = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const res = await live[i % 2]!.request('POST', '/v1/services', { name: `n${i}`, ports: [{ target: 80 }], networks: ['appnet'] });
      return res.status === 201 ? '' : `n${i}: ${res.status} ${res.text}`;
    }),
  );
  t.same(errors.filter(Boolean), []);
  const list = (JSON.parse((await live[1]!.cli('service', 'ls', '--format', 'json')).stdout) as Array<{ name: string; ports: Array<{ published: number }>; networks: Array<{ vip: string }> }>).filter((s) => /^n\d+$/.test(s.name));
  t.equal(list.length, 50);
  t.equal(new Set(list.map((s) => s.ports[0]!.published)).size, 50, 'distinct published ports');
  t.equal(new Set(list.map((s) => s.networks[0]!.vip)).size, 50, 'distinct VIPs');
});

t.test('availability set through one host applies on every host', async (t) => {
  await within('host3 serves (tasks on host1)', async () => (await ask(h3.ip)) === 't1');
  t.equal((await agents[2]!.cli('node', 'update', '--availability', 'drain', 'host1')).code, 0);
  await within('host1 drained as seen from host1 itself', async () => (await ask(h1.ip)) === '');
  t.equal(await ask(h3.ip), '', 'host3 has no eligible task left either');
  t.equal((await agents[0]!.cli('node', 'update', '--availability', 'active', 'host1')).code, 0);
  await within('host1 active again everywhere', async () => (await ask(h1.ip)) === 't1' && (await ask(h3.ip)) === 't1');
  t.pass('back in rotation on every host');
});
