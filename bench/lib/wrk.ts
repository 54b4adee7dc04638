/**
 * wrk (a C HTTP load generator, one epoll thread) as the client of the mesh benches:
 * its summary line and its `--latency` distribution, parsed.
 *
 *   Latency Distribution
 *      50%  101.00us
 *      99%    1.23ms
 *   ...
 *   Requests/sec:  41234.56
 */
import { run } from './procs.js';

export interface WrkResult {
  /** Completed requests per second. */
  rps: number;
  /** Latency percentiles in microseconds (only with `latency`). */
  p50Us: number;
  p99Us: number;
  /** wrk's "Socket errors" line, when it printed one. */
  socketErrors: string | undefined;
}

export interface WrkOptions {
  url: string;
  connections: number;
  seconds: number;
  /** Extra request headers, e.g. `Connection: close` for a connection per request. */
  headers?: string[];
  latency?: boolean;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6 };

/** `101.00us`, `1.23ms`, `2.00s` -> microseconds. */
export function wrkDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`wrk duration not understood: '${text}'`);
  return Number(m[1]) * UNIT_US[m[2]!]!;
}

export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rps) throw new Error(`wrk output not understood: ${out}`);
  const pct = (p: number) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)$`, 'm').exec(out);
    return m ? wrkDuration(m[1]!) : NaN;
  };
  return { rps: Number(rps[1]), p50Us: pct(50), p99Us: pct(99), socketErrors: /Socket errors: (.*)/.exec(out)?.[1] };
}

export async function runWrk(wrk: string, o: WrkOptions): Promise<WrkResult> {
  const args = ['-t1', `-c${o.connections}`, `-d${o.seconds}s`];
  for (const h of o.headers ?? []) args.push('-H', h);
  if (o.latency) args.push('--latency');
  return parseWrk(await run(wrk, [...args, o.url]));
}
