/**
 * Node liveness as one observer judges it (src/control/liveness.ts), on a scripted
 * monotonic clock: what counts is when beats arrive here, never the lastSeen they carry.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore, Liveness, View, type Node } from '../../src/control/index.js';

const TIMEOUT = 3000;
const HEARTBEAT = 500;
const HOLD = 2 * HEARTBEAT;
/** The observer's wall clock, as far as the records below are concerned. */
const WALL = 1_800_000_000_000;

type Status = Node['status'];
type Step =
  /** A record of node `beat` arrives at monotonic time `at`. */
  | { at: number; beat: string; lastSeen: number; status?: Status; availability?: Node['availability'] }
  /** The observer's judgement of each node at `at`. */
  | { at: number; expect: Record<string, Status> }
  | { at: number; forget: string };

const record = (id: string, lastSeen: number, status: Status = 'ready', availability: Node['availability'] = 'active'): Node => ({
  id,
  addr: '10.0.0.1',
  hostname: id,
  availability,
  labels: {},
  status,
  lastSeen,
});

/** Node `id` beats every heartbeat in [from, to], stamping `stamp(at)` as its lastSeen. */
function beats(id: string, from: number, to: number, stamp: (at: number) => number): Step[] {
  const out: Step[] = [];
  for (let at = from; at <= to; at += HEARTBEAT) out.push({ at, beat: id, lastSeen: stamp(at) });
  return out;
}

/** The observer ("me") hears its own beats, stamped with its own wall clock. */
const mine = (from: number, to: number) => beats('me', from, to, (at) => WALL + at);

interface Case {
  name: string;
  steps: Step[];
}

const cases: Case[] = [
  {
    name: 'skewed lastSeen values make no difference: every beat that arrives counts',
    steps: [
      ...mine(0, 20000),
      ...beats('ahead', 0, 20000, (at) => WALL + 120_000 + at),
      ...beats('behind', 0, 20000, (at) => WALL - 120_000 + at),
      ...beats('epoch', 0, 20000, (at) => at),
      // A clock stepped back mid-run: the stamp went down, it is still a new beat.
      ...beats('stepped', 0, 10000, (at) => WALL + at),
      ...beats('stepped', 10500, 20000, (at) => WALL - 3_600_000 + at),
      { at: 20001, expect: { me: 'ready', ahead: 'ready', behind: 'ready', epoch: 'ready', stepped: 'ready' } },
    ],
  },
  {
    name: 'silence past the timeout -> down, whatever the last stamp said',
    steps: [
      ...mine(0, 20000),
      ...beats('ahead', 0, 5000, (at) => WALL + 3_600_000 + at),
      ...beats('behind', 0, 5000, (at) => WALL - 3_600_000 + at),
      { at: 5000 + TIMEOUT - 1, expect: { ahead: 'ready', behind: 'ready' } },
      { at: 5000 + TIMEOUT, expect: { me: 'ready', ahead: 'down', behind: 'down' } },
      { at: 20000, expect: { ahead: 'down', behind: 'down' } },
    ],
  },
  {
    name: 'a node that beats again after being down is ready again',
    steps: [
      ...mine(0, 12000),
      ...beats('b', 0, 1000, (at) => WALL + at),
      { at: 6000, expect: { b: 'down' } },
      ...beats('b', 8000, 12000, (at) => WALL + at),
      { at: 8000, expect: { b: 'ready' } },
    ],
  },
  {
    name: "observer's own beats stalled -> others frozen, not down; the outage is not counted after",
    steps: [
      ...mine(0, 1000),
      ...beats('b', 0, 1000, (at) => WALL + at),
      ...beats('c', 0, 1000, (at) => WALL + at),
      // Our beats stop arriving (our link to the store is down): the judging clock
      // runs on for HOLD after our last one, then stops.
      { at: 60000, expect: { me: 'ready', b: 'ready', c: 'ready' } },
      // Back: the clock resumes at 1000 + HOLD. b is back too; c stays silent and gets
      // the rest of its timeout (TIMEOUT - HOLD of judging time), not zero.
      ...mine(60000, 70000),
      ...beats('b', 60000, 70000, (at) => WALL + at),
      { at: 60000 + TIMEOUT - HOLD - 1, expect: { b: 'ready', c: 'ready' } },
      { at: 60000 + TIMEOUT - HOLD, expect: { me: 'ready', b: 'ready', c: 'down' } },
      { at: 70000, expect: { b: 'ready', c: 'down' } },
    ],
  },
  {
    name: 'own record never arrives (cut off from the start): nobody is judged down',
    steps: [...beats('b', 0, 500, (at) => WALL + at), { at: 600_000, expect: { b: 'ready' } }],
  },
  {
    name: 'initial load: a ready record counts as heard when first seen (grace), then times out',
    steps: [
      ...mine(0, 20000),
      // A node that died long ago, still ready in the store, loaded at start.
      { at: 0, beat: 'dead', lastSeen: 5 },
      { at: TIMEOUT - 1, expect: { dead: 'ready' } },
      { at: TIMEOUT, expect: { dead: 'down' } },
    ],
  },
  {
    name: 'initial load: a record that says down is down at once, until the node beats',
    steps: [
      ...mine(0, 20000),
      { at: 0, beat: 'stopped', lastSeen: WALL, status: 'down' },
      { at: 0, expect: { stopped: 'down' } },
      { at: 4000, expect: { stopped: 'down' } },
      // Its first beat: status ready, any stamp (even the one it had).
      ...beats('stopped', 5000, 9000, () => WALL),
      { at: 5000, expect: { stopped: 'ready' } },
    ],
  },
  {
    name: 'a record rewritten without a new beat (availability, addresses) does not revive a node',
    steps: [
      ...mine(0, 20000),
      { at: 0, beat: 'b', lastSeen: WALL },
      { at: 2500, beat: 'b', lastSeen: WALL, availability: 'drain' },
      { at: TIMEOUT, expect: { b: 'down' } },
    ],
  },
  {
    name: 'removed records keep their status; a forgotten node is down',
    steps: [
      ...mine(0, 20000),
      { at: 0, beat: 'gone', lastSeen: WALL, status: 'removed' },
      { at: 0, beat: 'deleted', lastSeen: WALL },
      { at: 100, forget: 'deleted' },
      { at: 200, expect: { gone: 'removed', deleted: 'down' } },
    ],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    let now = 0;
    const lv = new Liveness({ self: 'me', timeoutMs: TIMEOUT, holdMs: HOLD, now: () => now });
    const records = new Map<string, Node>();
    for (const s of [...c.steps].sort((a, b) => a.at - b.at)) {
      now = s.at;
      if ('beat' in s) {
        const n = record(s.beat, s.lastSeen, s.status, s.availability);
        records.set(n.id, n);
        lv.observe(n);
      } else if ('forget' in s) {
        lv.forget(s.forget);
      } else {
        const got = Object.fromEntries(Object.keys(s.expect).map((id) => [id, lv.status(records.get(id)!)]));
        t.same(got, s.expect, `at ${s.at} ms`);
      }
    }
  });
}

t.test('heardMsAgo: time since the last beat arrived here, on the monotonic clock', async (t) => {
  let now = 1000;
  const lv = new Liveness({ self: 'me', timeoutMs: TIMEOUT, holdMs: HOLD, now: () => now });
  t.equal(lv.heardMsAgo('b'), undefined, 'never heard');
  lv.observe(record('b', WALL + 120_000));
  now = 1700;
  t.equal(lv.heardMsAgo('b'), 700, 'not the 120 s its stamp is ahead');
  lv.observe(record('b', WALL + 120_000));
  now = 1900;
  t.equal(lv.heardMsAgo('b'), 900, 'a record with the same stamp is no new beat');
  lv.observe(record('b', WALL + 120_500));
  t.equal(lv.heardMsAgo('b'), 0);
  // Frozen judging (no beat of our own ever arrives) does not freeze what is shown.
  now = 60_000;
  t.equal(lv.heardMsAgo('b'), 58_100);
  t.equal(lv.status(record('b', 0)), 'ready', 'judgement held while our own beats do not arrive');
});

t.test('View: every node record reaches liveness; a beat alone wakes no consumer', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-liveness-'));
  const store = EmbeddedStore.open(dir);
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  let now = 0;
  await store.put('nodes', 'me', record('me', WALL));
  await store.put('nodes', 'b', record('b', WALL + 120_000));
  const view = new View(store, () => undefined, new Liveness({ self: 'me', timeoutMs: TIMEOUT, holdMs: HOLD, now: () => now }));
  await view.start();
  t.teardown(() => view.stop());
  const settle = () => new Promise((r) => setImmediate(r));
  await settle();
  let changes = 0;
  view.onChange(() => changes++);
  t.equal(view.liveness.status(view.nodes.get('b')!), 'ready', 'loaded nodes start as heard');
  for (let at = 500; at <= 5000; at += 500) {
    now = at;
    await store.put('nodes', 'me', record('me', WALL + now));
    await store.put('nodes', 'b', record('b', WALL + 120_000 + now));
    await settle();
  }
  t.equal(changes, 0, 'heartbeats alone did not wake consumers');
  t.equal(view.liveness.status(view.nodes.get('b')!), 'ready', 'b heard on every beat, 120 s ahead or not');
  t.equal(view.liveness.heardMsAgo('b'), 0);
  // Only our own beats from here on: b falls silent.
  for (let at = 5500; at <= 5000 + TIMEOUT; at += 500) {
    now = at;
    await store.put('nodes', 'me', record('me', WALL + now));
  }
  t.equal(view.liveness.status(view.nodes.get('b')!), 'down', 'silent for the timeout');
  await store.put('nodes', 'b', record('b', WALL + 120_000 + now, 'ready', 'drain'));
  await settle();
  t.equal(changes, 1, 'a real change (availability) wakes consumers');
  t.equal(view.liveness.status(view.nodes.get('b')!), 'ready', 'and carries a new beat');
  await store.delete('nodes', 'b');
  t.equal(view.liveness.heardMsAgo('b'), undefined, 'a deleted node is forgotten');
});
