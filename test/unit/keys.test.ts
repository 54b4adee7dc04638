/** Key rings of encrypted networks (control/keys.ts): made and removed with the network, rotated, promoted, raced. */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane, EmbeddedStore, KINDS, validate, validateSpec, type Node, type Store } from '../../src/control/index.js';
import { RevisionMismatchError } from '../../src/util/errors.js';

type Teardown = { teardown(f: () => unknown): void };

function storeDir(t: Teardown): string {
  const d = mkdtempSync(join(tmpdir(), 'swarmnet-keys-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A store that counts lost compare-and-sets and can be told to fail one kind's creates. */
function instrumented(inner: Store) {
  const stats = { lost: 0, failCreate: undefined as string | undefined };
  const store: Store = {
    get: (k, key) => inner.get(k, key),
    list: (k) => inner.list(k),
    create: (k, key, v) => (stats.failCreate === k ? Promise.reject(new Error(`injected: ${k} create failed`)) : inner.create(k, key, v)),
    update: (k, key, v, r) =>
      inner.update(k, key, v, r).catch((err: unknown) => {
        if (err instanceof RevisionMismatchError) stats.lost++;
        throw err;
      }),
    put: (k, key, v) => inner.put(k, key, v),
    delete: (k, key, r) => inner.delete(k, key, r),
    watch: (k, fn, ready) => inner.watch(k, fn, ready),
    close: () => inner.close(),
  };
  return { store, stats };
}

async function setup(t: Teardown) {
  const inner = EmbeddedStore.open(storeDir(t));
  t.teardown(() => inner.close());
  const { store, stats } = instrumented(inner);
  const p = new ControlPlane(store, 'node1', () => undefined);
  await p.nodes.heartbeat({ id: 'node1', addr: '192.0.2.1', hostname: 'h1' });
  return { p, store, stats };
}

/** Pins the plane's wall clock (ctx.now) to `ms`. */
function clock(p: ControlPlane, ms: number): void {
  (p.ctx as { now: () => number }).now = () => ms;
}

async function dump(store: Store) {
  const out: Record<string, unknown> = {};
  for (const k of KINDS) if (k !== 'nodes') out[k] = (await store.list(k)).map((e) => [e.key, e.value]);
  return out;
}

t.test('an encrypted network is created with its ring; a clear one without', async (t) => {
  const { p } = await setup(t);
  const sec = await p.networks.create({ name: 'sec', encrypted: true });
  t.equal(sec.cipher, 'aes-128-gcm', 'default cipher');
  const ring = (await p.keys.get(sec.id))!.value;
  t.equal(ring.network, sec.id);
  t.equal(ring.cipher, 'aes-128-gcm');
  t.equal(ring.primary, 1);
  t.same(ring.keys.map((k) => k.gen), [1]);
  t.equal(Buffer.from(ring.keys[0]!.key, 'base64').length, 32, '32 random bytes');
  const strong = await p.networks.create({ name: 'strong', encrypted: true, cipher: 'aes-256-gcm' });
  t.equal(strong.cipher, 'aes-256-gcm');
  t.equal((await p.keys.get(strong.id))!.value.cipher, 'aes-256-gcm');
  t.not((await p.keys.get(strong.id))!.value.keys[0]!.key, ring.keys[0]!.key, 'every ring its own key');
  const clear = await p.networks.create({ name: 'clear' });
  t.equal(clear.cipher, undefined, 'no cipher on a clear network');
  t.equal(await p.keys.get(clear.id), undefined, 'no ring for a clear network');
});

t.test('a network create that fails after the ring leaves nothing behind', async (t) => {
  const { p, store, stats } = await setup(t);
  const before = await dump(store);
  stats.failCreate = 'networks';
  await t.rejects(p.networks.create({ name: 'sec', encrypted: true }), /injected/);
  t.same(await dump(store), before, 'no ring, no claims');
  stats.failCreate = undefined;
  const ok = await p.networks.create({ name: 'sec', encrypted: true });
  t.ok(await p.keys.get(ok.id), 'the name is free again and the ring is made');
});

t.test('spec: cipher only on encrypted networks, and only a known one', async (t) => {
  const cases: Array<[string, unknown, RegExp | undefined]> = [
    ['encrypted, default cipher', { name: 'a', encrypted: true }, undefined],
    ['encrypted, aes-256-gcm', { name: 'a', encrypted: true, cipher: 'aes-256-gcm' }, undefined],
    ['cipher without encrypted', { name: 'a', cipher: 'aes-128-gcm' }, /^cipher: is only for encrypted networks/],
    ['cipher on encrypted: false', { name: 'a', encrypted: false, cipher: 'aes-128-gcm' }, /^cipher: is only for encrypted networks/],
    ['unknown cipher', { name: 'a', encrypted: true, cipher: 'chacha20' }, /^cipher: must be one of aes-128-gcm, aes-256-gcm \(got "chacha20"\)/],
    ['encrypted not a boolean', { name: 'a', encrypted: 'yes' }, /^encrypted: /],
  ];
  for (const [what, spec, err] of cases) {
    if (err) t.throws(() => validateSpec.network.assert(spec), { message: err }, what);
    else t.doesNotThrow(() => validateSpec.network.assert(spec), what);
  }
  const { p } = await setup(t);
  await t.rejects(p.networks.create({ name: 'x', cipher: 'aes-256-gcm' }), { code: 'EINVALID', field: 'cipher' });
});

t.test('stored rings are validated, and key material never appears in an error', async (t) => {
  const key = Buffer.alloc(32, 7).toString('base64');
  const good = { network: 'n1', cipher: 'aes-128-gcm', keys: [{ gen: 1, key, createdAt: 0 }, { gen: 2, key, createdAt: 1 }], primary: 1 };
  t.ok(validate.keyRing.check(good));
  const bad: Array<[string, unknown, RegExp]> = [
    ['short key', { ...good, keys: [{ gen: 1, key: 'c2VjcmV0LXNob3J0', createdAt: 0 }] }, /^keys\[0\]\.key: is malformed \(value withheld: key material\)$/],
    ['descending gens', { ...good, keys: [good.keys[1], good.keys[0]] }, /^keys\[1\]\.gen: generations must ascend/],
    ['primary not in ring', { ...good, primary: 3 }, /^primary: 3 is not a generation of the ring/],
    ['four keys', { ...good, keys: [1, 2, 3, 4].map((gen) => ({ gen, key, createdAt: 0 })) }, /^keys: /],
    ['no keys', { ...good, keys: [] }, /^keys: /],
    ['gen 0', { ...good, keys: [{ gen: 0, key, createdAt: 0 }], primary: 0 }, /gen|primary/],
  ];
  for (const [what, ring, msg] of bad) {
    t.notOk(validate.keyRing.check(ring), what);
    let err: Error | undefined;
    try {
      validate.keyRing.assert(ring);
    } catch (e) {
      err = e as Error;
    }
    t.match(err?.message, msg, what);
    t.notMatch(err?.message ?? '', /c2VjcmV0|BwcHBwcH/, `${what}: no key bytes in the message`);
  }
});

t.test('rotate adds the next generation, keeps at most 3 keys and never drops the primary', async (t) => {
  const { p } = await setup(t);
  clock(p, 1000);
  const net = await p.networks.create({ name: 'sec', encrypted: true });
  const gens = async () => {
    const r = (await p.keys.get(net.id))!.value;
    return { keys: r.keys.map((k) => k.gen), primary: r.primary };
  };
  for (const [i, want] of [
    [2, { keys: [1, 2], primary: 1 }],
    [3, { keys: [1, 2, 3], primary: 1 }],
    [4, { keys: [1, 3, 4], primary: 1 }],
    [5, { keys: [1, 4, 5], primary: 1 }],
  ] as const) {
    clock(p, 1000 + i);
    const r = await p.keys.rotate('sec');
    t.same(r, { network: net.id, gen: i, rotated: true });
    t.same(await gens(), want, `after rotation to ${i}: the primary (1) stays, the oldest other key goes`);
  }
  const ring = (await p.keys.get(net.id))!.value;
  t.equal(ring.keys.at(-1)!.createdAt, 1005, 'createdAt on the wall clock');
  const promoted = await p.keys.promote(net.id, { isUp: () => false, waitedMs: 0 });
  t.equal(promoted.promoted, true, 'no live node on the network: promoted at once');
  t.same(await gens(), { keys: [1, 4, 5], primary: 5 });
  await p.keys.rotate(net.id);
  t.same(await gens(), { keys: [4, 5, 6], primary: 5 }, 'the oldest key goes once it is no longer primary');
  await t.rejects(p.keys.rotate('nope'), { code: 'ENOTFOUND' });
  await p.networks.create({ name: 'clear' });
  await t.rejects(p.keys.rotate('clear'), { code: 'EINVALID', message: /network clear is not encrypted/ });
});

t.test('periodic rotation (ifOlderThanMs): only when the newest key is primary and old enough', async (t) => {
  const { p } = await setup(t);
  clock(p, 10_000);
  const net = await p.networks.create({ name: 'sec', encrypted: true });
  clock(p, 15_000);
  t.same(await p.keys.rotateNetwork(net, { ifOlderThanMs: 10_000 }), { network: net.id, gen: 1, rotated: false }, 'too young');
  clock(p, 20_000);
  t.same(await p.keys.rotateNetwork(net, { ifOlderThanMs: 10_000 }), { network: net.id, gen: 2, rotated: true }, 'old enough');
  clock(p, 90_000);
  t.same(await p.keys.rotateNetwork(net, { ifOlderThanMs: 10_000 }), { network: net.id, gen: 2, rotated: false }, 'not while the new key waits for promotion');
});

const addr = (network: string, ip: string) => ({ network, ip });

t.test('promote: when every live node on the network installed the newest key, or after the timeout', async (t) => {
  const { p } = await setup(t);
  const net = await p.networks.create({ name: 'sec', encrypted: true });
  const other = await p.networks.create({ name: 'other', encrypted: true });
  const beat = (id: string) => p.nodes.heartbeat({ id, addr: `192.0.2.${id.slice(-1)}`, hostname: id });
  await beat('node2');
  await beat('node3');
  await beat('node4');
  const setNode = (id: string, change: Partial<Node>) => p.nodes.patch(id, (cur) => ({ ...cur, ...change }));
  await setNode('node1', { addresses: [addr(net.id, '10.0.1.2')] });
  await setNode('node2', { addresses: [addr(net.id, '10.0.1.3')] });
  await setNode('node3', { addresses: [addr(net.id, '10.0.1.4')] }); // down: not waited for
  await setNode('node4', { addresses: [addr(other.id, '10.0.2.2')] }); // not on the network
  const isUp = (n: Node) => n.id !== 'node3';

  t.same(await p.keys.promote(net.id, { isUp, waitedMs: 0 }), { network: net.id, gen: 1, promoted: false, forced: false, waitingFor: [] }, 'nothing waiting');
  await p.keys.rotate(net.id);
  t.same(await p.keys.promote(net.id, { isUp, waitedMs: 0 }), { network: net.id, gen: 2, promoted: false, forced: false, waitingFor: ['node1', 'node2'] }, 'live nodes on the network must install it first');
  await setNode('node1', { espInstalled: { [net.id]: 2 } });
  await setNode('node2', { espInstalled: { [net.id]: 1, [other.id]: 5 } });
  t.same((await p.keys.promote(net.id, { isUp, waitedMs: 0 })).waitingFor, ['node2'], 'an older generation installed is not enough');
  t.equal((await p.keys.get(net.id))!.value.primary, 1, 'still the old primary');
  await setNode('node2', { espInstalled: { [net.id]: 2 } });
  t.same(await p.keys.promote(net.id, { isUp, waitedMs: 0 }), { network: net.id, gen: 2, promoted: true, forced: false, waitingFor: [] }, 'every live receiver has it');
  t.equal((await p.keys.get(net.id))!.value.primary, 2);

  await p.keys.rotate(net.id);
  await setNode('node1', { espInstalled: { [net.id]: 3 } });
  t.equal((await p.keys.promote(net.id, { isUp, waitedMs: 29_999 })).promoted, false, 'node2 has not installed 3: wait');
  t.same(await p.keys.promote(net.id, { isUp, waitedMs: 30_000 }), { network: net.id, gen: 3, promoted: true, forced: true, waitingFor: ['node2'] }, 'after 30 s a silent node no longer holds it up');
  await p.keys.rotate(net.id);
  t.equal((await p.keys.promote(net.id, { isUp, waitedMs: 500, timeoutMs: 400 })).forced, true, 'the timeout is an option');
  await setNode('node2', { status: 'removed' });
  await setNode('node1', { espInstalled: { [net.id]: 5 } });
  await p.keys.rotate(net.id);
  t.equal((await p.keys.promote(net.id, { isUp: () => true, waitedMs: 0 })).promoted, false, 'node3, up now, has not installed it');
  await setNode('node3', { espInstalled: { [net.id]: 5 } });
  t.same((await p.keys.promote(net.id, { isUp: () => true, waitedMs: 0 })).promoted, true, 'a removed node is never waited for');
});

t.test('the ring goes with its network', async (t) => {
  const { p } = await setup(t);
  const net = await p.networks.create({ name: 'sec', encrypted: true });
  await p.keys.rotate('sec');
  await p.removeNetwork('sec');
  t.equal(await p.keys.get(net.id), undefined);
  t.same(await p.ctx.store.list('keys'), []);
});

t.test('two managers racing: one rotation, one promotion', async (t) => {
  const { p, store, stats } = await setup(t);
  const p2 = new ControlPlane(store, 'node2', () => undefined);
  clock(p, 0);
  const net = await p.networks.create({ name: 'sec', encrypted: true });
  clock(p, 50_000);
  clock(p2, 50_000);
  const [a, b] = await Promise.all([p.keys.rotateNetwork(net, { ifOlderThanMs: 10_000 }), p2.keys.rotateNetwork(net, { ifOlderThanMs: 10_000 })]);
  t.ok(stats.lost >= 1, 'the two compare-and-sets met');
  t.same([a.rotated, b.rotated].sort(), [false, true], 'exactly one rotated');
  t.same((await p.keys.get(net.id))!.value.keys.map((k) => k.gen), [1, 2], 'one new key, not two');
  const lostBefore = stats.lost;
  const [x, y] = await Promise.all([p.keys.promote(net.id, { isUp: () => false, waitedMs: 0 }), p2.keys.promote(net.id, { isUp: () => false, waitedMs: 0 })]);
  t.ok(stats.lost > lostBefore, 'the promotions met too');
  t.same([x.promoted, y.promoted].sort(), [false, true], 'exactly one promoted');
  t.equal((await p.keys.get(net.id))!.value.primary, 2);
});

t.test('ensure: a ring for an encrypted network stored without one (older versions)', async (t) => {
  const { p } = await setup(t);
  const legacy = { id: 'legacy1', name: 'legacy', driver: 'overlay' as const, vni: 5000, subnet: '10.9.0.0/24', gateway: '10.9.0.1', encrypted: true, attachable: false, labels: {}, createdAt: 0 };
  await p.ctx.networks.create(legacy.id, legacy);
  const made = await p.keys.ensure(legacy);
  t.equal(made.created, true);
  t.equal(made.ring.cipher, 'aes-128-gcm', 'the default cipher when the network names none');
  const again = await p.keys.ensure(legacy);
  t.same(again, { ring: made.ring, created: false }, 'idempotent');
});

t.test('heartbeat: a fresh run drops the previous run\'s epoch and installed keys', async (t) => {
  const { p } = await setup(t);
  await p.nodes.heartbeat({ id: 'node1', addr: '192.0.2.1', hostname: 'h1', espEpoch: '00112233aabbccdd' });
  await p.nodes.patch('node1', (n) => ({ ...n, espInstalled: { net1: 2 } }));
  const beat = await p.nodes.heartbeat({ id: 'node1', addr: '192.0.2.1', hostname: 'h1', espEpoch: '00112233aabbccdd' });
  t.same(beat.espInstalled, { net1: 2 }, 'a beat of the same run keeps them');
  const fresh = await p.nodes.heartbeat({ id: 'node1', addr: '192.0.2.1', hostname: 'h1', espEpoch: 'ffeeddccbbaa9988' }, { fresh: true });
  t.equal(fresh.espEpoch, 'ffeeddccbbaa9988');
  t.equal(fresh.espInstalled, undefined);
  const noOverlay = await p.nodes.heartbeat({ id: 'node1', addr: '192.0.2.1', hostname: 'h1' }, { fresh: true });
  t.equal(noOverlay.espEpoch, undefined, 'a run without overlay has no epoch');
  await t.rejects(p.nodes.heartbeat({ id: 'node1', addr: '192.0.2.1', hostname: 'h1', espEpoch: 'XYZ' }), /espEpoch: "XYZ" is not an ESP epoch/);
  await t.rejects(p.nodes.patch('node1', (n) => ({ ...n, espInstalled: { 'not an id!': 1 } })), /^espInstalled/);
  await t.rejects(p.nodes.patch('node1', (n) => ({ ...n, espInstalled: { net1: -1 } })), /^espInstalled\.net1/);
});
