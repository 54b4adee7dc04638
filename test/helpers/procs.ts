/**
 * Real processes for integration tests: agents, backends and the CLI. Every process
 * started here is killed by pid in the test's teardown, pass or fail.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testSlot } from './slot.js';
import { onCleanup } from './cleanup.js';
import type { Host } from './netns.js';

export const DIST = fileURLToPath(new URL('../../', import.meta.url)); // dist/
export const CLI = join(DIST, 'src/cli/main.js');
const BACKEND = join(DIST, 'test/fixtures/backend.js');

type Teardown = { teardown(fn: () => unknown): void };

let subnet = 0;
/**
 * A loopback /24 of this test's own (127.A.B.0), so tests running in parallel never
 * share an address or port. Linux routes all of 127/8 to lo.
 */
export function loopbackNet(): (host: number) => string {
  const a = testSlot();
  const b = (++subnet * 7 + Math.floor(Math.random() * 30)) % 250 + 1;
  return (host) => `127.${a}.${b}.${host}`;
}

export function killOnTeardown(t: Teardown, child: ChildProcess): void {
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  onCleanup(t, kill);
}

function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 15000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no ${pattern} within ${timeoutMs} ms; output: ${out}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => pattern.test(l));
      if (line) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(line);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${out}`));
    });
  });
}

export interface BackendProc {
  child: ChildProcess;
  kill(): void;
}

/** Starts one backend process serving `NAME@HOST:PORT` specs. */
export async function startBackends(t: Teardown, specs: string[], spawner?: (cmd: string, args: string[]) => ChildProcess): Promise<BackendProc> {
  const child = spawner ? spawner(process.execPath, [BACKEND, ...specs]) : spawn(process.execPath, [BACKEND, ...specs], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnTeardown(t, child);
  await waitForLine(child, /^ready$/, 'backend');
  return { child, kill: () => process.kill(child.pid!, 'SIGKILL') };
}

export interface AgentProc {
  child: ChildProcess;
  /** The API's unix socket (`--host unix://...`). */
  api: string;
  dataDir: string;
  ingress: string;
  /** Runs the CLI against this agent. */
  cli(...args: string[]): Promise<CliResult>;
  /** Runs the CLI and returns its stdout; throws with its stderr on a non-zero exit (setup steps). */
  ok(...args: string[]): Promise<string>;
  /** A raw API request over the socket (for what the CLI does not show, and bad input). */
  request(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }>;
  /** GET /metrics. */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** The value of sample `name{labels}` in Prometheus text (`labels` as written, e.g. `reason="short"`); undefined when absent. */
export function metricValue(text: string, name: string, labels = ''): number | undefined {
  const prefix = `${name}${labels ? `{${labels}}` : ''} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(api: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, '--host', `unix://${api}`, ...args], { timeout: 20000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface AgentOpts {
  ip: string;
  dataDir?: string;
  args?: string[];
  env?: Record<string, string>;
  /** Runs the agent elsewhere (e.g. inside a network namespace). */
  spawner?: (cmd: string, args: string[], env?: Record<string, string>) => ChildProcess;
  /**
   * Carry overlay networks (bridges, TAPs, VXLAN on 4789). Off by default: agents
   * sharing the test machine's own namespace must not make links there.
   */
  overlay?: boolean;
}

/** One HTTP request to an agent's API socket. */
export function apiRequest(socket: string, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = request({ socketPath: socket, method, path, headers: payload === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Starts `swarmnet agent` on `ip` (API on a unix socket in its data dir, routing mesh on the ip). */
export async function startAgent(t: Teardown, o: AgentOpts): Promise<AgentProc> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'swarmnet-test-'));
  if (!o.dataDir) t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const api = join(dataDir, 'api.sock');
  const argv = [CLI, 'agent', '--data-dir', dataDir, '--socket', api, '--ingress-addr', o.ip, '--log-level', process.env.SWARMNET_TEST_LOG_DIR ? (process.env.SWARMNET_TEST_LOG_LEVEL ?? 'info') : 'warn', ...(o.overlay ? [] : ['--no-overlay']), ...(o.args ?? [])];
  const child = o.spawner
    ? o.spawner(process.execPath, argv, o.env)
    : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
  killOnTeardown(t, child);
  // SWARMNET_TEST_LOG_DIR=/dir keeps every agent's log (at --log-level info, see below) for a failing run.
  if (process.env.SWARMNET_TEST_LOG_DIR) {
    const log = createWriteStream(join(process.env.SWARMNET_TEST_LOG_DIR, `agent-${o.ip}-${child.pid}.log`));
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
  }
  await waitForApi(api, child);
  return {
    child,
    api,
    dataDir,
    ingress: o.ip,
    cli: (...args) => runCli(api, args),
    ok: async (...args) => {
      const r = await runCli(api, args);
      if (r.code !== 0) throw new Error(`swarmnet ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    },
    request: (method, path, body) => apiRequest(api, method, path, body),
    metrics: async () => (await apiRequest(api, 'GET', '/metrics')).text,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** The agent of a namespace-host in a NATS cluster: its node id, its address advertised, 500 ms heartbeats. */
export function startHostAgent(t: Teardown, h: Host, o: { nats: string; nodeId: string; overlay?: boolean; dataDir?: string; args?: string[]; env?: Record<string, string> }): Promise<AgentProc> {
  return startAgent(t, {
    ip: h.ip,
    spawner: h.spawn,
    ...(o.env !== undefined && { env: o.env }),
    ...(o.overlay !== undefined && { overlay: o.overlay }),
    ...(o.dataDir !== undefined && { dataDir: o.dataDir }),
    args: ['--nats', o.nats, '--node-id', o.nodeId, '--advertise-addr', h.ip, '--heartbeat', '500ms', ...(o.args ?? [])],
  });
}

async function waitForApi(api: string, child: ChildProcess): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode}: ${stderr}`);
    try {
      const res = await apiRequest(api, 'GET', '/v1/info');
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`agent API ${api} not up: ${stderr}`);
}
