/** DNS in integration tests: the real `dig` against an agent's embedded DNS, and the upstream fixture it forwards to. */
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { killOnTeardown } from './procs.js';

type Teardown = { teardown(fn: () => unknown): void };

export interface Dig {
  /** dig's whole output (`+time=4 +tries=1`; never throws: a failure is an output without answers). */
  dig(...args: string[]): Promise<string>;
  /** `+short` answers, one per line. */
  short(...args: string[]): Promise<string[]>;
  /** The reply's status: NOERROR, NXDOMAIN, SERVFAIL... */
  status(...args: string[]): Promise<string | undefined>;
}

/** `dig @server ...`; `-b IP` in args sends from a task's address (scoping). */
export function digAt(server: string): Dig {
  const dig = (...args: string[]) =>
    new Promise<string>((resolve) => {
      execFile('dig', [`@${server}`, '+time=4', '+tries=1', ...args], { timeout: 15000 }, (_err, stdout) => resolve(stdout));
    });
  return {
    dig,
    short: async (...args) => (await dig('+short', ...args)).trim().split('\n').filter(Boolean),
    status: async (...args) => /status: (\w+)/.exec(await dig(...args))?.[1],
  };
}

/** The upstream fixture (test/fixtures/upstream-dns.ts) on `host`:53: example.test, big.test, timeout.test; NXDOMAIN otherwise. */
export async function startUpstreamDns(t: Teardown, host: string): Promise<void> {
  const up = spawn(process.execPath, [fileURLToPath(new URL('../fixtures/upstream-dns.js', import.meta.url)), host, '53'], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnTeardown(t, up);
  await new Promise<void>((resolve, reject) => {
    up.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    up.once('exit', (c) => reject(new Error(`upstream exited ${c}`)));
  });
}
