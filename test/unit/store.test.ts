import t from 'tap';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore, type WatchEvent } from '../../src/control/index.js';

function dir(t: { teardown(f: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'swarmnet-store-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('create is compare-and-set; update checks the revision', async (t) => {
  const s = EmbeddedStore.open(dir(t));
  const r1 = await s.create('ipam', 'port.tcp.30000', { owner: 'a' });
  await t.rejects(s.create('ipam', 'port.tcp.30000', { owner: 'b' }), { code: 'ECONFLICT' });
  const r2 = await s.update('ipam', 'port.tcp.30000', { owner: 'c' }, r1);
  t.ok(r2 > r1);
  await t.rejects(s.update('ipam', 'port.tcp.30000', { owner: 'd' }, r1), { code: 'EREVISION' });
  await t.rejects(s.delete('ipam', 'port.tcp.30000', r1), { code: 'EREVISION' });
  await s.delete('ipam', 'port.tcp.30000', r2);
  t.equal(await s.get('ipam', 'port.tcp.30000'), undefined);
  await s.close();
});

t.test('watch replays current entries, then changes in order', async (t) => {
  const s = EmbeddedStore.open(dir(t));
  await s.put('services', 'a', { n: 1 });
  const seen: WatchEvent[] = [];
  let ready = false;
  const stop = await s.watch('services', (e) => seen.push(e), () => (ready = true));
  t.ok(ready);
  await s.put('services', 'b', { n: 2 });
  await s.delete('services', 'a');
  await s.put('tasks', 'x', {}); // other kind: not delivered
  await new Promise((r) => setImmediate(r));
  t.same(seen.map((e) => `${e.op}:${e.key}`), ['put:a', 'put:b', 'del:a']);
  stop();
  await s.close();
});

t.test('state survives reopen; a torn journal tail is discarded', async (t) => {
  const d = dir(t);
  const s = EmbeddedStore.open(d);
  await s.put('services', 'a', { n: 1 });
  await s.put('services', 'b', { n: 2 });
  // Simulate a crash: do not close (no snapshot), and leave half a line behind.
  appendFileSync(join(d, 'journal.jsonl'), '{"k":"services","key":"c","v":{"n":');
  const s2 = EmbeddedStore.open(d);
  t.same((await s2.list('services')).map((e) => e.key).sort(), ['a', 'b']);
  await s2.put('services', 'd', { n: 4 });
  await s2.close();
  const s3 = EmbeddedStore.open(d);
  t.same((await s3.list('services')).map((e) => [e.key, e.value]).sort(), [['a', { n: 1 }], ['b', { n: 2 }], ['d', { n: 4 }]]);
  await s3.close();
});

t.test('one live process per data dir; a stale lock is taken over', async (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'lock'), String(process.ppid)); // a live process that is not us
  t.throws(() => EmbeddedStore.open(d), { code: 'ESTORE', message: new RegExp(`in use by process ${process.ppid}`) });
  writeFileSync(join(d, 'lock'), '999999999'); // no such process: a crashed agent
  const s = EmbeddedStore.open(d);
  t.equal(readFileSync(join(d, 'lock'), 'utf8'), String(process.pid));
  await s.close();
});

t.test('compaction folds the journal into the snapshot', async (t) => {
  const d = dir(t);
  const s = EmbeddedStore.open(d);
  for (let i = 0; i < 2100; i++) await s.put('tasks', `t${i % 50}`, { i });
  const s2 = EmbeddedStore.open(d); // opened without close: snapshot + journal replay
  const list = await s2.list('tasks');
  t.equal(list.length, 50);
  t.same((await s2.get('tasks', 't49'))?.value, { i: 2099 });
  await s.close();
  await s2.close();
});
