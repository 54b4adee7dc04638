/**
 * Links through iproute2 (`ip`), in the agent's namespace or, via nsenter, in a
 * container's. Each helper is idempotent where the reconciler needs it to be.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class LinkError extends Error {
  readonly code = 'ELINK';
  constructor(readonly command: string, stderr: string, options?: { cause?: unknown }) {
    super(`${command}: ${stderr.trim().split('\n')[0] || 'failed'}`, options);
  }
}

async function exec(cmd: string, args: string[]): Promise<string> {
  try {
    return (await run(cmd, args, { maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string };
    throw new LinkError(`${cmd} ${args.join(' ')}`, e.stderr ?? String(err), { cause: err });
  }
}

export function ip(...args: string[]): Promise<string> {
  return exec('ip', args);
}

/** Runs `ip` inside the network namespace at `path` (a /run/netns file or /proc/PID/ns/net). */
export function ipIn(netns: string, ...args: string[]): Promise<string> {
  return exec('nsenter', [`--net=${netns}`, 'ip', ...args]);
}

/** Several `ip` commands in one process (`ip -batch -` reads them from stdin). */
export function ipBatchIn(netns: string | undefined, lines: string[]): Promise<string> {
  const argv = netns ? ['nsenter', [`--net=${netns}`, 'ip', '-batch', '-']] as const : ['ip', ['-batch', '-']] as const;
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0], [...argv[1]], (err, stdout, stderr) => {
      if (err) reject(new LinkError(`${argv[0]} ${argv[1].join(' ')} (${lines.join('; ')})`, stderr, { cause: err }));
      else resolve(stdout);
    });
    child.stdin?.end(lines.join('\n') + '\n');
  });
}

interface LinkInfo {
  ifname: string;
  address?: string;
  mtu?: number;
}

export async function listLinks(netns?: string): Promise<LinkInfo[]> {
  const out = netns ? await ipIn(netns, '-j', 'link', 'show') : await ip('-j', 'link', 'show');
  return JSON.parse(out || '[]') as LinkInfo[];
}

/** IPv4 addresses on `dev` as `a.b.c.d/len`. */
export async function addressesOf(dev: string): Promise<string[]> {
  const out = JSON.parse((await ip('-j', '-4', 'addr', 'show', 'dev', dev)) || '[]') as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
  return out.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
}

/** Whether this namespace has a link of that name. */
export async function linkExists(name: string): Promise<boolean> {
  try {
    await ip('link', 'show', 'dev', name);
    return true;
  } catch (err) {
    if (/Cannot find device|does not exist/.test((err as Error).message)) return false;
    throw err;
  }
}

export async function deleteLink(name: string): Promise<void> {
  try {
    await ip('link', 'del', name);
  } catch (err) {
    if (!/Cannot find device|does not exist/.test((err as Error).message)) throw err;
  }
}
