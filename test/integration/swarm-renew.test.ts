/**
 * Certificates renew by themselves before they expire (here a 60 s lifetime, renewed
 * at 50-80% of it), the cluster keeps working on the new ones, and a worker that
 * leaves goes back to its own store and out of the managers' node list.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology } from '../helpers/netns.js';
import { startAgent, type AgentProc } from '../helpers/procs.js';
import { until } from '../helpers/net.js';
import { certInfo } from '../../src/trust/index.js';

t.setTimeout(240_000);
const topo = createTopology(t, 2);
const [h1, h2] = topo.hosts as [(typeof topo.hosts)[number], (typeof topo.hosts)[number]];
const agents: AgentProc[] = [];
for (const [i, h] of topo.hosts.entries()) agents.push(await startAgent(t, { ip: h.ip, spawner: h.spawn, args: ['--node-id', `host${i + 1}`, '--advertise-addr', h.ip, '--heartbeat', '500ms', '--node-timeout', '3s'] }));
const [a1, a2] = agents as [AgentProc, AgentProc];
const serial = (a: AgentProc) => certInfo(readFileSync(join(a.dataDir, 'trust', 'node.pem'), 'utf8')).serial;

t.test('node certificates renew before they expire, and the cluster carries on', async (t) => {
  const out = await a1.ok('init', '--cert-expiry', '60s');
  const token = /--token (\S+)/.exec(out)![1]!;
  await a2.ok('join', '--token', token, `${h1.ip}:2377`);
  const first = { m: serial(a1), w: serial(a2) };
  const info = certInfo(readFileSync(join(a2.dataDir, 'trust', 'node.pem'), 'utf8'));
  t.ok(info.notAfter.getTime() - Date.now() <= 60_000, 'the worker got a 60 s certificate');
  await until('both certificates renewed', async () => serial(a1) !== first.m && serial(a2) !== first.w, 60_000);
  t.pass('manager and worker renewed (new serials)');
  t.ok(certInfo(readFileSync(join(a2.dataDir, 'trust', 'node.pem'), 'utf8')).notAfter > info.notAfter, 'the new one lasts longer');
  // Past the first certificates' end, everything still works on the new ones.
  await until('past the old expiry', async () => Date.now() > info.notAfter.getTime() + 2000, 60_000, async () => '', 500);
  await a2.ok('service', 'create', '--name', 'after-renewal', '--publish', '30100:80');
  t.match(await a1.ok('service', 'ls'), /after-renewal/, 'a write through the worker reached the manager');
  const r = await a2.cli('--host', `tcp://${h1.ip}:2377`, '--cert-dir', join(a2.dataDir, 'trust'), 'node', 'ls');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /host2\s+\S+\s+\S+\s+worker\s+ready/, 'the TCP API takes the renewed certificate');
});

t.test('a worker leaves: alone again, files gone, out of the node list', async (t) => {
  t.match(await a2.ok('leave'), /left the cluster/);
  t.equal((JSON.parse((await a2.request('GET', '/v1/info')).text) as { mode: string }).mode, 'single');
  t.notOk(existsSync(join(a2.dataDir, 'trust')) || existsSync(join(a2.dataDir, 'cluster.json')), 'no cluster files');
  await until('host2 gone from the managers list', async () => !(await a1.ok('node', 'ls')).includes('host2'), 10_000);
  t.pass('node ls on the manager no longer lists it');
  const r = await a1.cli('leave');
  t.not(r.code, 0, 'a manager does not leave without --force');
  t.match(r.stderr, /manager.*--force/);
});
