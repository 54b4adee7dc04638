/**
 * The event log and what turns changes into events (src/agent/events), on fakes of the
 * view and the mesh: the data shapes are the real ones, the clock and the states scripted.
 */
import t from 'tap';
import { EventBus, EVENT_RING, matches } from '../../src/agent/events/bus.js';
import { EventWatcher } from '../../src/agent/events/watch.js';
import { parseEventQuery } from '../../src/agent/events/stream.js';
import { parseFilters, parseTime } from '../../src/cli/events.js';
import type { View } from '../../src/control/view.js';
import type { Mesh, BackendStats } from '../../src/mesh/index.js';
import type { KeyRing, Node } from '../../src/control/schema.js';

t.test('the bus keeps the last EVENT_RING events, numbered, and filters as docker does', async (t) => {
  let clock = 1_000;
  const bus = new EventBus(() => clock);
  for (let i = 0; i < EVENT_RING + 5; i++) {
    clock += 10;
    bus.emit({ type: i % 2 ? 'task' : 'service', action: i % 3 ? 'up' : 'down', id: `id${i}`, name: `n${i}`, attributes: { service: 'web' } });
  }
  const kept = bus.since(0);
  t.equal(kept.length, EVENT_RING, 'bounded');
  t.equal(kept[0]!.seq, 6, 'the oldest went first');
  t.equal(kept.at(-1)!.seq, EVENT_RING + 5);
  t.equal(bus.since(clock - 25).length, 3, 'since is inclusive, by time');
  const e = kept.at(-1)!;
  t.ok(matches(e, { type: ['task', 'service'] }), 'values of one key are OR-ed');
  t.notOk(matches(e, { type: [e.type], action: ['nope'] }), 'keys are AND-ed');
  t.ok(matches({ ...e, type: 'task' }, { service: ['web'] }), 'service matches a task by its attribute');
  t.notOk(matches({ ...e, type: 'task', attributes: {} }, { service: ['web'] }), 'and not a task of another');
  t.ok(matches({ ...e, type: 'service', name: 'web', attributes: {} }, { service: ['web'] }), 'and a service by its name');
  const got: number[] = [];
  const off = bus.subscribe((x) => got.push(x.seq));
  bus.emit({ type: 'node', action: 'ready', id: 'n', name: 'n' });
  off();
  bus.emit({ type: 'node', action: 'down', id: 'n', name: 'n' });
  t.same(got, [EVENT_RING + 6], 'subscribers get new events until they leave');
});

t.test('query and CLI parsing', async (t) => {
  t.same(parseEventQuery(new URLSearchParams('since=5&type=task&type=node&action=down')), { since: 5, filter: { type: ['task', 'node'], action: ['down'] } });
  t.throws(() => parseEventQuery(new URLSearchParams('colour=red')), /colour: is not an event filter/);
  t.throws(() => parseEventQuery(new URLSearchParams('since=yesterday')), /since: 'yesterday' is not a time/);
  t.throws(() => parseEventQuery(new URLSearchParams('since=10&until=5')), /until: is before since/);
  const now = Date.UTC(2026, 10, 24, 4, 0, 0);
  t.equal(parseTime('10m', '--since', now), now - 600_000, 'a duration before now');
  t.equal(parseTime('1795492800', '--since', now), 1795492800_000, 'epoch seconds');
  t.equal(parseTime('1795492800.5', '--since', now), 1795492800_500);
  t.equal(parseTime('2026-11-24T03:00:00Z', '--since', now), now - 3_600_000, 'RFC 3339');
  t.throws(() => parseTime('12', '--since', now), /--since: '12' is not a time/);
  t.same(parseFilters(['type=task', 'type=node', 'name=a=b']), { type: ['task', 'node'], name: ['a=b'] }, 'the first = splits');
});

/** A view with the maps the watcher reads and a liveness that says what `status` holds. */
function fakeView() {
  const status = new Map<string, Node['status']>();
  const listeners = new Set<() => void>();
  const view = {
    nodes: new Map<string, Node>(),
    networks: new Map(),
    services: new Map(),
    tasks: new Map(),
    keys: new Map<string, KeyRing>(),
    liveness: { status: (n: Node) => status.get(n.id) ?? n.status },
    onChange: (fn: () => void) => (listeners.add(fn), () => listeners.delete(fn)),
  };
  return { view, status, changed: () => listeners.forEach((fn) => fn()) };
}

const node = (id: string): Node => ({ id, addr: '10.0.0.1', hostname: `host-${id}`, availability: 'active', labels: {}, status: 'ready', lastSeen: 0 }) as unknown as Node;
const ring = (gens: number[], primary: number): KeyRing => ({ network: 'net1', cipher: 'aes-128-gcm', keys: gens.map((gen) => ({ gen, key: 'A'.repeat(43) + '=', createdAt: 0 })), primary }) as KeyRing;
const backend = (name: string, s: Partial<BackendStats>): BackendStats => ({ service: 'web', protocol: 'tcp', port: 80, backend: '10.0.0.5:80', name, active: 0, total: 0, bytesIn: 0, bytesOut: 0, healthy: true, draining: false, backoff: false, errors: {}, connectCounts: new Float64Array(16), connectSeconds: 0, retries: 0, ...s });

t.test('the watcher: nodes, key rings and observed task states become events; what existed at start does not', async (t) => {
  const { view, status, changed } = fakeView();
  let stats: BackendStats[] = [backend('web.1', {})];
  const mesh = { backendStats: () => stats } as unknown as Mesh;
  view.nodes.set('a', node('a'));
  view.keys.set('net1', ring([1], 1));
  const bus = new EventBus();
  const w = new EventWatcher({ view: view as unknown as View, mesh, bus, pollMs: 10 });
  w.start();
  t.teardown(() => w.stop());
  const events = () => bus.since(0).map((e) => `${e.type} ${e.action} ${e.name}${e.attributes.gen ? ` gen=${e.attributes.gen}` : ''}`);
  t.same(events(), [], 'nothing at start');

  view.nodes.set('b', node('b'));
  status.set('a', 'down');
  view.keys.set('net1', ring([1, 2], 1));
  changed();
  view.keys.set('net1', ring([1, 2], 2));
  changed();
  stats = [backend('web.1', { healthy: false })];
  await new Promise((r) => setTimeout(r, 50));
  stats = [backend('web.1', { backoff: true })];
  await new Promise((r) => setTimeout(r, 50));
  stats = [backend('web.1', { draining: true })];
  await new Promise((r) => setTimeout(r, 50));
  view.nodes.delete('b');
  changed();
  t.same(events(), ['node down host-a', 'node join host-b', 'key rotate net1 gen=2', 'key promote net1 gen=2', 'task down web.1', 'task backoff web.1', 'task drain web.1', 'node leave host-b']);
  t.notOk(JSON.stringify(bus.since(0)).includes('A'.repeat(43)), 'no key material in any event');
});
