/** The agent's key rotator (agent/key-rotator.ts) on the embedded store, with a real View and clocks under test control. */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ControlPlane, EmbeddedStore, Liveness, View, type Network } from '../../src/control/index.js';
import { KeyRotator } from '../../src/agent/key-rotator.js';

const settle = () => new Promise((r) => setImmediate(r));

async function setup(t: { teardown(f: () => unknown): void }, rotationMs = 60_000) {
  const d = mkdtempSync(join(tmpdir(), 'swarmnet-rotator-'));
  const store = EmbeddedStore.open(d);
  const p = new ControlPlane(store, 'node1', () => undefined);
  const clocks = { wall: 1_000_000, mono: 0 };
  (p.ctx as { now: () => number }).now = () => clocks.wall;
  await p.nodes.heartbeat({ id: 'node1', addr: '192.0.2.1', hostname: 'h1' });
  await p.nodes.heartbeat({ id: 'node2', addr: '192.0.2.2', hostname: 'h2' });
  const view = new View(store, () => undefined, new Liveness({ self: 'node1', timeoutMs: 10_000, holdMs: 4_000, now: () => clocks.mono }));
  await view.start();
  const lines: Array<{ msg: string; [k: string]: unknown }> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string }) });
  const rotator = new KeyRotator({ plane: p, view, log, rotationMs, now: () => clocks.mono });
  t.teardown(async () => {
    await rotator.stop();
    view.stop();
    await store.close();
    rmSync(d, { recursive: true, force: true });
  });
  /** One check, with the view caught up before and after. */
  const check = async () => {
    await settle();
    await rotator.check();
    await settle();
  };
  const ring = (id: string) => view.keys.get(id);
  return { p, view, rotator, clocks, lines, check, ring };
}

t.test('rotates when the newest key is older than the period, then promotes once installed', async (t) => {
  const { p, clocks, check, ring, rotator, lines } = await setup(t);
  const net = await p.networks.create({ name: 'sec', encrypted: true });
  await p.nodes.patch('node1', (n) => ({ ...n, addresses: [{ network: net.id, ip: '10.0.1.2' }] }));
  await p.nodes.patch('node2', (n) => ({ ...n, addresses: [{ network: net.id, ip: '10.0.1.3' }] }));
  await check();
  t.same(ring(net.id)!.keys.map((k) => k.gen), [1], 'young key: nothing to do');
  clocks.wall += 60_000;
  await check();
  t.same(ring(net.id)!.keys.map((k) => k.gen), [1, 2], 'rotated after the period');
  t.equal(ring(net.id)!.primary, 1, 'the new key is installed first, not used');
  clocks.wall += 60_000;
  await check();
  t.same(ring(net.id)!.keys.map((k) => k.gen), [1, 2], 'no second rotation while one waits');
  await p.nodes.patch('node1', (n) => ({ ...n, espInstalled: { [net.id]: 2 } }));
  await check();
  t.equal(ring(net.id)!.primary, 1, 'node2 has not installed it');
  await p.nodes.patch('node2', (n) => ({ ...n, espInstalled: { [net.id]: 2 } }));
  await check();
  t.equal(ring(net.id)!.primary, 2, 'promoted: every node installed it');
  t.equal(rotator.rotations, 1);
  t.equal(rotator.promotions, 1);
  t.equal(rotator.failures, 0);
  t.ok(lines.some((l) => l.msg.startsWith('network key promoted: every node')));
  t.notMatch(JSON.stringify(lines), new RegExp(ring(net.id)!.keys.map((k) => k.key.slice(0, 12).replace(/[+/]/g, '\\$&')).join('|')), 'no key in the log');
});

t.test('a node that never reports holds promotion up only until the timeout (monotonic)', async (t) => {
  const { p, clocks, check, ring, lines } = await setup(t);
  const net = await p.networks.create({ name: 'sec', encrypted: true });
  await p.nodes.patch('node2', (n) => ({ ...n, addresses: [{ network: net.id, ip: '10.0.1.3' }] }));
  await p.keys.rotate('sec');
  await check();
  t.equal(ring(net.id)!.primary, 1, 'node2 is up and has not installed it');
  clocks.wall += 3_600_000; // wall time means nothing here
  clocks.mono += 29_000;
  await p.nodes.heartbeat({ id: 'node1', addr: '192.0.2.1', hostname: 'h1' }); // keeps the judging clock running
  await p.nodes.heartbeat({ id: 'node2', addr: '192.0.2.2', hostname: 'h2' });
  await check();
  t.equal(ring(net.id)!.primary, 1, 'still waiting at 29 s');
  clocks.mono += 1_000;
  await check();
  t.equal(ring(net.id)!.primary, 2, 'promoted at 30 s');
  const warn = lines.find((l) => l.msg.startsWith('network key promoted after the timeout'));
  t.ok(warn, 'logged');
  t.same(warn?.notInstalledOn, ['node2'], 'naming the node');
});

t.test('a down node is not waited for', async (t) => {
  const { p, clocks, check, ring } = await setup(t);
  const net = await p.networks.create({ name: 'sec', encrypted: true });
  await p.nodes.patch('node2', (n) => ({ ...n, addresses: [{ network: net.id, ip: '10.0.1.3' }] }));
  await p.keys.rotate('sec');
  // node2's last beat is 12 s old: down (timeout 10 s); ours keep arriving every 3 s.
  for (let i = 0; i < 4; i++) {
    clocks.mono += 3_000;
    clocks.wall += 3_000;
    await p.nodes.heartbeat({ id: 'node1', addr: '192.0.2.1', hostname: 'h1' });
    await settle();
  }
  await check();
  t.equal(ring(net.id)!.primary, 2);
});

t.test('legacy encrypted networks get a ring; orphan rings go', async (t) => {
  const { p, clocks, check, ring, view } = await setup(t);
  const legacy: Network = { id: 'legacy1', name: 'legacy', driver: 'overlay', vni: 5000, subnet: '10.9.0.0/24', gateway: '10.9.0.1', encrypted: true, attachable: false, labels: {}, createdAt: 0 };
  await p.ctx.networks.create(legacy.id, legacy);
  await check();
  t.same(ring('legacy1')?.keys.map((k) => k.gen), [1], 'made');
  const net = await p.networks.create({ name: 'sec', encrypted: true });
  await p.ctx.networks.delete(net.id); // a removal that stopped between network and ring
  await check();
  t.ok(view.keys.has(net.id), 'kept at first (it may be a network being created)');
  clocks.mono += 10_000;
  await check();
  t.notOk(view.keys.has(net.id), 'an orphan after the grace period');
  t.ok(view.keys.has('legacy1'));
});

t.test('two rotators (two managers) never rotate twice', async (t) => {
  const a = await setup(t);
  const b = new KeyRotator({ plane: new ControlPlane(a.p.ctx.store, 'node2', () => undefined), view: a.view, log: pino({ level: 'silent' }), rotationMs: 60_000, now: () => a.clocks.mono });
  const net = await a.p.networks.create({ name: 'sec', encrypted: true });
  a.clocks.wall += 120_000;
  // node2's plane reads its own wall clock: far ahead (skewed), it rotates as well.
  ((b as unknown as { o: { plane: ControlPlane } }).o.plane.ctx as { now: () => number }).now = () => a.clocks.wall + 600_000;
  await settle();
  await Promise.all([a.rotator.check(), b.check()]);
  await settle();
  t.same(a.ring(net.id)!.keys.map((k) => k.gen), [1, 2]);
});
