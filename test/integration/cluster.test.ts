/**
 * Cluster mode on loopback: a real nats-server, three agents on their own addresses
 * sharing state through JetStream KV.
 */
import t from 'tap';
import { loopbackNet, startAgent, startBackends, type AgentProc } from '../helpers/procs.js';
import { startNats } from '../helpers/nats.js';
import { countBy, sleep, tcpRequest, until } from '../helpers/net.js';

const ip = loopbackNet();
/** Processes restarted inside a subtest must outlive it: their teardown belongs to the file. */
const root = t;
const nats = await startNats(t, ip(9), 4222);
const args = ['--nats', nats.url, '--heartbeat', '500ms', '--node-timeout', '3s'];
const agents: AgentProc[] = [];
for (const h of [1, 2, 3]) agents.push(await startAgent(t, { ip: ip(h), args: [...args, '--node-id', `node${h}`] }));
const [a1, a2, a3] = agents as [AgentProc, AgentProc, AgentProc];
await startBackends(t, [`n1@${ip(21)}:9901`, `n2@${ip(22)}:9902`]);

const within = (what: string, fn: () => Promise<boolean>, ms = 5000, detail?: () => Promise<string>) => until(what, fn, ms, detail);

t.test('every node sees every node', async (t) => {
  for (const a of agents) {
    let seen = '';
    await within(`all nodes ready on ${a.api}`, async () => {
      const nodes = JSON.parse((await a.cli('node', 'ls', '--format', 'json')).stdout) as Array<{ id: string; status: string }>;
      seen = nodes.map((n) => `${n.id}=${n.status}`).sort().join(' ');
      return seen === 'node1=ready node2=ready node3=ready';
    });
    t.equal(seen, 'node1=ready node2=ready node3=ready', a.api);
  }
});

t.test('a service created on one node is published on every node and reaches tasks of other nodes', async (t) => {
  t.equal((await a1.cli('service', 'create', '--name', 'web', '--publish', '25001:80')).code, 0);
  t.equal((await a2.cli('task', 'add', '--service', 'web', '--addr', `${ip(21)}:9901`, '--node', 'node1')).code, 0);
  t.equal((await a3.cli('task', 'add', '--service', 'web', '--addr', `${ip(22)}:9902`, '--node', 'node2')).code, 0);
  for (const a of agents) {
    await within(`web on ${a.ingress}`, async () => (await tcpRequest(a.ingress, 25001).catch(() => '')) !== '');
    const seen = countBy(await Promise.all(Array.from({ length: 10 }, () => tcpRequest(a.ingress, 25001).then((r) => r.split(' ')[0]!))));
    t.same([...seen.keys()].sort(), ['n1', 'n2'], `${a.ingress} balances over tasks of node1 and node2`);
  }
});

t.test('50 concurrent creates spread over three agents get distinct ports and VIPs', async (t) => {
  t.equal((await a1.cli('network', 'create', 'shared')).code, 0);
  // Concurrent writers on different agents, through each agent's API at once.
  const results = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const res = await agents[i % 3]!.request('POST', '/v1/services', { name: `c${i}`, ports: [{ target: 80 }], networks: ['shared'] });
      return res.status === 201 ? '' : `c${i}: ${res.status} ${res.text}`;
    }),
  );
  t.same(results.filter(Boolean), [], 'every create succeeded');
  const list = JSON.parse((await a2.cli('service', 'ls', '--format', 'json')).stdout) as Array<{ name: string; ports: Array<{ published: number }>; networks: Array<{ vip: string }> }>;
  const created = list.filter((s) => /^c\d+$/.test(s.name));
  t.equal(created.length, 50);
  t.equal(new Set(created.map((s) => s.ports[0]!.published)).size, 50, 'distinct published ports');
  t.equal(new Set(created.map((s) => s.networks[0]!.vip)).size, 50, 'distinct VIPs');
});

t.test('a node that stops heartbeating leaves rotation everywhere, and comes back', async (t) => {
  const exited = new Promise((r) => a2.child.once('exit', r));
  a2.child.kill('SIGKILL');
  await exited;
  await within('node2 down', async () => {
    const nodes = JSON.parse((await a1.cli('node', 'ls', '--format', 'json')).stdout) as Array<{ id: string; status: string }>;
    return nodes.find((n) => n.id === 'node2')?.status === 'down';
  });
  const start = Date.now();
  await within('node2 tasks out of rotation', async () => {
    const r = await Promise.all(Array.from({ length: 6 }, () => tcpRequest(a1.ingress, 25001).then((x) => x.split(' ')[0]!)));
    return r.every((x) => x === 'n1');
  });
  t.ok(Date.now() - start < 6000, `within a few seconds (${Date.now() - start} ms after node ls showed it down)`);
  // Each agent re-evaluates liveness on its own heartbeat tick: a3 may be a beat behind a1.
  await within('node2 tasks out of rotation on a3 too', async () => {
    const r = await Promise.all(Array.from({ length: 10 }, () => tcpRequest(a3.ingress, 25001).then((x) => x.split(' ')[0]!)));
    return r.every((x) => x === 'n1');
  }, 2000);
  t.pass('every live agent sends everything to node1');
  agents[1] = await startAgent(root, { ip: ip(2), args: [...args, '--node-id', 'node2'] });
  await within('node2 back in rotation', async () => {
    const r = await Promise.all(Array.from({ length: 10 }, () => tcpRequest(a1.ingress, 25001).then((x) => x.split(' ')[0]!)));
    return r.includes('n2');
  });
  t.pass('node2 is back in rotation');
});

t.test('agents keep serving while NATS is down and resynchronise after', async (t) => {
  await nats.kill();
  // Longer than --node-timeout: silence caused by the outage must not take nodes out of rotation.
  await sleep(4500);
  const r = await Promise.all(Array.from({ length: 6 }, () => tcpRequest(a3.ingress, 25001).then((x) => x.split(' ')[0]!)));
  t.equal(r.length, 6, 'the mesh serves from last known state, past the node timeout');
  const failed = await a1.cli('service', 'create', '--name', 'during');
  t.not(failed.code, 0, 'writes fail while NATS is down');
  const ls = await a1.cli('service', 'ls', '--format', 'json');
  t.equal(ls.code, 0, 'reads are answered from the last known state');
  t.ok((JSON.parse(ls.stdout) as Array<{ name: string }>).some((s) => s.name === 'web'));
  await nats.restart(root);
  await within('writes work again', async () => (await a1.cli('service', 'create', '--name', 'after', '--publish', '25002:80')).code === 0, 15000);
  t.equal((await a3.cli('task', 'add', '--service', 'after', '--addr', `${ip(21)}:9901`, '--node', 'node3')).code, 0);
  await within('the new service reaches every agent', async () => {
    const all = await Promise.all(agents.map((a) => tcpRequest(a.ingress, 25002).catch(() => '')));
    return all.every((x) => x.startsWith('n1'));
  }, 10000, async () => JSON.stringify(await Promise.all(agents.map(async (a) => [(await a.request('GET', '/v1/info')).text, (await a.request('GET', '/v1/tasks')).text, (await a.request('GET', '/v1/nodes')).text]))));
  t.pass('resynchronised');
});
