/**
 * The agent under benchmark: a `swarmnet agent` process whose API is on a unix socket
 * (`--socket`; there is no plain-TCP API), and calls to that API over the socket.
 */
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { start, waitSocket } from './procs.js';

/** The built CLI (dist/src/cli/main.js next to dist/bench). */
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** How much of an agent's output is kept to explain a failed start. */
const OUTPUT_TAIL = 2_000;

export interface AgentOptions {
  /** The API socket, in the bench's temporary directory. */
  socket: string;
  /** Further `swarmnet agent` flags. */
  args: string[];
  /** Run the agent in this network namespace (`ip netns exec`); unix sockets are not per namespace. */
  netns?: string;
  /** How long the socket may take to accept (default 30 s). */
  timeoutMs?: number;
}

/** Starts an agent (killed by `killAll`) and resolves once its API socket accepts. */
export async function startAgent(o: AgentOptions): Promise<ChildProcess> {
  const argv = [CLI, 'agent', '--socket', o.socket, ...o.args];
  const child = o.netns ? start('ip', ['netns', 'exec', o.netns, process.execPath, ...argv]) : start(process.execPath, argv);
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  try {
    await waitSocket(o.socket, { timeoutMs: o.timeoutMs ?? 30_000, process: child });
  } catch (err) {
    throw new Error(`agent on ${o.socket}: ${(err as Error).message}\n${tail}`);
  }
  return child;
}

/**
 * One API call over the agent's socket. Resolves to the parsed JSON reply; a status
 * outside 2xx rejects with the agent's error text.
 */
export function agentApi<T = Record<string, unknown>>(socketPath: string, method: string, path: string, body?: unknown): Promise<T> {
  const json = body === undefined ? '' : JSON.stringify(body);
  const headers: Record<string, string | number> = json ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) } : {};
  return new Promise<T>((resolve, reject) => {
    const req = request({ socketPath, path, method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (text += s));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve((text ? JSON.parse(text) : {}) as T);
        else reject(new Error(`${method} ${path} (${socketPath}): ${status} ${text}`));
      });
    });
    req.on('error', reject);
    req.end(json);
  });
}
