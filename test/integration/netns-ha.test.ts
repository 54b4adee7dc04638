/**
 * A 3-server NATS cluster (JetStream replicas 3) with one server on each of three
 * hosts (network namespaces), an agent on each host; one host's NATS server dies.
 */
import t from 'tap';
import { createTopology } from '../helpers/netns.js';
import { startNatsCluster } from '../helpers/nats.js';
import { startAgent, startBackends, type AgentProc } from '../helpers/procs.js';
import { tcpRequest, until } from '../helpers/net.js';

const topo = createTopology(t, 3);
const hosts = topo.hosts;
const servers = await startNatsCluster(t, hosts.map((h) => h.ip) as [string, string, string], hosts.map((h) => h.spawn));
const urls = servers.map((s) => s.url).join(',');
const agents: AgentProc[] = [];
for (const [i, h] of hosts.entries()) {
  agents.push(
    await startAgent(t, {
      ip: h.ip,
      spawner: h.spawn,
      args: ['--nats', urls, '--nats-replicas', '3', '--node-id', `ha${i + 1}`, '--advertise-addr', h.ip, '--heartbeat', '500ms', '--node-timeout', '3s'],
    }),
  );
}
await startBackends(t, [`b3@${hosts[2]!.ip}:9000`], hosts[2]!.spawn);

const within = (what: string, fn: () => Promise<boolean>, ms = 30000, detail?: () => Promise<string>) => until(what, fn, ms, detail);

const servedEverywhere = (port: number) => async () => (await Promise.all(hosts.map((h) => tcpRequest(h.ip, port).then((r) => r.startsWith('b3'), () => false)))).every(Boolean);

t.test("one host's NATS server dies: no state lost, agents carry on", async (t) => {
  for (let i = 0; i < 3; i++) t.equal((await agents[i]!.cli('service', 'create', '--name', `s${i}`, '--publish', `${31000 + i}:9000`)).code, 0);
  t.equal((await agents[0]!.cli('task', 'add', '--service', 's0', '--addr', `${hosts[2]!.ip}:9000`, '--node', 'ha3')).code, 0);
  await within('s0 served on every host', servedEverywhere(31000));
  await servers[0]!.kill();
  await within('a write after the kill', async () => {
    const r = await agents[1]!.cli('service', 'create', '--name', 'later', '--publish', '31100:9000');
    return r.code === 0 || /already exists/.test(r.stderr);
  });
  // JetStream may still be electing leaders: retry, by name so a retry cannot add twice.
  await within('a task add after the kill', async () => {
    const r = await agents[2]!.cli('task', 'add', '--service', 'later', '--addr', `${hosts[2]!.ip}:9000`, '--node', 'ha3', '--name', 'later-1');
    return r.code === 0 || /already exists/.test(r.stderr);
  });
  const start = Date.now();
  await within('the new service served on every host', servedEverywhere(31100));
  t.pass(`converged ${Date.now() - start} ms after the write`);
  for (const a of agents) {
    const names = (JSON.parse((await a.cli('service', 'ls', '--format', 'json')).stdout) as Array<{ name: string }>).map((s) => s.name);
    t.same(names, ['later', 's0', 's1', 's2'], `${a.api}: every service, none lost`);
  }
  t.ok(await servedEverywhere(31000)(), 's0 still served everywhere');
});
