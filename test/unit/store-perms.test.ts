/** The embedded store holds key material: its directory is 0700 and its files 0600, also when an older version left them open. */
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/control/index.js';

const mode = (p: string) => statSync(p).mode & 0o777;

function parent(t: { teardown(f: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'swarmnet-perms-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('a new store: directory 0700, every file 0600', async (t) => {
  const dir = join(parent(t), 'store');
  const s = EmbeddedStore.open(dir);
  t.equal(mode(dir), 0o700, 'directory');
  await s.put('keys', 'n1', { secret: true });
  t.equal(mode(join(dir, 'journal.jsonl')), 0o600, 'journal');
  t.equal(mode(join(dir, 'lock')), 0o600, 'lock');
  await s.close(); // writes the snapshot
  t.equal(mode(join(dir, 'state.json')), 0o600, 'snapshot');
  for (const f of readdirSync(dir)) t.equal(mode(join(dir, f)), 0o600, `${f}: 0600`);
});

t.test('a store left open by an older version is closed on open', async (t) => {
  const dir = join(parent(t), 'store');
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  for (const [f, text] of [['state.json', JSON.stringify({ revision: 1, buckets: { keys: { n1: { value: { a: 1 }, revision: 1 } } } })], ['journal.jsonl', ''], ['state.json.tmp', '{']]) {
    writeFileSync(join(dir, f!), text!);
    chmodSync(join(dir, f!), 0o644);
  }
  const s = EmbeddedStore.open(dir);
  t.equal(mode(dir), 0o700, 'directory');
  t.equal(mode(join(dir, 'state.json')), 0o600, 'snapshot');
  t.equal(mode(join(dir, 'journal.jsonl')), 0o600, 'journal');
  t.same((await s.get('keys', 'n1'))?.value, { a: 1 }, 'contents kept');
  await s.close();
  t.equal(mode(join(dir, 'state.json')), 0o600, 'the snapshot written through a stale 0644 tmp file is 0600');
});
