import t from 'tap';
import { Backend, createScheduler, maglevSize, maglevTable, type BackendSpec } from '../../src/mesh/index.js';
import type { SchedulerName } from '../../src/control/constants.js';

const mk = (id: string, weight = 1, extra: Partial<BackendSpec> = {}) =>
  new Backend({ id, name: id, host: '127.0.0.1', port: 1, weight, node: 'n', eligible: true, ...extra });
const all = () => true;
const flow = (i: number) => ({ srcIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, srcPort: 40000 + (i % 20000) });

function spread(name: SchedulerName, backends: Backend[], n: number, opts: { hold?: boolean } = {}): Map<string, number> {
  const s = createScheduler(name);
  s.rebuild(backends);
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const b = s.pick(flow(i), all)!;
    if (opts.hold) b.active++;
    out.set(b.id, (out.get(b.id) ?? 0) + 1);
  }
  return out;
}

t.test('rr spreads evenly', async (t) => {
  const c = spread('rr', [mk('a'), mk('b'), mk('c')], 300);
  t.same([...c.values()], [100, 100, 100]);
});

t.test('wrr follows weights, interleaved', async (t) => {
  const bs = [mk('a', 3), mk('b', 1), mk('c', 2)];
  const c = spread('wrr', bs, 600);
  t.equal(c.get('a'), 300);
  t.equal(c.get('b'), 100);
  t.equal(c.get('c'), 200);
  const s = createScheduler('wrr');
  s.rebuild(bs);
  const seq = Array.from({ length: 6 }, (_, i) => s.pick(flow(i), all)!.id).join('');
  t.not(seq.slice(0, 3), 'aaa', 'heavy backend is not bursted');
});

t.test('lc balances held connections; wlc by weight', async (t) => {
  t.same([...spread('lc', [mk('a'), mk('b')], 100, { hold: true }).values()], [50, 50]);
  const c = spread('wlc', [mk('a', 3), mk('b', 1)], 400, { hold: true });
  t.equal(c.get('a'), 300);
  t.equal(c.get('b'), 100);
  const s = createScheduler('lc');
  const [a, b] = [mk('a'), mk('b')];
  a.active = 5;
  s.rebuild([a, b]);
  t.equal(s.pick(flow(1), all), b, 'least loaded wins');
});

for (const name of ['sh', 'mh'] as const) {
  t.test(`${name}: same client, same backend; independent builds agree (cross-node consistency)`, async (t) => {
    const ids = Array.from({ length: 7 }, (_, i) => `task${i}`);
    const s1 = createScheduler(name);
    const s2 = createScheduler(name);
    s1.rebuild(ids.map((id) => mk(id)));
    s2.rebuild([...ids].reverse().map((id) => mk(id)).sort((x, y) => x.id.localeCompare(y.id)));
    let agree = 0;
    let sticky = 0;
    for (let i = 0; i < 1000; i++) {
      const f = flow(i);
      const p1 = s1.pick(f, all)!.id;
      if (s1.pick({ ...f, srcPort: 1 }, all)!.id === p1) sticky++;
      if (s2.pick(f, all)!.id === p1) agree++;
    }
    t.equal(sticky, 1000, 'the client address alone decides');
    t.equal(agree, 1000, 'two nodes pick the same backend');
    const c = spread(name, ids.map((id) => mk(id)), 7000);
    t.equal(c.size, 7, 'every backend used');
    for (const n of c.values()) t.ok(n > 500 && n < 1500, `roughly even: ${n}`);
  });

  t.test(`${name}: unusable backend falls back deterministically`, async (t) => {
    const bs = ['a', 'b', 'c', 'd'].map((id) => mk(id));
    const s = createScheduler(name);
    s.rebuild(bs);
    let ok = 0;
    for (let i = 0; i < 200; i++) {
      const first = s.pick(flow(i), all)!;
      const second = s.pick(flow(i), (b) => b !== first);
      if (second && second !== first && s.pick(flow(i), (b) => b !== first) === second) ok++;
    }
    t.equal(ok, 200, 'fallback differs from the unusable pick and is stable');
    t.equal(s.pick(flow(1), () => false), undefined);
  });
}

t.test('maglev table: prime size > 100 x backends, even split, ~1/N disruption', async (t) => {
  for (const n of [1, 5, 10, 100, 700]) {
    const m = maglevSize(n);
    t.ok(m > 100 * n, `M=${m} > 100 x ${n}`);
    let prime = m > 1;
    for (let d = 2; d * d <= m; d++) if (m % d === 0) prime = false;
    t.ok(prime, `${m} is prime`);
  }
  const ids = Array.from({ length: 10 }, (_, i) => `backend-${i}`);
  const before = maglevTable(ids, maglevSize(10));
  const counts = new Array(10).fill(0);
  for (const v of before) counts[v]++;
  const expected = before.length / 10;
  const worst = Math.max(...counts.map((c) => Math.abs(c - expected) / expected));
  t.ok(worst < 0.02, `every backend's slot share within 2% of M/N (worst ${(worst * 100).toFixed(2)}%)`);

  const removed = 'backend-3';
  const rest = ids.filter((id) => id !== removed);
  const after = maglevTable(rest, maglevSize(9));
  let moved = 0;
  for (let i = 0; i < before.length; i++) {
    const was = ids[before[i]!]!;
    const now = rest[after[i]!]!;
    if (was !== removed && was !== now) moved++;
  }
  const extra = moved / before.length;
  t.ok(extra < 0.02, `slots of surviving backends that moved: ${(extra * 100).toFixed(2)}% (only the removed 1/N must move)`);
});
