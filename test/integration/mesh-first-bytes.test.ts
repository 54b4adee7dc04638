/**
 * The native relay reads a new client's first bytes before it connects to the task and,
 * with bytes in hand, lets the handshake's last ACK ride on the first data segment
 * (TCP_QUICKACK off before connect()). Real agent, real task servers, real clients:
 * - a task that speaks first (a greeting, as SMTP or MySQL do) to a client that sends
 *   nothing: the task must see its connection at once, not after a delayed-ACK timer;
 * - a client that speaks first: the request and the reply arrive whole and at once.
 */
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import t from 'tap';
import { loopbackNet, startAgent } from '../helpers/procs.js';

const ip = loopbackNet();
const agent = await startAgent(t, { ip: ip(1) });
const taskIp = ip(2);

async function server(port: number, onConn: (s: Socket) => void): Promise<void> {
  const srv = createServer(onConn);
  srv.listen(port, taskIp);
  await once(srv, 'listening');
  t.teardown(() => srv.close());
}

/** Connects, optionally sends `request`, resolves with the first reply and the ms it took. */
function firstReply(port: number, request?: string): Promise<{ reply: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const s = connect({ host: agent.ingress, port });
    const timer = setTimeout(() => s.destroy(new Error('no reply')), 5000);
    if (request) s.on('connect', () => s.write(request));
    s.once('data', (d) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ reply: d.toString(), ms: performance.now() - started });
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

t.test('a task that speaks first greets a silent client at once', async (t) => {
  await server(25201, (s) => {
    s.on('error', () => undefined);
    s.end('220 ready\r\n');
  });
  await agent.ok('service', 'create', '--name', 'greeter', '--publish', '25201:25201');
  await agent.ok('task', 'add', '--service', 'greeter', '--addr', `${taskIp}:25201`);
  for (let i = 0; i < 10; i++) {
    const { reply, ms } = await firstReply(25201);
    t.equal(reply, '220 ready\r\n');
    // a held handshake ACK would keep the task from accepting until the delayed-ACK timer (200 ms)
    t.ok(ms < 100, `greeting after ${ms.toFixed(1)} ms`);
  }
});

t.test('a client that speaks first: the request goes with the handshake, the reply comes at once', async (t) => {
  await server(25202, (s) => {
    s.on('error', () => undefined);
    s.once('data', (d) => s.end(`got ${d.length}\n`));
  });
  await agent.ok('service', 'create', '--name', 'asker', '--publish', '25202:25202');
  await agent.ok('task', 'add', '--service', 'asker', '--addr', `${taskIp}:25202`);
  for (let i = 0; i < 10; i++) {
    const { reply, ms } = await firstReply(25202, 'GET / HTTP/1.0\r\n\r\n');
    t.equal(reply, 'got 18\n');
    t.ok(ms < 100, `reply after ${ms.toFixed(1)} ms`);
  }
});
