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

export function createTopology(t: Teardown, count: number): Topology {
  const id = testSlot();
  const bridge = `snb${id}`;
  const prefix = `10.213.${id}`;
  const made: string[] = [];
  const remove = () => {
    for (const ns of made.splice(0)) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    try {
      ip('link', 'del', bridge);
    } catch {
      // already gone
    }
  };
  onCleanup(t, remove);
  try {
    ip('link', 'del', bridge);
  } catch {
    // left over from an earlier run of this pid slot: none
  }
  ip('link', 'add', bridge, 'type', 'bridge');
  ip('addr', 'add', `${prefix}.254/24`, 'dev', bridge);
  ip('link', 'set', bridge, 'up');
  const hosts: Host[] = [];
  for (let i = 1; i <= count; i++) {
    const ns = `sn${id}h${i}`;
    const veth = `snv${id}h${i}`;
    try {
      ip('netns', 'del', ns);
    } catch {
      // none left over
    }
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
  try {
    ip('netns', 'del', ns);
  } catch {
    // none left over
  }
  ip('netns', 'add', ns);
  const remove = () => {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  };
  onCleanup(t, remove);
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
