/**
 * The pure-JS TCP relay (used when the native addon is not built, or with
 * --no-native-relay): the same guarantees as the native engine.
 */
import t from 'tap';
import { loopbackNet, startAgent, startBackends } from '../helpers/procs.js';
import { openConn, tcpRequest } from '../helpers/net.js';
import { killMidRun } from '../helpers/scenarios.js';

const ip = loopbackNet();
const bip = ip(2);
const agent = await startAgent(t, { ip: ip(1), args: ['--no-native-relay', '--drain-timeout', '1s'] });

t.test('a task killed mid-run causes zero failed client requests (JS relay)', async (t) => {
  const procs = await Promise.all([1, 2, 3].map((i) => startBackends(t, [`j${i}@${bip}:${9700 + i}`])));
  t.equal((await agent.cli('service', 'create', '--name', 'jkill', '--publish', '24001:80')).code, 0);
  for (const i of [1, 2, 3]) t.equal((await agent.cli('task', 'add', '--service', 'jkill', '--addr', `${bip}:${9700 + i}`)).code, 0);
  await killMidRun(t, agent, procs, 24001, 300);
});

t.test('PROXY v2, drain and conn ls on the JS relay', async (t) => {
  await startBackends(t, [`p1@${bip}:9801`]);
  t.equal((await agent.cli('service', 'create', '--name', 'jpp', '--publish', '24002:80', '--proxy-protocol', 'v2')).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'jpp', '--addr', `${bip}:9801`, '--name', 'jpp-1')).code, 0);
  t.match(await tcpRequest(agent.ingress, 24002, 'hi', { localAddress: ip(90) }), new RegExp(`^p1 v2 ${ip(90).replace(/\./g, '\\.')}:\\d+$`));
  const conn = await openConn(agent.ingress, 24002);
  t.match(await conn.ask('x'), /^p1 /);
  const flows = JSON.parse((await agent.cli('conn', 'ls', '--service', 'jpp', '--format', 'json')).stdout) as Array<{ state: string; backendName: string }>;
  t.same(flows.map((f) => `${f.state} ${f.backendName}`), ['ESTABLISHED jpp-1']);
  const ended = new Promise<void>((r) => conn.sock.once('end', () => r()));
  t.equal((await agent.cli('task', 'rm', 'jpp-1')).code, 0);
  t.match(await conn.ask('y'), /^p1 /, 'drains: still served after removal');
  await ended;
  t.pass('drain timeout ended the connection with a FIN');
});
