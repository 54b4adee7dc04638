/**
 * The native relay's connection ends and keepalive, with real sockets (a real agent, a
 * real task server, real clients):
 * - a task that replies and closes at once: its reply and its FIN reach the client
 *   together (the relay sends the reply with MSG_MORE and the FIN right behind it), every
 *   byte arrives, and the client can still send after that FIN (a half-close, not a close);
 * - TCP keepalive is set on both legs by the relay thread's sweep once a connection has
 *   lived a second, not at accept and connect: a new connection has no keepalive timer
 *   yet, one that lives on gets it (60 s idle) on both legs.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import t from 'tap';
import { until } from '../helpers/net.js';
import { loopbackNet, startAgent, startBackends } from '../helpers/procs.js';

const ip = loopbackNet();
const agent = await startAgent(t, { ip: ip(1) });
const taskIp = ip(2);

/** A task that answers the first bytes of a connection with `size` bytes and ends its side
 * at once (Node writes the data then shutdown(): both are queued at the relay together);
 * it records what a connection sent after that, up to the client's FIN. */
async function replyAndClose(port: number, size: number): Promise<{ server: Server; late: string[] }> {
  const late: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (s: Socket) => {
    let answered = false;
    let after = '';
    s.on('data', (d) => {
      if (!answered) {
        answered = true;
        s.end(Buffer.alloc(size, 0x61));
      } else after += d.toString();
    });
    s.on('end', () => late.push(after));
    s.on('error', () => undefined);
  });
  server.listen(port, taskIp);
  await once(server, 'listening');
  t.teardown(() => server.close());
  return { server, late };
}

/** Sends a request, reads to the end; after the end, sends `tail` (if any) and closes. */
function fetchToEnd(port: number, tail = ''): Promise<{ bytes: number; endAfterLastByteMs: number }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: agent.ingress, port, allowHalfOpen: true });
    let bytes = 0;
    let lastByte = 0;
    const timer = setTimeout(() => s.destroy(new Error(`no end after ${bytes} bytes`)), 10_000);
    s.on('connect', () => s.write('GET\n'));
    s.on('data', (d) => {
      bytes += d.length;
      lastByte = performance.now();
    });
    s.on('end', () => {
      clearTimeout(timer);
      const endAfterLastByteMs = performance.now() - lastByte;
      s.end(tail);
      resolve({ bytes, endAfterLastByteMs });
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

t.test('a reply and the FIN right behind it: every byte, the end at once, the client may still send', async (t) => {
  const sizes = [1, 85, 4096, 65535, 65536, 300_000];
  for (const [i, size] of sizes.entries()) {
    const port = 25101 + i;
    const task = await replyAndClose(port, size);
    await agent.ok('service', 'create', '--name', `fin${i}`, '--publish', `${port}:${port}`);
    await agent.ok('task', 'add', '--service', `fin${i}`, '--addr', `${taskIp}:${port}`);
    for (let n = 0; n < 20; n++) {
      const got = await fetchToEnd(port, n === 0 ? 'after the end\n' : '');
      t.equal(got.bytes, size, `${size} bytes: all arrived (connection ${n + 1})`);
      // a reply held back without its FIN would wait for the relay's next poll round or
      // a timer; the FIN comes with the bytes or right behind them
      t.ok(got.endAfterLastByteMs < 100, `${size} bytes: the end followed the last byte (${got.endAfterLastByteMs.toFixed(1)} ms)`);
    }
    await until(`${size}: the task saw every connection end`, async () => task.late.length === 20, 5000);
    t.equal(task.late.filter((s) => s === 'after the end\n').length, 1, `${size}: bytes sent after the task's FIN reached the task`);
  }
});

/** The relay's sockets of one connection: the client leg (local ingress:port, peer the
 * client's port) and the task leg (peer the task); `ss -o` shows a keepalive timer. */
function legs(port: number, clientPort: number, taskAt: string): { client: string; task: string } {
  const ss = (filter: string) => execFileSync('ss', ['-tnoH', 'state', 'established', filter], { encoding: 'utf8' }).trim();
  return {
    client: ss(`( src ${agent.ingress}:${port} and dst :${clientPort} )`),
    task: ss(`( dst ${taskAt} )`),
  };
}

t.test('keepalive on both legs once a connection has lived a second, none before', async (t) => {
  const port = 25120;
  const backend = ip(3);
  await startBackends(t, [`ka@${backend}:9120`]);
  await agent.ok('service', 'create', '--name', 'ka', '--publish', `${port}:9120`);
  await agent.ok('task', 'add', '--service', 'ka', '--addr', `${backend}:9120`);
  const s = connect({ host: agent.ingress, port });
  t.teardown(() => s.destroy());
  await once(s, 'connect');
  s.write('hello\n');
  await once(s, 'data');
  const fresh = legs(port, s.localPort!, `${backend}:9120`);
  t.not(fresh.client, '', 'the client leg is listed');
  t.not(fresh.task, '', 'the task leg is listed');
  t.notMatch(fresh.client, /keepalive/, 'a new connection: no keepalive timer on the client leg yet');
  t.notMatch(fresh.task, /keepalive/, 'a new connection: no keepalive timer on the task leg yet');
  await until(
    'keepalive on both legs',
    async () => {
      const l = legs(port, s.localPort!, `${backend}:9120`);
      return /keepalive/.test(l.client) && /keepalive/.test(l.task);
    },
    4000,
    async () => JSON.stringify(legs(port, s.localPort!, `${backend}:9120`)),
  );
  const later = legs(port, s.localPort!, `${backend}:9120`);
  for (const [leg, line] of Object.entries(later)) {
    const secs = keepaliveSeconds(line);
    t.ok(secs > 50 && secs <= 60, `${leg} leg: keepalive after 60 s idle, not the kernel's 2 h (${/timer:\([^)]*\)/.exec(line)?.[0]})`);
  }
});

/** Seconds left on the keepalive timer of an `ss -o` line ("timer:(keepalive,59sec,0)",
 * "1min", "1min2sec", "900ms"); NaN without one. */
function keepaliveSeconds(line: string): number {
  const m = /timer:\(keepalive,(?:(\d+)min)?(?:(\d+)sec)?(?:(\d+)ms)?,/.exec(line);
  if (!m || (!m[1] && !m[2] && !m[3])) return NaN;
  return 60 * Number(m[1] ?? 0) + Number(m[2] ?? 0) + Number(m[3] ?? 0) / 1000;
}
