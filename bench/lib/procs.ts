/** Process helpers for benchmarks: start peers, run clients, always clean up by pid. */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type NetConnectOpts } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const children = new Set<ChildProcess>();

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (existsSync(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  }
  return undefined;
}

/** Starts a long-running peer; it is killed by `killAll`. */
export function start(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

export function killAll(): void {
  for (const c of children) {
    try {
      process.kill(c.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
  children.clear();
}

process.on('exit', killAll);

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

/**
 * Runs one bench part with a fresh temporary directory (sockets, data dirs, configs);
 * afterwards, however it ended, every peer is killed and the directory removed.
 */
export async function inTempDir<T>(part: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), `swarmnet-bench-${part}-`));
  try {
    return await fn(dir);
  } finally {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a client to completion and returns its stdout. */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

export interface WaitOptions {
  timeoutMs?: number;
  /** Give up as soon as this process has exited (the peer that should be listening). */
  process?: ChildProcess;
}

/** One attempt: does `to` (a TCP address or a unix socket path) accept a connection now? */
function accepts(to: NetConnectOpts): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(to);
    probe.once('error', () => resolve(false));
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
  });
}

/** Polls until `to` accepts. */
async function waitAccepting(to: NetConnectOpts, what: string, o: WaitOptions): Promise<void> {
  const deadline = Date.now() + (o.timeoutMs ?? 10_000);
  for (;;) {
    if (await accepts(to)) return;
    const p = o.process;
    if (p && (p.exitCode !== null || p.signalCode !== null)) throw new Error(`${what}: not accepting, its process exited (${p.exitCode ?? p.signalCode})`);
    if (Date.now() > deadline) throw new Error(`${what}: not accepting after ${o.timeoutMs ?? 10_000} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function waitTcp(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  return waitAccepting({ host, port }, `${host}:${port}`, { timeoutMs });
}

/** Waits for a unix socket (an agent's API, `--socket`) to accept. */
export function waitSocket(path: string, o: WaitOptions = {}): Promise<void> {
  return waitAccepting({ path }, path, o);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
