/**
 * Liveness across machines whose wall clocks differ: two namespace-hosts, NATS on
 * host1, the agent of host2 under libfaketime 120 s ahead. Each agent judges the
 * other by when its heartbeats arrive, on its own monotonic clock, so both see both
 * ready and route to each other's tasks; a killed agent goes down on time on the
 * other, whether its clock was ahead (case 1) or behind (case 2).
 *
 * Node listings read the store (NatsStore.list, KV keys()), which now and then never
 * answers under steady heartbeat writes: a listing that does not answer in time is
 * counted and asked again, never taken for a verdict either way.
 */
import t, { type Test, type TestOpts } from 'tap';
import type { BuiltPlugins } from '@tapjs/test';
import { createTopology, type Host } from '../helpers/netns.js';
import { startNats } from '../helpers/nats.js';
import { startBackends, startHostAgent, type AgentProc } from '../helpers/procs.js';
import { sleep, tcpRequest, until } from '../helpers/net.js';

const TIMEOUT_MS = 3000;
const SKEW_MS = 120_000;
/** Down must be seen within the timeout plus this (a heartbeat tick, the look itself). */
const SLACK_MS = 2000;
/** A listing through the API that takes longer than this is given up (see above). */
const LISTING_MS = 1000;
const PORT = 30080;
/** libfaketime shifts the wall clock only: monotonic time (timers, liveness) stays true. */
const FAKETIME = {
  LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1',
  FAKETIME: `+${SKEW_MS / 1000}s`,
  FAKETIME_DONT_FAKE_MONOTONIC: '1',
};

/** Processes restarted inside a subtest must outlive it: their teardown belongs to the file. */
const root = t;
const topo = createTopology(t, 2);
const [h1, h2] = topo.hosts as [Host, Host];
const nats = await startNats(t, h1.ip, 4222, undefined, [], h1.spawn);
/** host2 as the agent sees it: every process spawned there runs 120 s ahead. */
const h2Ahead: Host = { ...h2, spawn: (cmd, args, env) => h2.spawn(cmd, args, { ...env, ...FAKETIME }) };
const agentArgs = ['--node-timeout', `${TIMEOUT_MS / 1000}s`];
const startHost1 = () => startHostAgent(root, h1, { nats: nats.url, nodeId: 'host1', args: agentArgs });
const startHost2 = () => startHostAgent(root, h2Ahead, { nats: nats.url, nodeId: 'host2', args: agentArgs });
let a1 = await startHost1();
let a2 = await startHost2();
await startBackends(t, [`t1@${h1.ip}:9000`], h1.spawn);
await startBackends(t, [`t2@${h2.ip}:9000`], h2.spawn);

type T = Test<BuiltPlugins, TestOpts> & BuiltPlugins;

interface NodeRow {
  id: string;
  status: string;
  lastSeen: number;
  heardMsAgo?: number;
}

const sorted = (rows: NodeRow[]) => rows.sort((x, y) => x.id.localeCompare(y.id));
const summary = (rows: NodeRow[] | undefined) => (rows ? rows.map((n) => `${n.id}=${n.status}`).join(' ') : 'no answer');

/** `node ls --format json` on `a`; undefined when it fails (a listing that never answered). */
async function nodeLs(a: AgentProc): Promise<NodeRow[] | undefined> {
  const r = await a.cli('node', 'ls', '--format', 'json');
  return r.code === 0 ? sorted(JSON.parse(r.stdout) as NodeRow[]) : undefined;
}

/** The API's node listing on `a` (faster than a CLI run); undefined when it does not answer in time. */
async function listing(a: AgentProc): Promise<NodeRow[] | undefined> {
  const req = a.request('GET', '/v1/nodes');
  req.catch(() => undefined); // given up on: its end (the agent killed) is of no interest
  const res = await Promise.race([req, sleep(LISTING_MS).then(() => undefined)]);
  return res?.status === 200 ? sorted(JSON.parse(res.text) as NodeRow[]) : undefined;
}

/** `node ls` on `a`, asked again while it does not answer. */
async function nodes(a: AgentProc): Promise<NodeRow[]> {
  for (let i = 0; i < 3; i++) {
    const rows = await nodeLs(a);
    if (rows) return rows;
  }
  throw new Error(`node ls on ${a.api} did not answer three times`);
}

const ask = (host: string) => tcpRequest(host, PORT, 'hello', { timeoutMs: 2000 }).then((r) => r.split(' ')[0]!, () => '');

async function served(host: string, n = 10): Promise<string[]> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await ask(host));
  return [...seen].sort();
}

/**
 * Both agents see both nodes ready, continuously, for well past the node timeout:
 * `node ls` on each, and the API's listing looked at more often in between (a CLI run
 * takes about a second here) so that a short flap to down cannot slip between two looks.
 */
async function bothReadyThroughout(t: T, forMs: number): Promise<void> {
  const want = 'host1=ready host2=ready';
  for (const a of [a1, a2]) await until(`both ready on ${a.api}`, async () => summary(await nodeLs(a)) === want, 15000, async () => summary(await nodeLs(a)));
  const wrong: string[] = [];
  const end = Date.now() + forMs;
  const watch = async (name: string, look: () => Promise<NodeRow[] | undefined>) => {
    let answered = 0;
    let unanswered = 0;
    while (Date.now() < end) {
      const rows = await look();
      if (!rows) unanswered++;
      else {
        answered++;
        if (summary(rows) !== want) wrong.push(`${name} saw ${summary(rows)}`);
      }
      await sleep(100);
    }
    return { name, answered, unanswered };
  };
  const looks = await Promise.all([watch('host1 node ls', () => nodeLs(a1)), watch('host2 node ls', () => nodeLs(a2)), watch('host1 API', () => listing(a1)), watch('host2 API', () => listing(a2))]);
  const counts = looks.map((l) => `${l.name} ${l.answered}${l.unanswered ? ` (+${l.unanswered} unanswered)` : ''}`).join(', ');
  t.same(wrong, [], `both nodes ready on both agents for ${forMs} ms: ${counts}`);
  t.ok(
    looks.every((l) => l.answered >= (l.name.endsWith('API') ? 10 : 1)),
    'enough looks answered on each agent',
  );
}

/** The wall clock of host2's agent really is 120 s ahead: as the lastSeen it writes shows. */
async function skewIsReal(t: T): Promise<void> {
  const rows = await nodes(a1);
  const now = Date.now();
  const offset = (id: string) => rows.find((n) => n.id === id)!.lastSeen - now;
  t.ok(Math.abs(offset('host1')) < 10_000, `host1 stamps its beats with our clock (${offset('host1')} ms)`);
  t.ok(Math.abs(offset('host2') - SKEW_MS) < 10_000, `host2 stamps its beats ${SKEW_MS / 1000} s ahead (${offset('host2')} ms)`);
  for (const [name, a] of [['host1', a1], ['host2', a2]] as const) {
    const ago = (await nodes(a)).map((n) => `${n.id}:${n.heardMsAgo !== undefined && n.heardMsAgo < TIMEOUT_MS}`).join(' ');
    t.equal(ago, 'host1:true host2:true', `${name} shows when it last received each node's beat, on its own clock`);
  }
}

/**
 * SIGKILLs `victim`; resolves with how long `observer` took to show it down. Timed on
 * the API's listing (a CLI run takes about a second here), then confirmed by `node ls`.
 */
async function killAndTimeDown(t: T, victim: AgentProc, victimId: string, observer: AgentProc): Promise<number> {
  const exited = new Promise((r) => victim.child.once('exit', r));
  process.kill(victim.child.pid!, 'SIGKILL');
  await exited;
  const killed = Date.now();
  const down = async () => (await listing(observer))?.find((n) => n.id === victimId)?.status === 'down';
  await until(`${victimId} down`, down, TIMEOUT_MS + SLACK_MS + 10_000, async () => summary(await listing(observer)), 50);
  const took = Date.now() - killed;
  t.match(summary(await nodes(observer)), `${victimId}=down`, `node ls shows ${victimId} down`);
  return took;
}

t.test('setup: a service with a task on each host', async (t) => {
  await a1.ok('service', 'create', '--name', 'web', '--publish', `${PORT}:9000`);
  await a1.ok('task', 'add', '--service', 'web', '--addr', `${h1.ip}:9000`, '--node', 'host1');
  await a2.ok('task', 'add', '--service', 'web', '--addr', `${h2.ip}:9000`, '--node', 'host2');
  t.pass('registered');
});

t.test('case 1: agents 120 s apart see each other ready; the one ahead is killed and goes down on time', async (t) => {
  await skewIsReal(t);
  await bothReadyThroughout(t, 3 * TIMEOUT_MS);
  for (const h of [h1, h2]) {
    await until(`${h.ip} serves both tasks`, async () => (await served(h.ip)).join() === 't1,t2', 15000, async () => (await served(h.ip)).join());
    t.same(await served(h.ip), ['t1', 't2'], `the mesh on ${h.ns} serves the tasks of both nodes`);
  }
  const took = await killAndTimeDown(t, a2, 'host2', a1);
  t.ok(took <= TIMEOUT_MS + SLACK_MS, `host1 shows host2 (clock ahead) down ${took} ms after the kill`);
  t.ok(took >= TIMEOUT_MS - 1000, `not before its timeout, less the heartbeat in flight at the kill (${took} ms)`);
  await until('host2 out of rotation on host1', async () => (await served(h1.ip)).join() === 't1', SLACK_MS + 2000, async () => (await served(h1.ip)).join());
  t.pass('host1 sends everything to its own task');
});

t.test('case 2: the agent behind is killed; the one ahead sees it down on time', async (t) => {
  a2 = await startHost2();
  await skewIsReal(t);
  await bothReadyThroughout(t, 3 * TIMEOUT_MS);
  await until(`${h2.ip} serves both tasks`, async () => (await served(h2.ip)).join() === 't1,t2', 15000, async () => (await served(h2.ip)).join());
  t.pass('host2 (ahead) routes to the task on host1 (behind)');
  const took = await killAndTimeDown(t, a1, 'host1', a2);
  t.ok(took <= TIMEOUT_MS + SLACK_MS, `host2 shows host1 (clock behind) down ${took} ms after the kill`);
  t.ok(took >= TIMEOUT_MS - 1000, `not before its timeout, less the heartbeat in flight at the kill (${took} ms)`);
  await until('host1 out of rotation on host2', async () => (await served(h2.ip)).join() === 't2', SLACK_MS + 2000, async () => (await served(h2.ip)).join());
  t.pass('host2 sends everything to its own task');
  a1 = await startHost1();
  await until('host1 back: ready on host2', async () => summary(await nodeLs(a2)) === 'host1=ready host2=ready', 15000, async () => summary(await nodeLs(a2)));
  t.pass('a restarted node is ready again on the other');
});
