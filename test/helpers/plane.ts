/** A control plane over an embedded store in a temp dir, for unit tests of control-plane operations. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane, EmbeddedStore, KINDS } from '../../src/control/index.js';

type Teardown = { teardown(fn: () => unknown): void };

export async function plane(t: Teardown) {
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-plane-'));
  const store = EmbeddedStore.open(dir);
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const invalid: string[] = [];
  const p = new ControlPlane(store, 'node1', (k, key) => invalid.push(`${k}/${key}`));
  await p.nodes.heartbeat({ id: 'node1', addr: '127.0.0.1', hostname: 'h' });
  /** The store's journal as bytes: unchanged means nothing at all was written (not even a claim undone later). */
  const journal = () => readFileSync(join(dir, 'journal.jsonl'));
  return { p, store, invalid, journal };
}

/** Every stored entry but the nodes' (heartbeats move). */
export async function dump(p: ControlPlane) {
  const out: Record<string, unknown> = {};
  for (const k of KINDS) out[k] = (await p.ctx.store.list(k)).filter(() => k !== 'nodes').map((e) => [e.key, e.value]);
  return out;
}
