/**
 * Overlay throughput: iperf3 between two containers on two namespace-hosts, through
 * the swarmnet overlay (userspace VXLAN) and, in the same run on the same topology,
 * through a kernel VXLAN pair (`ip link add ... type vxlan`). Rounds alternate between
 * the two paths; medians and the ratio are printed.
 *
 *   root ns: bridge swbench0 10.214.0.254/24, nats-server
 *     ns swbench-h1 (10.214.0.1): swarmnet agent, bridge+TAP | kernel vxlan kvx (UDP 4790) + bridge kbr
 *       ns swbench-s1 (swarmnet container)    ns swbench-k1 (kernel-path container, 10.215.0.1)
 *     ns swbench-h2 (10.214.0.2): the same, containers swbench-s2 and swbench-k2 (10.215.0.2)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll, median, run, start, waitTcp, which } from './lib/procs.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const BRIDGE = 'swbench0';
const UNDER = '10.214.0';
const KERNEL_NET = '10.215.0';
const KERNEL_VNI = 100;
/** Not 4789: the agent's VXLAN socket has that port on the same host namespaces. */
const KERNEL_PORT = 4790;
const MTU = 1450;

export interface OverlayBenchOptions {
  rounds: number;
  seconds: number;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
const inNs = (ns: string, ...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: 'pipe', encoding: 'utf8' });
const quiet = (fn: () => unknown) => {
  try {
    fn();
  } catch {
    // absent already
  }
};

const NAMESPACES = ['swbench-h1', 'swbench-h2', 'swbench-s1', 'swbench-s2', 'swbench-k1', 'swbench-k2'];

function teardown(): void {
  for (const ns of NAMESPACES) quiet(() => ip('netns', 'del', ns));
  quiet(() => ip('link', 'del', BRIDGE));
}

function underlay(): void {
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  ip('addr', 'add', `${UNDER}.254/24`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
  for (const i of [1, 2]) {
    const ns = `swbench-h${i}`;
    ip('netns', 'add', ns);
    ip('link', 'add', `swbench-v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('link', 'set', `swbench-v${i}`, 'master', BRIDGE, 'up');
    ip('-n', ns, 'addr', 'add', `${UNDER}.${i}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('netns', 'add', `swbench-s${i}`);
    ip('netns', 'add', `swbench-k${i}`);
  }
}

/** The peer: a kernel VXLAN device bridged to a veth into the k container, per host. */
function kernelPair(): void {
  for (const i of [1, 2]) {
    const h = `swbench-h${i}`;
    const k = `swbench-k${i}`;
    ip('-n', h, 'link', 'add', 'kvx', 'type', 'vxlan', 'id', String(KERNEL_VNI), 'local', `${UNDER}.${i}`, 'dstport', String(KERNEL_PORT), 'nolearning');
    ip('-n', h, 'link', 'add', 'kbr', 'mtu', String(MTU), 'type', 'bridge');
    ip('-n', h, 'link', 'set', 'kvx', 'master', 'kbr', 'mtu', String(MTU), 'up');
    ip('-n', h, 'link', 'add', 'kveth', 'mtu', String(MTU), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(MTU), 'netns', k);
    ip('-n', h, 'link', 'set', 'kveth', 'master', 'kbr', 'up');
    ip('-n', h, 'link', 'set', 'kbr', 'up');
    ip('-n', k, 'addr', 'add', `${KERNEL_NET}.${i}/24`, 'dev', 'eth0');
    ip('-n', k, 'link', 'set', 'eth0', 'up');
    ip('-n', k, 'link', 'set', 'lo', 'up');
    inNs(h, 'bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'kvx', 'dst', `${UNDER}.${3 - i}`);
  }
}

async function api(addr: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`http://${addr}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

/** NATS, one agent per host, a network, and the two s containers attached. Returns their IPs. */
async function swarmnetPath(dir: string): Promise<[string, string]> {
  start('nats-server', ['-a', `${UNDER}.254`, '-p', '4222', '-js', '-sd', join(dir, 'nats')]);
  await waitTcp(`${UNDER}.254`, 4222);
  for (const i of [1, 2]) {
    const addr = `${UNDER}.${i}`;
    start('ip', ['netns', 'exec', `swbench-h${i}`, process.execPath, CLI, 'agent', '--nats', `nats://${UNDER}.254:4222`, '--node-id', `bench${i}`, '--advertise-addr', addr, '--data-dir', join(dir, `a${i}`), '--api', `${addr}:2377`, '--ingress-addr', addr, '--log-level', 'warn', '--dns-upstream', '127.0.0.1:1']);
    await waitTcp(addr, 2377, 30_000);
  }
  await api(`${UNDER}.1:2377`, '/v1/networks', { name: 'benchnet' });
  await api(`${UNDER}.1:2377`, '/v1/services', { name: 'iperf', networks: ['benchnet'] });
  const ips: string[] = [];
  for (const i of [1, 2]) {
    const t = await api(`${UNDER}.${i}:2377`, '/v1/tasks', { service: 'iperf', network: 'benchnet', netns: `/run/netns/swbench-s${i}` });
    ips.push((t.addresses as Array<{ ip: string }>)[0]!.ip);
  }
  return ips as [string, string];
}

/** Received throughput in Gbit/s of one iperf3 run from container `from` to `server` in `to`. */
async function iperf(from: string, to: string, server: string, seconds: number): Promise<number> {
  const srv = start('ip', ['netns', 'exec', to, 'iperf3', '-s', '-1', '-B', server]);
  try {
    await new Promise((r) => setTimeout(r, 300));
    const out = await run('ip', ['netns', 'exec', from, 'iperf3', '-c', server, '-t', String(seconds), '-J'], (seconds + 20) * 1000);
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    if (srv.exitCode === null) srv.kill('SIGKILL');
  }
}

export async function overlayBench(o: OverlayBenchOptions): Promise<void> {
  if (!which('iperf3')) {
    console.log('overlay: skipped, iperf3 not installed (apt-get install iperf3)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-bench-overlay-'));
  teardown();
  try {
    underlay();
    kernelPair();
    const [s1, s2] = await swarmnetPath(dir);
    // Warm-up: ARP and first packets on both paths.
    await run('ip', ['netns', 'exec', 'swbench-s1', 'ping', '-c', '2', '-W', '2', s2]);
    await run('ip', ['netns', 'exec', 'swbench-k1', 'ping', '-c', '2', '-W', '2', `${KERNEL_NET}.2`]);
    const swarm: number[] = [];
    const kernel: number[] = [];
    for (let r = 0; r < o.rounds; r++) {
      kernel.push(await iperf('swbench-k1', 'swbench-k2', `${KERNEL_NET}.2`, o.seconds));
      swarm.push(await iperf('swbench-s1', 'swbench-s2', s2, o.seconds));
      console.log(`overlay round ${r + 1}: kernel VXLAN ${kernel[r]!.toFixed(2)} Gbit/s, swarmnet ${swarm[r]!.toFixed(2)} Gbit/s`);
    }
    void s1;
    const k = median(kernel);
    const s = median(swarm);
    console.log(`overlay TCP throughput (iperf3, ${o.rounds} x ${o.seconds} s, medians): kernel VXLAN ${k.toFixed(2)} Gbit/s, swarmnet ${s.toFixed(2)} Gbit/s -> ${(s / k).toFixed(2)} x kernel VXLAN`);
  } finally {
    killAll();
    await new Promise((r) => setTimeout(r, 300));
    teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}
