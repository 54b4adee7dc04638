/**
 * Test hosts as network namespaces on one bridge: each host gets a veth into the
 * bridge and its own address. Everything made here is removed in teardown.
 *
 *   root ns: bridge snb<id> 10.213.<id>.254/24
 *     |-- veth -> ns sn<id>h1 eth0 10.213.<id>.1/24
 *     |-- veth -> ns sn<id>h2 eth0 10.213.<id>.2/24
 *     ...
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { testSlot } from './slot.js';
import { onCleanup } from './cleanup.js';

type Teardown = { teardown(fn: () => unknown): void };

export interface Host {
  ns: string;
  ip: string;
  /** Spawns a command inside the namespace (ip netns exec keeps the pid). */
  spawn(cmd: string, args: string[], env?: Record<string, string>): ChildProcess;
}

export interface Topology {
  gateway: string;
  hosts: Host[];
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

/** `ip ...` for what may not be there: a leftover to remove, or one already gone. */
function ipQuiet(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    // nothing to remove
  }
}

/**
 * Deletes a namespace and whatever still runs in it. `ip netns del` only unmounts the
 * name: a process left inside keeps the namespace, and with it the peer of the host's
 * veth, alive, and the next test of this slot could not create that veth again.
 */
function deleteNetns(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { stdio: 'pipe', encoding: 'utf8' });
    for (const pid of pids.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no such namespace
  }
  ipQuiet('netns', 'del', ns);
}

export function createTopology(t: Teardown, count: number): Topology {
  const id = testSlot();
  const bridge = `snb${id}`;
  const prefix = `10.213.${id}`;
  const made: string[] = [];
  const remove = () => {
    for (const ns of made.splice(0)) deleteNetns(ns);
    ipQuiet('link', 'del', bridge);
  };
  onCleanup(t, remove);
  ipQuiet('link', 'del', bridge); // left over from an earlier holder of this slot
  ip('link', 'add', bridge, 'type', 'bridge');
  ip('addr', 'add', `${prefix}.254/24`, 'dev', bridge);
  ip('link', 'set', bridge, 'up');
  const hosts: Host[] = [];
  for (let i = 1; i <= count; i++) {
    const ns = `sn${id}h${i}`;
    const veth = `snv${id}h${i}`;
    deleteNetns(ns);
    ipQuiet('link', 'del', veth);
    ip('netns', 'add', ns);
    made.push(ns);
    ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('link', 'set', veth, 'master', bridge, 'up');
    ip('-n', ns, 'addr', 'add', `${prefix}.${i}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    hosts.push({
      ns,
      ip: `${prefix}.${i}`,
      spawn: (cmd, args, env) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }),
    });
  }
  return { gateway: `${prefix}.254`, hosts };
}

export interface Container {
  ns: string;
  /** The namespace file, as `task add --netns` takes it. */
  path: string;
  spawn(cmd: string, args: string[]): ChildProcess;
  /** Runs a command inside (resolv.conf from /etc/netns/<ns>, as `ip netns exec` does). */
  exec(cmd: string, args: string[], timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** An empty network namespace standing in for a container; deleted in teardown. */
export function createContainer(t: Teardown, name: string): Container {
  const ns = `sn${testSlot()}${name}`;
  deleteNetns(ns);
  ip('netns', 'add', ns);
  onCleanup(t, () => deleteNetns(ns));
  return {
    ns,
    path: `/run/netns/${ns}`,
    spawn: (cmd, args) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    exec: (cmd, args, timeoutMs = 20000) =>
      new Promise((resolve) => {
        execFile('ip', ['netns', 'exec', ns, cmd, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
        });
      }),
  };
}
