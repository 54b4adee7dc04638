/** A real nats-server (Debian package) with JetStream, on a test's own address. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killOnTeardown } from './procs.js';

type Teardown = { teardown(fn: () => unknown): void };

export interface NatsProc {
  child: ChildProcess;
  url: string;
  kill(): Promise<void>;
  /** Starts again on the same address and store dir; killed in `owner`'s teardown. */
  restart(owner: Teardown): Promise<NatsProc>;
}

type Spawner = (cmd: string, args: string[]) => ChildProcess;

export async function startNats(t: Teardown, host: string, port = 4222, storeDir?: string, extra: string[] = [], spawner?: Spawner): Promise<NatsProc> {
  const dir = storeDir ?? mkdtempSync(join(tmpdir(), 'swarmnet-nats-'));
  if (!storeDir) t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const argv = ['-js', '-a', host, '-p', String(port), '-sd', dir, ...extra];
  const child = spawner ? spawner('nats-server', argv) : spawn('nats-server', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnTeardown(t, child);
  await waitPort(host, port, child);
  const self: NatsProc = {
    child,
    url: `nats://${host}:${port}`,
    kill: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
    restart: (owner) => startNats(owner, host, port, dir, extra, spawner),
  };
  return self;
}

async function waitPort(host: string, port: number, child: ChildProcess): Promise<void> {
  let out = '';
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nats-server exited: ${out}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nats-server on ${host}:${port} not up: ${out}`);
}

/**
 * Three JetStream servers clustered on three addresses (client port 4222, route
 * port 6222 each), so buckets can have 3 replicas.
 */
export async function startNatsCluster(t: Teardown, hosts: [string, string, string], spawners?: Spawner[]): Promise<NatsProc[]> {
  const routes = hosts.map((h) => `nats://${h}:6222`).join(',');
  return Promise.all(
    hosts.map((h, i) => startNats(t, h, 4222, undefined, ['-n', `s${i + 1}`, '--cluster_name', 'swarmnet', '--cluster', `nats://${h}:6222`, '--routes', routes], spawners?.[i])),
  );
}

/** Runs nats-server with a config file (auth, TLS). */
export async function startNatsWithConfig(t: Teardown, host: string, port: number, config: string): Promise<NatsProc> {
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-natscfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'nats.conf');
  writeFileSync(file, config);
  return startNats(t, host, port, join(dir, 'js'), ['-c', file]);
}
