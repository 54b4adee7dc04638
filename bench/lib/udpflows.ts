/**
 * The C client and echo server of the new-flows measure (bench/tools/udpflows.c),
 * compiled into the bench's temporary directory with the system's C compiler.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, start, which } from './procs.js';

/** The tool's source, next to dist/bench in the checkout. */
const SOURCE = fileURLToPath(new URL('../../../bench/tools/udpflows.c', import.meta.url));

/** Why new flows/s cannot be measured here, or undefined when it can. */
export function udpFlowsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (raw sockets)';
  if (!which('cc')) return 'needs a C compiler (cc)';
  return undefined;
}

/** Compiles the tool into `dir`; returns its path. */
export function buildUdpFlows(dir: string): string {
  const out = join(dir, 'udpflows');
  execFileSync(which('cc')!, ['-O2', '-o', out, SOURCE], { stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

/** Starts the echo server on `count` ports from `port`; resolves once it is bound. */
export function startEcho(tool: string, ip: string, port: number, count: number): Promise<void> {
  const child = start(tool, ['echo', ip, String(port), String(count)]);
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`udpflows echo exited (${code})`)));
  });
}

export interface FloodResult {
  sent: number;
  received: number;
  /** Answered new flows per second. */
  rate: number;
}

/**
 * One datagram from each of many new source addresses to ip:port for `seconds`;
 * `start` numbers the first source so rounds never repeat a flow.
 */
export async function flood(tool: string, ip: string, port: number, seconds: number, startAt: number): Promise<FloodResult> {
  const out = (await run(tool, ['flood', ip, String(port), String(seconds), String(startAt)])).trim().split(/\s+/).map(Number);
  const [sent = NaN, received = NaN, secs = NaN] = out;
  return { sent, received, rate: received / secs };
}
