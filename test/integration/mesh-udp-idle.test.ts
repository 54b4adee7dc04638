/**
 * A busy UDP flow keeps its task and its upstream source port however short
 * --udp-timeout is, on the JS path and on the native engine: a server that connect()s
 * its socket to the first source it hears (iperf3 does) answers any other source with
 * ICMP port unreachable. The JS path once expired every active flow at each 1 s sweep of
 * its coarse clock when the timeout was shorter than the sweep.
 */
import { createSocket } from 'node:dgram';
import t from 'tap';
import { loopbackNet, startAgent } from '../helpers/procs.js';
import { openUdp, sleep } from '../helpers/net.js';

const ip = loopbackNet();
// Under the 1 s default sweep, with room for a loaded machine to stall the client 0.8 s.
const TIMEOUT_MS = 900;

/** The task: echoes each datagram and records the source port it came from. */
const sources = new Set<number>();
const task = createSocket('udp4');
task.on('message', (m, r) => {
  sources.add(r.port);
  task.send(m, r.port, r.address);
});
await new Promise<void>((resolve) => task.bind(5501, ip(3), resolve));
t.teardown(() => task.close());

for (const [name, extra, n] of [['js', ['--no-native-relay'], 2], ['native', [], 4]] as const) {
  t.test(`${name}: a flow busier than --udp-timeout keeps its upstream port`, async (t) => {
    const agent = await startAgent(t, { ip: ip(n), args: ['--udp-timeout', `${TIMEOUT_MS}ms`, ...extra] });
    await agent.ok('service', 'create', '--name', 'idle', '--publish', '5500:5501/udp');
    await agent.ok('task', 'add', '--service', 'idle', '--addr', `${ip(3)}:5501`);
    sources.clear();
    const c = await openUdp(agent.ingress, 5500);
    t.teardown(() => c.close());
    // 3 s of traffic every 100 ms: three sweeps of a 1 s clock.
    for (let i = 0; i < 30; i++) {
      t.equal((await c.ask(`p${i}`)).toString(), `p${i}`, `datagram ${i} answered`);
      await sleep(100);
    }
    t.equal(sources.size, 1, `the task heard one source port (${[...sources].join(', ')})`);
    // Idle past the timeout: the flow does expire, and the next datagram opens a new one.
    await sleep(TIMEOUT_MS * 2 + 200);
    t.equal((await c.ask('again')).toString(), 'again', 'answered after expiry');
  });
}
