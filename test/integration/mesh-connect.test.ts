/**
 * The native relay's connect path with real sockets: the client's first bytes are read
 * and sent right after connect() (no poll round in between). Where the handshake has not
 * completed by then, send() says EAGAIN and the bytes wait for the connection; where it
 * never completes, the connect times out and the next task gets every byte, including
 * those read early (from the replay copy). Tasks on a bridge (network namespaces), so a
 * task address can be one that never answers (no host: ARP fails, no SYN-ACK ever).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import t from 'tap';
import { sleep } from '../helpers/net.js';
import { createTopology } from '../helpers/netns.js';
import { killOnTeardown, loopbackNet, startAgent, startBackends } from '../helpers/procs.js';

const ip = loopbackNet();
const topo = createTopology(t, 1);
const host = topo.hosts[0]!;
const deadTask = host.ip.replace(/\.\d+$/, '.77'); // on the bridge's subnet, no host there
const agent = await startAgent(t, { ip: ip(1), args: ['--connect-timeout', '300ms'] });
await startBackends(t, [`b1@${host.ip}:9001`], host.spawn);

/** Sends `payload` then `sink`; resolves with the reply lines (the backend counts the bytes it got). */
function sendAndCount(port: number, payload: string, at = agent.ingress): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: at, port });
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

/** TcpExt ListenOverflows: SYNs dropped because an accept queue was full (host-wide). */
function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const [names, values] = lines.map((l) => l.split(' '));
  return Number(values![names!.indexOf('ListenOverflows')]);
}

/**
 * A task whose accept queue is full until the test says go: the kernel drops the relay's
 * SYN, so connect() returns with the handshake open and the early send() says EAGAIN; the
 * SYN is sent again after 1 s, and the bytes kept meanwhile go out once it completes.
 */
const LATE_TASK = `
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(0)
filler = socket.create_connection((host, port))  # fills the accept queue (length 0 + 1)
print('ready', flush=True)
sys.stdin.readline()
s.accept()
c, _ = s.accept()
data = b''
while not data.endswith(b'sink\\n'):
    chunk = c.recv(65536)
    if not chunk: break
    data += chunk
c.sendall(b'late ok\\nlate %d\\n' % len(data))
sys.stdin.readline()
`;

t.test('a handshake that completes after connect() returned: the bytes read early wait and go first', async (t) => {
  const late = await startAgent(t, { ip: ip(3) });
  const taskAt = ip(4);
  const py = spawn('python3', ['-c', LATE_TASK, taskAt, '9002'], { stdio: ['pipe', 'pipe', 'inherit'] });
  killOnTeardown(t, py);
  await once(py.stdout!, 'data');
  await late.ok('service', 'create', '--name', 'late', '--publish', '24002:9002');
  await late.ok('task', 'add', '--service', 'late', '--addr', `${taskAt}:9002`);
  const dropped = listenOverflows();
  const payload = 'y'.repeat(30_000);
  const reply = sendAndCount(24002, payload, late.ingress);
  await sleep(300);
  t.ok(listenOverflows() > dropped, "the relay's SYN was dropped (full accept queue)");
  py.stdin!.write('go\n');
  const [first, count] = await reply;
  t.equal(first, 'late ok');
  t.equal(count, `late ${payload.length + 6}`, 'every byte arrived, in order');
});
