/**
 * The native relay on several threads (`--threads 2`): real agent, real backends, real
 * clients. Connections spread over the threads, and the scheduling decision made in C
 * is the one the JavaScript schedulers make (the same task on every node), with
 * retries, back-off and drain as on one thread.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import t from 'tap';
import { loopbackNet, metricValue, startAgent, startBackends } from '../helpers/procs.js';
import { countBy, openConn, tcpRequest, udpRequest } from '../helpers/net.js';
import { killMidRun } from '../helpers/scenarios.js';
import { Backend, createScheduler } from '../../src/mesh/index.js';

const ip = loopbackNet();
const bip = ip(2);
const agent = await startAgent(t, { ip: ip(1), args: ['--threads', '2'] });
const names = ['t1', 't2', 't3'];
await startBackends(t, names.map((n, i) => `${n}@${bip}:${9501 + i}`));

async function service(name: string, port: number, lb: string, extra: string[] = []): Promise<void> {
  t.equal((await agent.cli('service', 'create', '--name', name, '--publish', `${port}:80`, '--lb', lb, ...extra)).code, 0);
  for (const [i, n] of names.entries()) t.equal((await agent.cli('task', 'add', '--service', name, '--addr', `${bip}:${9501 + i}`, '--name', `${name}-${n}`)).code, 0);
}

const who = (reply: string) => reply.split(' ')[0]!;

/** Each thread of a process by name (comm), with its scheduler slice in ns (se.slice, Linux 6.6+; NaN before). */
function threadsOf(pid: number): Array<{ comm: string; slice: number }> {
  const dir = `/proc/${pid}/task`;
  return readdirSync(dir).map((tid) => ({
    comm: readFileSync(`${dir}/${tid}/comm`, 'utf8').trim(),
    slice: Number(/^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(`${dir}/${tid}/sched`, 'utf8'))?.[1] ?? NaN),
  }));
}
// A fair task's custom slice (sched_setattr's sched_runtime) counts from Linux 6.12; earlier kernels ignore it.
const [major, minor] = release().split('.').map(Number);
const customSlices = major! > 6 || (major === 6 && minor! >= 12);

t.test('the agent runs two relay threads', async (t) => {
  t.equal(threadsOf(agent.child.pid!).filter((x) => x.comm === 'swarmnet-relay').length, 2);
});

t.test('data-plane threads run with a short scheduler slice; Node\'s thread keeps the default', { skip: !customSlices && `kernel ${release()} has no custom slices (6.12+)` }, async (t) => {
  const threads = threadsOf(agent.child.pid!);
  const relay = threads.filter((x) => x.comm === 'swarmnet-relay');
  t.same(relay.map((x) => x.slice), [100_000, 100_000], 'both relay threads: --thread-slice\'s default, 100 us');
  const main = threads.find((x) => x.comm !== 'swarmnet-relay' && x.comm !== 'swarmnet-udp')!;
  t.ok(main.slice > 100_000, `the control plane's thread (${main.comm}) keeps the kernel's slice: ${main.slice} ns`);
});

t.test('--thread-slice sets the relay threads\' slice; 0 leaves the kernel\'s', { skip: !customSlices && `kernel ${release()} has no custom slices (6.12+)` }, async (t) => {
  const [a300, a0] = await Promise.all([
    startAgent(t, { ip: ip(70), args: ['--threads', '1', '--thread-slice', '300'] }),
    startAgent(t, { ip: ip(71), args: ['--threads', '1', '--thread-slice', '0'] }),
  ]);
  const relay300 = threadsOf(a300.child.pid!).filter((x) => x.comm === 'swarmnet-relay');
  t.same(relay300.map((x) => x.slice), [300_000], '--thread-slice 300: 300 us');
  const all0 = threadsOf(a0.child.pid!);
  const relay0 = all0.find((x) => x.comm === 'swarmnet-relay')!;
  t.equal(relay0.slice, all0[0]!.slice, '--thread-slice 0: the relay thread has the slice Node\'s thread has');
  t.not(relay0.slice, 100_000);
});

// First: killMidRun reads the retries of the first service in the metrics.
t.test('a task killed mid-run causes zero failed client requests (two threads)', async (t) => {
  const procs = await Promise.all([1, 2, 3].map((i) => startBackends(t, [`k${i}@${bip}:${9510 + i}`])));
  t.equal((await agent.cli('service', 'create', '--name', 'tkill', '--publish', '22004:80')).code, 0);
  for (const i of [1, 2, 3]) t.equal((await agent.cli('task', 'add', '--service', 'tkill', '--addr', `${bip}:${9510 + i}`)).code, 0);
  await killMidRun(t, agent, procs, 22004, 600);
  // Passive health marked the dead task (refused connects, or empty replies replayed elsewhere).
  const errors = (await agent.metrics()).split('\n').filter((l) => l.startsWith('swarmnet_backend_errors_total{service="tkill"'));
  t.ok(errors.some((l) => l.includes(`backend="${bip}:9512"`)), `failures counted on the dead task: ${errors.join('; ')}`);
});

t.test('concurrent clients spread over both threads; rr stays exact', async (t) => {
  await service('spread', 22001, 'rr');
  const picks: string[] = [];
  const accepted = async () => {
    const m = await agent.metrics();
    return [0, 1].map((i) => metricValue(m, 'swarmnet_relay_thread_connections_total', `thread="${i}"`) ?? 0);
  };
  // The kernel wakes an idle thread first: a burst finds one busy and hands the next to the other.
  const before = await accepted();
  const grew = async () => (await accepted()).map((n, i) => n - before[i]!);
  for (let burst = 0; burst < 10 && (burst === 0 || (await grew()).some((n) => n === 0)); burst++) {
    const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => tcpRequest(agent.ingress, 22001, `b${burst}-${i}`)));
    picks.push(...replies.map(who));
  }
  const [a, b] = await grew();
  t.ok(a! > 0 && b! > 0, `both threads accepted connections (${a}, ${b})`);
  const c = countBy(picks);
  const m = await agent.metrics();
  t.equal(metricValue(m, 'swarmnet_service_retries_total', 'service="spread"'), 0, 'no connection needed a retry');
  t.same([c.get('t1'), c.get('t2'), c.get('t3')], Array(3).fill(picks.length / 3), 'one round robin across threads');
});

t.test('a burst of persistent connections is shared by both threads (a listener per thread)', async (t) => {
  await service('keep', 22006, 'rr');
  const active = async () => {
    const m = await agent.metrics();
    return [0, 1].map((i) => metricValue(m, 'swarmnet_relay_thread_connections_active', `thread="${i}"`) ?? 0);
  };
  const base = await active();
  // 50 keep-alive connections opened at once, as wrk -c50 does. One listening socket in both
  // threads' epoll sets (EPOLLEXCLUSIVE) gave 48 and 2: the first idle waiter accepted the burst.
  const conns = await Promise.all(Array.from({ length: 50 }, () => openConn(agent.ingress, 22006)));
  t.teardown(() => conns.forEach((c) => c.close()));
  const replies = await Promise.all(conns.map((c, i) => c.ask(`k${i}`)));
  t.equal(replies.length, 50, 'every connection answered');
  const [a, b] = (await active()).map((n, i) => n - base[i]!);
  t.equal(a! + b!, 50, `50 relays open (${a} + ${b})`);
  // SO_REUSEPORT hashes each connection's addresses: an even split is binomial(50, 1/2), and
  // fewer than 10 on one side has a probability under 1e-5.
  t.ok(a! >= 10 && b! >= 10, `both threads hold a share: ${a} and ${b}`);
});

t.test('sh and mh in C pick what the JavaScript schedulers pick', async (t) => {
  for (const [lb, port] of [['sh', 22002], ['mh', 22003]] as const) {
    await service(lb, port, lb);
    const tasks = JSON.parse(await agent.ok('task', 'ls', '--format', 'json')) as Array<{ id: string; name: string }>;
    const backends = tasks
      .filter((x) => x.name.startsWith(`${lb}-`))
      .map((x) => new Backend({ id: x.id, name: x.name.replace(`${lb}-`, ''), host: bip, port: 0, weight: 1, node: '', eligible: true }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    t.equal(backends.length, 3);
    const js = createScheduler(lb);
    js.rebuild(backends);
    for (let h = 10; h < 40; h++) {
      const want = js.pick({ srcIp: ip(h), srcPort: 0 }, () => true)!.spec.name;
      t.equal(who(await tcpRequest(agent.ingress, port, 'hi', { localAddress: ip(h) })), want, `${lb}: ${ip(h)}`);
    }
  }
});

t.test('a port re-opened with other settings while old connections drain', async (t) => {
  await service('reopen', 22005, 'rr');
  const conn = await openConn(agent.ingress, 22005);
  t.match(await conn.ask('before'), /^t\d /);
  t.equal((await agent.cli('service', 'update', '--proxy-protocol', 'v1', 'reopen')).code, 0);
  t.match(await tcpRequest(agent.ingress, 22005, 'hi', { localAddress: ip(60) }), new RegExp(`^t\\d v1 ${ip(60).replace(/\./g, '\\.')}:\\d+$`), 'the new listener sends PROXY v1');
  t.match(await conn.ask('after'), /^t\d /, 'the connection of the old listener still relays');
  const flows = JSON.parse(await agent.ok('conn', 'ls', '--service', 'reopen', '--format', 'json')) as Array<{ state: string; backendName: string }>;
  t.ok(flows.some((f) => f.state === 'ESTABLISHED' && /^reopen-t\d$/.test(f.backendName)), 'conn ls lists the old listener\'s connection');
  conn.close();
});

t.test('UDP flows from many source ports spread over both engine threads, all answered', async (t) => {
  t.equal((await agent.cli('service', 'create', '--name', 'udpt', '--publish', '22010:53/udp')).code, 0);
  t.equal((await agent.cli('task', 'add', '--service', 'udpt', '--addr', `${bip}:9501`, '--name', 'udpt-t1')).code, 0);
  const before = (await agent.metrics()).split('\n');
  const taken = (lines: string[], thread: number) => metricValue(lines.join('\n'), 'swarmnet_udp_thread_flows_total', `thread="${thread}"`) ?? 0;
  // Each request from a socket of its own: a new source port, a new flow, hashed by the kernel to one thread.
  const replies = await Promise.all(Array.from({ length: 64 }, (_, i) => udpRequest(agent.ingress, 22010, `q${i}`)));
  t.same(replies, Array.from({ length: 64 }, (_, i) => `t1 q${i}`), 'every flow answered');
  const after = (await agent.metrics()).split('\n');
  const [a, b] = [0, 1].map((i) => taken(after, i) - taken(before, i));
  t.equal(a! + b!, 64, 'each flow counted once, by one thread');
  t.ok(a! > 0 && b! > 0, `both threads took flows (${a}, ${b})`);
  const udp = threadsOf(agent.child.pid!).filter((x) => x.comm === 'swarmnet-udp');
  t.equal(udp.length, 2, 'two UDP engine threads');
  if (customSlices) t.same(udp.map((x) => x.slice), [100_000, 100_000], 'UDP engine threads: a 100 us slice');
});
