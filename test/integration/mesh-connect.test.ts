/**
 * The native relay's connect path with real sockets: the client's first bytes are read
 * and sent right after connect() (no poll round in between). Where the handshake has not
 * completed by then, send() says EAGAIN and the bytes wait for the connection; where it
 * never completes, the connect times out and the next task gets every byte, including
 * those read early (from the replay copy). Tasks on a bridge (network namespaces), so a
 * task address can be one that never answers (no host: ARP fails, no SYN-ACK ever).
 */
import { connect } from 'node:net';
import t from 'tap';
import { createTopology } from '../helpers/netns.js';
import { loopbackNet, startAgent, startBackends } from '../helpers/procs.js';

const ip = loopbackNet();
const topo = createTopology(t, 1);
const host = topo.hosts[0]!;
const deadTask = host.ip.replace(/\.\d+$/, '.77'); // on the bridge's subnet, no host there
const agent = await startAgent(t, { ip: ip(1), args: ['--connect-timeout', '300ms'] });
await startBackends(t, [`b1@${host.ip}:9001`], host.spawn);

/** Sends `payload` then `sink`; resolves with the reply lines (the backend counts the bytes it got). */
function sendAndCount(port: number, payload: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: agent.ingress, port });
    let buf = '';
    const timer = setTimeout(() => s.destroy(new Error(`timeout, got '${buf.slice(0, 200)}'`)), 10_000);
    s.on('connect', () => s.write(`${payload}\nsink\n`));
    s.on('data', (d) => {
      buf += d.toString();
      const lines = buf.split('\n');
      if (lines.length > 2) {
        clearTimeout(timer);
        s.end();
        resolve(lines.slice(0, 2));
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

t.test('a task that never answers the handshake: the next task gets every byte, read early or not', async (t) => {
  await agent.ok('service', 'create', '--name', 'slow', '--publish', '24001:9001');
  await agent.ok('task', 'add', '--service', 'slow', '--addr', `${deadTask}:9001`, '--name', 'dead');
  await agent.ok('task', 'add', '--service', 'slow', '--addr', `${host.ip}:9001`, '--name', 'live');
  // Larger than the replay copy (64 KiB): the part read while connecting stays within it.
  const big = 'x'.repeat(200_000);
  for (const payload of [big, big, 'hello', big]) {
    const [first, count] = await sendAndCount(24001, payload);
    t.match(first, /^b1 /, 'the live task answered');
    t.equal(count, `b1 ${payload.length + 1 + 'sink\n'.length}`, `all ${payload.length + 6} bytes arrived, in order`);
  }
  const m = await agent.metrics();
  t.match(m, /swarmnet_backend_errors_total\{[^}]*task="dead"[^}]*kind="etimedout"[^}]*\} [1-9]/, 'the dead task was tried and its connect timed out');
});
