/** UDP through the published port: per-client flows, replies, idle expiry, failover. */
import t from 'tap';
import { loopbackNet, startAgent, startBackends } from '../helpers/procs.js';
import { countBy, sleep, udpRequest } from '../helpers/net.js';

const ip = loopbackNet();
// Idle timeout long enough that listing the flows (a CLI process, slow on a loaded
// machine) comes before they expire, short enough to watch them go.
const agent = await startAgent(t, { ip: ip(1), args: ['--udp-timeout', '5s'] });
await startBackends(t, [`u1@${ip(2)}:5301`, `u2@${ip(2)}:5302`]);

t.test('round trips through the published UDP port, spread over tasks', async (t) => {
  t.equal((await agent.cli('service', 'create', '--name', 'dns', '--publish', '5353:53/udp')).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'dns', '--addr', `${ip(2)}:5301`)).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'dns', '--addr', `${ip(2)}:5302`)).code, 0);
  const replies: string[] = [];
  for (let i = 0; i < 20; i++) replies.push(await udpRequest(agent.ingress, 5353, `q${i}`));
  t.ok(replies.every((r, i) => new RegExp(`^u[12] q${i}$`).test(r)), 'every reply echoes its query');
  const c = countBy(replies.map((r) => r.split(' ')[0]));
  t.same([c.get('u1'), c.get('u2')], [10, 10], 'rr over new client flows');
});

t.test('flows are in the connection table and expire when idle', async (t) => {
  const flows = JSON.parse((await agent.cli('conn', 'ls', '--service', 'dns', '--format', 'json')).stdout) as Array<{ proto: string; state: string }>;
  t.ok(flows.length >= 1 && flows.every((f) => f.proto === 'udp' && f.state === 'UDP'), `udp flows listed (${flows.length})`);
  await sleep(7500);
  const later = JSON.parse((await agent.cli('conn', 'ls', '--service', 'dns', '--format', 'json')).stdout) as unknown[];
  t.equal(later.length, 0, 'idle UDP flows expired after --udp-timeout');
});

t.test('a task with nothing listening: datagrams fail over to a live task', async (t) => {
  t.equal((await agent.cli('service', 'create', '--name', 'dead', '--publish', '5354:53/udp')).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'dead', '--addr', `${ip(2)}:5399`)).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'dead', '--addr', `${ip(2)}:5301`)).code, 0);
  for (let i = 0; i < 6; i++) t.equal(await udpRequest(agent.ingress, 5354, `x${i}`), `u1 x${i}`);
});
