/**
 * Passive health on UDP, both paths: ICMP port unreachable from a task counts a failure
 * and puts it in back-off (growing with consecutive failures); the first reply of a
 * later flow clears them, as a TCP connect does. Before, UDP never cleared them: a task
 * that had failed three times sat out its 4 s back-off though it answered again, and
 * its next single failure cost 8 s.
 */
import { createSocket } from 'node:dgram';
import t from 'tap';
import { loopbackNet, startAgent, type AgentProc } from '../helpers/procs.js';
import { sleep, udpRequest } from '../helpers/net.js';

const ip = loopbackNet();

/** 1 or 0: swarmnet_backend_up of the service's only task. */
async function up(agent: AgentProc, service: string): Promise<number> {
  const line = (await agent.metrics()).split('\n').find((l) => l.startsWith('swarmnet_backend_up{') && l.includes(`service="${service}"`));
  return Number(line?.split(' ').at(-1));
}

for (const [name, extra, n, port] of [['js', ['--no-native-relay'], 1, 5601], ['native', [], 3, 5602]] as const) {
  t.test(`${name}: a task's UDP failures end with its first answer`, async (t) => {
    const agent = await startAgent(t, { ip: ip(n), args: [...extra] });
    await agent.ok('service', 'create', '--name', 'health', '--publish', `5600:${port}/udp`);
    await agent.ok('task', 'add', '--service', 'health', '--addr', `${ip(2)}:${port}`);
    // Nothing listens yet: three clients, three ICMP errors, three consecutive failures.
    for (let i = 0; i < 3; i++) await t.rejects(udpRequest(agent.ingress, 5600, `down${i}`, 300), 'no answer from a closed port');
    t.equal(await up(agent, 'health'), 0, 'the task is backing off');

    const task = createSocket('udp4');
    task.on('message', (m, r) => task.send(m, r.port, r.address));
    await new Promise<void>((resolve) => task.bind(port, ip(2), resolve));
    t.teardown(() => task.close());
    // Every task backing off, the mesh still tries one: this flow is answered.
    t.equal(await udpRequest(agent.ingress, 5600, 'back'), 'back', 'the task answers again');
    await sleep(100);
    t.equal(await up(agent, 'health'), 1, 'its back-off is over at once, not after 4 s');
  });
}
