/**
 * Self-healing in the data path: killed tasks, draining, node availability and
 * active health checks, with real processes and real sockets.
 */
import t from 'tap';
import { loopbackNet, startAgent, startBackends } from '../helpers/procs.js';
import { openConn, sleep, tcpRequest } from '../helpers/net.js';
import { killMidRun } from '../helpers/scenarios.js';

const ip = loopbackNet();
const agent = await startAgent(t, { ip: ip(1), args: ['--drain-timeout', '2s'] });
const bip = ip(2);

t.test('a task killed mid-run causes zero failed client requests', async (t) => {
  const procs = await Promise.all([1, 2, 3].map((i) => startBackends(t, [`k${i}@${bip}:${9100 + i}`])));
  t.equal((await agent.cli('service', 'create', '--name', 'kill', '--publish', '21001:80')).code, 0);
  for (const i of [1, 2, 3]) t.equal((await agent.cli('task', 'add', '--service', 'kill', '--addr', `${bip}:${9100 + i}`)).code, 0);
  await killMidRun(t, agent, procs, 21001, 600);
  // Passive health marked the dead task: its failures are counted (its back-off may already
  // have run out by now on a slow machine, so the state itself is not asserted).
  const metrics = await agent.metrics();
  const failures = [...metrics.matchAll(/swarmnet_backend_errors_total\{[^}]*task="kill\.2"[^}]*\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  t.ok(failures >= 1, `failures recorded against the dead task (${failures})`);
});

t.test('removing a task drains it: established connections live on, then the drain timeout ends them', async (t) => {
  await startBackends(t, [`d1@${bip}:9201`, `d2@${bip}:9202`]);
  t.equal((await agent.cli('service', 'create', '--name', 'drain', '--publish', '21002:80')).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'drain', '--addr', `${bip}:9201`, '--name', 'drain-d1')).code, 0);
  const conn = await openConn(agent.ingress, 21002);
  t.match(await conn.ask('one'), /^d1 /);
  t.equal((await agent.cli('task', 'add', '--service', 'drain', '--addr', `${bip}:9202`, '--name', 'drain-d2')).code, 0);
  t.equal((await agent.cli('task', 'rm', 'drain-d1')).code, 0);
  t.match(await conn.ask('two'), /^d1 /, 'the established connection still reaches the removed task');
  for (let i = 0; i < 5; i++) t.match(await tcpRequest(agent.ingress, 21002), /^d2 /, 'new connections go to the remaining task');
  const closed = new Promise<void>((r) => conn.sock.once('end', () => r()));
  const start = Date.now();
  await closed;
  const waited = Date.now() - start;
  t.ok(waited > 500 && waited < 4500, `drain timeout closed it with a FIN after ${waited} ms`);
});

t.test('node drain and pause take its tasks out of rotation for new connections only', async (t) => {
  await startBackends(t, [`n1@${bip}:9301`]);
  t.equal((await agent.cli('service', 'create', '--name', 'avail', '--publish', '21003:80')).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'avail', '--addr', `${bip}:9301`)).code, 0);
  const nodes = JSON.parse((await agent.cli('node', 'ls', '--format', 'json')).stdout) as Array<{ id: string; status: string }>;
  t.equal(nodes.length, 1);
  t.equal(nodes[0]!.status, 'ready');
  const node = nodes[0]!.id;
  const conn = await openConn(agent.ingress, 21003);
  t.match(await conn.ask('a'), /^n1 /);
  for (const availability of ['drain', 'pause']) {
    t.equal((await agent.cli('node', 'update', '--availability', availability, node)).code, 0);
    await t.rejects(tcpRequest(agent.ingress, 21003, 'x', { timeoutMs: 2000 }), `${availability}: new connection gets no task`);
    t.match(await conn.ask('b'), /^n1 /, `${availability}: the established connection keeps working`);
    t.equal((await agent.cli('node', 'update', '--availability', 'active', node)).code, 0);
    t.match(await tcpRequest(agent.ingress, 21003), /^n1 /, 'active again: served');
  }
  const bad = await agent.cli('node', 'update', '--availability', 'sleep', node);
  t.not(bad.code, 0);
  t.match(bad.stderr, /availability: must be one of active, pause, drain/);
  conn.close();
});

t.test('active health checks take a dead task out before any client tries it', async (t) => {
  const p = await startBackends(t, [`h1@${bip}:9401`]);
  await startBackends(t, [`h2@${bip}:9402`]);
  const r = await agent.cli('service', 'create', '--name', 'hc', '--publish', '21004:80', '--health-interval', '200ms', '--health-timeout', '200ms', '--health-retries', '2');
  t.equal(r.code, 0, r.stderr);
  t.equal((await agent.cli('task', 'add', '--service', 'hc', '--addr', `${bip}:9401`)).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'hc', '--addr', `${bip}:9402`)).code, 0);
  p.kill();
  await sleep(1200);
  const ps = JSON.parse((await agent.cli('service', 'ps', 'hc', '--format', 'json')).stdout) as Array<{ name: string; observed: { state: string } }>;
  t.same(ps.map((x) => `${x.name}=${x.observed.state}`), ['hc.1=unhealthy', 'hc.2=up']);
  const metrics = await agent.metrics();
  t.match(metrics, /swarmnet_backend_up\{service="hc",protocol="tcp",port="21004",backend="[\d.]+:9401",task="hc.1"\} 0/);
  for (let i = 0; i < 6; i++) t.match(await tcpRequest(agent.ingress, 21004), /^h2 /);
  const retries = /swarmnet_service_retries_total\{service="hc"\} (\d+)/.exec(await agent.metrics());
  t.equal(retries?.[1], '0', 'no client connection ever tried the dead task');
});
