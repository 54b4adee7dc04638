/**
 * The native UDP engine (native/src/udp.c) in a real agent: the flow bound and its
 * early drop under a flood from 30,000 source ports (established flows stay answered,
 * file descriptors stay bounded), failover on ICMP port unreachable, idle expiry, and
 * odd input that must never take the agent down.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import t from 'tap';
import { loopbackNet, metricValue, runCli, startAgent, startBackends, type AgentProc } from '../helpers/procs.js';
import { openUdp, sleep, udpRequest, until } from '../helpers/net.js';
import { sendUdp4, type Udp4 } from '../helpers/rawsend.js';

const MAX_FLOWS = 500;
const UDP_SOCKETS = 1000;
const FLOOD_PORTS = 30_000;
/** Flood sources: ports below the ephemeral range, from an address of this test's /24. */
const FLOOD_PORT_FIRST = 1024;

const ip = loopbackNet();
const agent = await startAgent(t, { ip: ip(1), args: ['--udp-timeout', '3s', '--max-flows', String(MAX_FLOWS), '--udp-sockets', String(UDP_SOCKETS)] });
await startBackends(t, [`u1@${ip(2)}:5401`, `u2@${ip(2)}:5402`]);

/** A task that takes datagrams and never answers (its port is open: no ICMP error). */
const sink: Socket = createSocket('udp4');
let sunk = 0;
sink.on('message', () => sunk++);
await new Promise<void>((resolve) => sink.bind(5409, ip(3), resolve));
t.teardown(() => sink.close());

const fds = () => readdirSync(`/proc/${agent.child.pid}/fd`).length;
const metric = async (name: string, labels = '') => metricValue(await agent.metrics(), name, labels) ?? NaN;

/** One datagram from each of `count` source ports of `src` (from FLOOD_PORT_FIRST + first) to the agent's port. */
function flood(port: number, count: number, src = ip(9), first = 0): Promise<void> {
  const d: Udp4[] = [];
  for (let i = first; i < first + count; i++) d.push({ src, dst: agent.ingress, sport: FLOOD_PORT_FIRST + i, dport: port, payload: Buffer.from(`f${i}`) });
  return sendUdp4(d);
}

async function service(a: AgentProc, name: string, port: number, ...tasks: string[]): Promise<void> {
  await a.ok('service', 'create', '--name', name, '--publish', `${port}:53/udp`);
  for (const task of tasks) await a.ok('task', 'add', '--service', name, '--addr', task);
}

t.test('the agent runs UDP on the native engine', async (t) => {
  await service(agent, 'live', 6001, `${ip(2)}:5401`);
  t.equal(await udpRequest(agent.ingress, 6001, 'hello'), 'u1 hello');
  t.equal(await metric('swarmnet_udp_flows'), 1, 'the flow is in the C table');
});

t.test('bursts on one flow are all forwarded across the engine\'s receive coalescing, and a lone datagram after them', async (t) => {
  // A pass that moves 8 datagrams or more is followed by a pause in which the engine's
  // fd is not polled (native/src/addon_udp.c, COALESCE_*): the datagrams that arrive
  // meanwhile must be taken by the next pass, never left in the socket.
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  t.teardown(() => s.close());
  const got = new Set<string>();
  s.on('message', (m) => got.add(m.toString()));
  const WAVES = 3;
  const BURST = 100;
  for (let w = 0; w < WAVES; w++) {
    for (let i = 0; i < BURST; i++) s.send(`b${w}.${i}`, 6001, agent.ingress);
    await until(`wave ${w} answered`, async () => got.size >= (w + 1) * BURST, 5000, async () => `${got.size} answers`, 10);
  }
  t.equal(got.size, WAVES * BURST, 'every datagram of every burst answered');
  t.ok(got.has(`u1 b${WAVES - 1}.${BURST - 1}`), 'answers come from the task');
  const lone = await openUdp(agent.ingress, 6001);
  t.teardown(() => lone.close());
  t.equal((await lone.ask('after')).toString(), 'u1 after', 'a lone datagram after the bursts is answered');
});

t.test('a flood of unanswered flows: the established flow stays answered, drops are counted, fds bounded', async (t) => {
  await service(agent, 'sink', 6002, `${ip(3)}:5409`);
  const est = await openUdp(agent.ingress, 6001);
  t.teardown(() => est.close());
  t.equal((await est.ask('e0')).toString(), 'u1 e0', 'established flow answered');
  const before = fds();
  const rx = await metric('swarmnet_udp_datagrams_total', 'direction="rx"');

  const flooding = flood(6002, FLOOD_PORTS);
  // The established flow is answered while the flood goes on, and after it.
  let asked = 0;
  let answered = 0;
  while (!(await Promise.race([flooding.then(() => true), sleep(50).then(() => false)]))) {
    const q = `d${asked++}`;
    if ((await est.ask(q).catch(() => Buffer.alloc(0))).toString() === `u1 ${q}`) answered++;
  }
  await flooding;
  t.ok(asked > 0 && answered >= asked * 0.9, `answered during the flood (${answered} of ${asked} exchanges)`);
  t.equal((await est.ask('e1')).toString(), 'u1 e1', 'answered after the flood');

  await until('the agent to take the flood in', async () => (await metric('swarmnet_udp_datagrams_total', 'direction="rx"')) - rx >= FLOOD_PORTS * 0.9, 10_000);
  t.ok(sunk > 0, `the flood reached the sink task (${sunk} datagrams)`);
  const flows = await metric('swarmnet_udp_flows');
  t.ok(flows <= MAX_FLOWS, `flows bounded by --max-flows (${flows} <= ${MAX_FLOWS})`);
  const early = await metric('swarmnet_udp_flows_dropped_total', 'reason="early_drop"');
  t.ok(early >= (FLOOD_PORTS - MAX_FLOWS) * 0.9, `unanswered flows dropped early and counted (${early})`);
  t.equal(await metric('swarmnet_udp_flows_dropped_total', 'reason="table_full"'), 0, 'no new flow refused: there was always an unanswered one to drop');
  const after = fds();
  t.ok(after - before <= UDP_SOCKETS, `fds bounded by --udp-sockets: ${before} before, ${after} after the flood of ${FLOOD_PORTS} flows`);
  t.ok((await metric('swarmnet_udp_upstream_sockets')) <= MAX_FLOWS, 'no more upstream sockets than flows toward the task');

  // A new client on a table full of unanswered flows takes an unanswered one's place.
  t.equal(await udpRequest(agent.ingress, 6001, 'newcomer'), 'u1 newcomer', 'a new flow is admitted by early drop');
});

t.test('a flood of answered flows fills the table: new flows are refused and counted, established ones answered', async (t) => {
  const est = await openUdp(agent.ingress, 6001);
  t.teardown(() => est.close());
  t.equal((await est.ask('a0')).toString(), 'u1 a0');
  // In steps, so the task's answers keep up and the table fills with answered flows.
  for (let i = 0; i < 20; i++) {
    await flood(6001, MAX_FLOWS / 10, ip(8), (i * MAX_FLOWS) / 10);
    await sleep(50);
  }
  await until('the table full of answered flows', async () => (await metric('swarmnet_udp_flows_dropped_total', 'reason="table_full"')) > 0, 10_000);
  t.equal((await est.ask('a1')).toString(), 'u1 a1', 'the established flow is still answered');
  t.ok((await metric('swarmnet_udp_flows')) <= MAX_FLOWS, 'still bounded');
  // Answered flows are never dropped for new ones (nf_conntrack's early_drop spares them too): they expire.
  await until('the answered flood to expire (--udp-timeout 3s)', async () => (await metric('swarmnet_udp_flows')) <= 2, 15_000, async () => `flows ${await metric('swarmnet_udp_flows')}`, 500);
  t.equal(await udpRequest(agent.ingress, 6001, 'later'), 'u1 later', 'room again once they expired');
});

t.test('ICMP port unreachable: the task backs off and the flow moves, its datagram replayed', async (t) => {
  // rr: the first new flow goes to the first task by id; the dead one is tried by some flow.
  await service(agent, 'icmp', 6003, `${ip(2)}:5499`, `${ip(2)}:5402`);
  const replayed = await metric('swarmnet_udp_replays_total', 'result="sent"');
  const clients = [await openUdp(agent.ingress, 6003), await openUdp(agent.ingress, 6003)];
  t.teardown(() => clients.forEach((c) => c.close()));
  // rr alternates between the two tasks, so one of two new flows meets the closed port.
  const replies = await Promise.all(clients.map((c, i) => c.ask(`q${i}`)));
  // Read at once: back-off lasts 1 s after a first failure.
  const m = await agent.metrics();
  t.same(replies.map(String), ['u2 q0', 'u2 q1'], 'both flows answered by the live task');
  const dead = `service="icmp",protocol="udp",port="6003",backend="${ip(2)}:5499",task="icmp.1"`;
  t.equal(metricValue(m, 'swarmnet_backend_up', dead), 0, 'the dead task is backing off');
  t.ok((metricValue(m, 'swarmnet_backend_errors_total', `${dead},kind="refused"`) ?? 0) >= 1, 'the dead task counted a refusal');
  t.equal(metricValue(m, 'swarmnet_backend_retries_total', dead), metricValue(m, 'swarmnet_backend_errors_total', `${dead},kind="refused"`), 'each refused flow moved away from the dead task, counted on it');
  t.ok((metricValue(m, 'swarmnet_udp_replays_total', 'result="sent"') ?? 0) > replayed, 'the unanswered datagram was replayed to the live task');
  t.ok((metricValue(m, 'swarmnet_udp_icmp_errors_total') ?? 0) >= 1, 'the ICMP error was read');
  for (const [i, cl] of clients.entries()) t.equal((await cl.ask(`again${i}`)).toString(), `u2 again${i}`, 'the moved flow stays on the live task');
  // Through the API rather than the CLI: a loaded machine can take longer than --udp-timeout to start one.
  const conns = JSON.parse((await agent.request('GET', '/v1/conns?service=icmp')).text) as Array<{ backend: string; bytesIn: number }>;
  t.equal(conns.length, 2, 'two flows listed');
  t.ok(conns.every((f) => f.backend === `${ip(2)}:5402`), 'both on the live task in the connection table');
});

t.test('a task killed under an answered flow: the next datagrams go to another task', async (t) => {
  const dying = await startBackends(t, [`d1@${ip(4)}:5403`]);
  await service(agent, 'dies', 6004, `${ip(4)}:5403`);
  const c = await openUdp(agent.ingress, 6004);
  t.teardown(() => c.close());
  t.equal((await c.ask('x')).toString(), 'd1 x', 'the flow on its task');
  await agent.ok('task', 'add', '--service', 'dies', '--addr', `${ip(2)}:5401`);
  dying.kill();
  await sleep(200);
  // The first datagram after the kill meets the closed port (answered flows are not
  // replayed: the application resends, as it would on any lost datagram).
  const reply = await c.ask('y', 1000).catch(() => c.ask('y2'));
  t.match(reply.toString(), /^u1 y2?$/, 'the flow moved to the live task');
});

t.test('idle flows expire in C', async (t) => {
  await until('every flow idle past --udp-timeout to expire', async () => (await metric('swarmnet_udp_flows')) === 0, 15_000, async () => `flows ${await metric('swarmnet_udp_flows')}`, 500);
  const conns = JSON.parse(await agent.ok('conn', 'ls', '--format', 'json')) as unknown[];
  t.equal(conns.length, 0, 'the connection table is empty');
  t.equal(await metric('swarmnet_service_connections_active', 'service="live"'), 0, 'service counters follow');
});

t.test('odd input never takes the agent down', async (t) => {
  t.equal(await udpRequest(agent.ingress, 6001, ''), 'u1 ', 'an empty datagram is forwarded');
  const big = 'b'.repeat(60_000);
  t.equal((await udpRequest(agent.ingress, 6001, big)).length, 3 + big.length, 'a 60,000-byte datagram goes whole both ways');
  const bad = await metric('swarmnet_udp_datagrams_dropped_total', 'reason="bad_source"');
  await sendUdp4({ src: ip(9), dst: agent.ingress, sport: 0, dport: 6001, payload: Buffer.from('port zero') });
  await until('the datagram from port 0 to be dropped and counted', async () => (await metric('swarmnet_udp_datagrams_dropped_total', 'reason="bad_source"')) === bad + 1, 5000);
  // Strangers writing to the engine's upstream sockets (found through /proc) are dropped.
  const stray = await metric('swarmnet_udp_datagrams_dropped_total', 'reason="stray"');
  const ports = upstreamPorts(agent.child.pid!);
  t.ok(ports.length > 0, `upstream sockets found (${ports.length})`);
  await sendUdp4(ports.slice(0, 50).map((p) => ({ src: ip(9), dst: ip(1), sport: 4000, dport: p, payload: Buffer.from('stranger') })));
  await until('stray datagrams counted', async () => (await metric('swarmnet_udp_datagrams_dropped_total', 'reason="stray"')) > stray, 5000);
  t.equal(await udpRequest(agent.ingress, 6001, 'still'), 'u1 still', 'the agent still answers');
  t.equal(agent.child.exitCode, null, 'the agent is running');
});

t.test('--max-flows: a bad value is refused, naming the flag', async (t) => {
  for (const v of ['0', 'lots']) {
    const r = await runCli(agent.api, ['agent', '--max-flows', v, '--data-dir', agent.dataDir, '--socket', `${agent.dataDir}/other.sock`]);
    t.not(r.code, 0, `--max-flows ${v}: non-zero exit`);
    t.match(r.stderr, /^swarmnet: --max-flows: /, 'one line naming the flag');
  }
});

t.test('the JS fallback (--no-native-relay) keeps the same bound: a socket per flow, at most --max-flows', async (t) => {
  const js = await startAgent(t, { ip: ip(5), args: ['--no-native-relay', '--udp-timeout', '30s', '--max-flows', '50'] });
  await service(js, 'live', 6001, `${ip(2)}:5401`);
  await service(js, 'sink', 6002, `${ip(3)}:5409`);
  const est = await openUdp(js.ingress, 6001);
  t.teardown(() => est.close());
  t.equal((await est.ask('j0')).toString(), 'u1 j0');
  const before = readdirSync(`/proc/${js.child.pid}/fd`).length;
  const d: Udp4[] = [];
  for (let i = 0; i < 2000; i++) d.push({ src: ip(9), dst: js.ingress, sport: FLOOD_PORT_FIRST + i, dport: 6002, payload: Buffer.from(`f${i}`) });
  await sendUdp4(d);
  const m = (name: string, labels = '') => js.metrics().then((text) => metricValue(text, name, labels) ?? NaN);
  // The JS listener loses part of a flood in its socket buffer; what it takes past 50 flows is dropped early.
  await until('the JS flood to be dropped early', async () => (await m('swarmnet_udp_flows_dropped_total', 'reason="early_drop"')) > 0, 10_000);
  await sleep(1000);
  t.ok((await m('swarmnet_udp_flows')) <= 50, `flows bounded (${await m('swarmnet_udp_flows')}, ${await m('swarmnet_udp_flows_dropped_total', 'reason="early_drop"')} early drops)`);
  const after = readdirSync(`/proc/${js.child.pid}/fd`).length;
  t.ok(after - before <= 50, `fds bounded (${before} before, ${after} after 2000 flows)`);
  t.equal((await est.ask('j1')).toString(), 'u1 j1', 'the established flow is still answered');
});

t.test('the JS fallback fails over from a closed port too, counting the retry on the dead task', async (t) => {
  const js = await startAgent(t, { ip: ip(6), args: ['--no-native-relay'] });
  await service(js, 'jicmp', 6004, `${ip(2)}:5499`, `${ip(2)}:5401`);
  const clients = [await openUdp(js.ingress, 6004), await openUdp(js.ingress, 6004)];
  t.teardown(() => clients.forEach((c) => c.close()));
  t.same((await Promise.all(clients.map((c, i) => c.ask(`k${i}`)))).map(String), ['u1 k0', 'u1 k1'], 'both flows answered by the live task');
  const dead = `service="jicmp",protocol="udp",port="6004",backend="${ip(2)}:5499",task="jicmp.1"`;
  t.ok((metricValue(await js.metrics(), 'swarmnet_backend_retries_total', dead) ?? 0) >= 1, 'a flow moved away from the dead task');
});

/** Local ports of the UDP sockets the agent has bound to any address (the engine's pool). */
function upstreamPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const line of readFileSync(`/proc/${pid}/net/udp`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !inodes.has(f[9]!)) continue;
    const [addr, port] = f[1]!.split(':');
    if (addr === '00000000') ports.push(parseInt(port!, 16));
  }
  return ports;
}
