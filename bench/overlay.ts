/**
 * Overlay throughput: iperf3 between two containers on two namespace-hosts, through
 * the swarmnet overlay (userspace VXLAN) in clear and encrypted (ESP in UDP), and, in
 * the same run on the same hosts, through a kernel VXLAN pair (`ip link add ... type
 * vxlan`, clear). Rounds alternate between the three paths; medians and ratios are printed.
 *
 *   root ns: bridge swbench0 10.214.0.254/24, nats-server
 *     ns swbench-h1 (10.214.0.1): swarmnet agent: VXLAN UDP 4789, ESP UDP 4500, a bridge+TAP per overlay
 *                                 kernel VXLAN kvx (UDP 4790) + bridge kbr
 *       ns swbench-s1 (swarmnet container on benchnet, clear)
 *       ns swbench-e1 (swarmnet container on benchenc, encrypted)
 *       ns swbench-k1 (kernel-path container, 10.215.0.1)
 *     ns swbench-h2 (10.214.0.2): the same, containers swbench-s2, swbench-e2 and swbench-k2 (10.215.0.2)
 *
 * A container is attached to one network, hence one container namespace per overlay.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentApi, startAgent } from './lib/agent.js';
import { inTempDir, median, run, start, waitTcp, which } from './lib/procs.js';
import { results as record } from './lib/results.js';

const BRIDGE = 'swbench0';
const UNDER = '10.214.0';
const KERNEL_NET = '10.215.0';
const KERNEL_VNI = 100;
/** Not 4789: the agent's VXLAN socket has that port on the same host namespaces (its ESP socket 4500). */
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

const KERNEL_PATH = 'kernel VXLAN';
const CLEAR_PATH = 'swarmnet clear';
const ENCRYPTED_PATH = 'swarmnet encrypted';
/** The swarmnet overlays measured, each with its container namespace per host (`swbench-<prefix><host>`). */
const OVERLAYS = [
  { network: 'benchnet', encrypted: false, service: 'iperf', prefix: 's', path: CLEAR_PATH },
  { network: 'benchenc', encrypted: true, service: 'iperf-enc', prefix: 'e', path: ENCRYPTED_PATH },
];
const CONTAINERS = ['k', ...OVERLAYS.map((v) => v.prefix)];
const NAMESPACES = [1, 2].flatMap((i) => ['h', ...CONTAINERS].map((c) => `swbench-${c}${i}`));
/** How long the first packets of a path may take (the encrypted one waits for both nodes' SAs). */
const REACH_MS = 20_000;

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
    for (const c of CONTAINERS) ip('netns', 'add', `swbench-${c}${i}`);
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

/** One iperf3 direction: client in container `from`, server at `server` in container `to`. */
interface Path {
  name: string;
  from: string;
  to: string;
  server: string;
}

/** The engine threads' names (native/src/vxlan_tx.c, vxlan_rx.c). */
const ENGINE_THREAD = /^swarmnet-vx-/;

/**
 * On-CPU nanoseconds so far of the overlay engine threads of processes `pids`
 * (/proc/PID/task/TID/schedstat, first field). Kernel work done in their context
 * (TAP and UDP copies, the UDP/IP/bridge path of a send) counts; softirq work that
 * runs elsewhere does not.
 */
function engineCpuNs(pids: number[]): number {
  let ns = 0;
  for (const pid of pids) {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        if (!ENGINE_THREAD.test(readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8'))) continue;
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return ns;
}

/** NATS, one agent per host, the overlays, and each overlay's two containers attached. */
async function swarmnetPaths(dir: string, pids: number[]): Promise<Path[]> {
  start('nats-server', ['-a', `${UNDER}.254`, '-p', '4222', '-js', '-sd', join(dir, 'nats')]);
  await waitTcp(`${UNDER}.254`, 4222);
  const sockets: string[] = [];
  for (const i of [1, 2]) {
    const addr = `${UNDER}.${i}`;
    const socket = join(dir, `a${i}.sock`);
    const agent = await startAgent({ socket, netns: `swbench-h${i}`, args: ['--nats', `nats://${UNDER}.254:4222`, '--node-id', `bench${i}`, '--advertise-addr', addr, '--data-dir', join(dir, `a${i}`), '--ingress-addr', addr, '--log-level', 'warn', '--dns-upstream', '127.0.0.1:1'] });
    sockets.push(socket);
    if (agent.pid) pids.push(agent.pid);
  }
  const paths: Path[] = [];
  for (const v of OVERLAYS) {
    await agentApi(sockets[0]!, 'POST', '/v1/networks', { name: v.network, ...(v.encrypted && { encrypted: true }) });
    await agentApi(sockets[0]!, 'POST', '/v1/services', { name: v.service, networks: [v.network] });
    const ips: string[] = [];
    for (const [k, socket] of sockets.entries()) {
      const t = await agentApi<{ addresses: Array<{ ip: string }> }>(socket, 'POST', '/v1/tasks', { service: v.service, network: v.network, netns: `/run/netns/swbench-${v.prefix}${k + 1}` });
      ips.push(t.addresses[0]!.ip);
    }
    paths.push({ name: v.path, from: `swbench-${v.prefix}1`, to: `swbench-${v.prefix}2`, server: ips[1]! });
  }
  return paths;
}

/** Pings until the path answers (ARP, FDB, and on the encrypted path the SAs of both nodes). */
async function reach(p: Path): Promise<void> {
  const deadline = Date.now() + REACH_MS;
  for (;;) {
    try {
      await run('ip', ['netns', 'exec', p.from, 'ping', '-c', '1', '-W', '1', p.server]);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`overlay: ${p.name} (${p.from} -> ${p.server}) does not answer ping after ${REACH_MS} ms: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** One iperf3 run, one TCP stream: received Gbit/s and bytes. */
async function iperf(p: Path, seconds: number): Promise<{ gbps: number; bytes: number }> {
  const srv = start('ip', ['netns', 'exec', p.to, 'iperf3', '-s', '-1', '-B', p.server]);
  try {
    await new Promise((r) => setTimeout(r, 300));
    const out = await run('ip', ['netns', 'exec', p.from, 'iperf3', '-c', p.server, '-t', String(seconds), '-J'], (seconds + 20) * 1000);
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
    return { gbps: j.end.sum_received.bits_per_second / 1e9, bytes: j.end.sum_received.bytes };
  } finally {
    if (srv.exitCode === null) srv.kill('SIGKILL');
  }
}

function report(results: Map<string, number[]>, cpu: Map<string, number[]>, o: OverlayBenchOptions): void {
  for (const [path, samples] of results) record.add({ part: 'overlay', measure: 'TCP throughput container to container', unit: 'Gbit/s', better: 'higher', path, samples });
  for (const [path, samples] of cpu) record.add({ part: 'overlay', measure: 'engine CPU per byte', unit: 'ns/byte', better: 'lower', path, samples });
  const med = (name: string) => median(results.get(name)!);
  const [kernel, clear, encrypted] = [med(KERNEL_PATH), med(CLEAR_PATH), med(ENCRYPTED_PATH)];
  console.log(`\noverlay TCP throughput (iperf3, one stream, ${o.rounds} x ${o.seconds} s, medians, Gbit/s)`);
  for (const name of results.keys()) console.log(`${name.padEnd(20)} ${med(name).toFixed(2).padStart(7)}`);
  console.log(`ratios: swarmnet clear / kernel ${(clear / kernel).toFixed(2)}, swarmnet encrypted / kernel ${(encrypted / kernel).toFixed(2)}, encrypted / clear ${(encrypted / clear).toFixed(2)}`);
  console.log(`engine CPU per byte (both agents' TX and RX threads, on-CPU ns / bytes received, medians): ${[...cpu].map(([name, xs]) => `${name} ${median(xs).toFixed(2)}`).join(', ')} ns/byte`);
}

export async function overlayBench(o: OverlayBenchOptions): Promise<void> {
  if (!which('iperf3') || !which('nats-server')) {
    console.log('overlay: skipped, needs iperf3 and nats-server (apt-get install iperf3 nats-server)');
    return;
  }
  teardown();
  try {
    await inTempDir('overlay', async (dir) => {
      underlay();
      kernelPair();
      const pids: number[] = [];
      const paths: Path[] = [{ name: KERNEL_PATH, from: 'swbench-k1', to: 'swbench-k2', server: `${KERNEL_NET}.2` }, ...(await swarmnetPaths(dir, pids))];
      for (const p of paths) await reach(p);
      const results = new Map<string, number[]>(paths.map((p) => [p.name, []]));
      const cpu = new Map<string, number[]>(paths.filter((p) => p.name !== KERNEL_PATH).map((p) => [p.name, []]));
      for (let r = 1; r <= o.rounds; r++) {
        for (const p of paths) {
          const before = engineCpuNs(pids);
          const { gbps, bytes } = await iperf(p, o.seconds);
          results.get(p.name)!.push(gbps);
          cpu.get(p.name)?.push((engineCpuNs(pids) - before) / bytes);
        }
        const cpuNow = [...cpu].map(([name, xs]) => `${name} ${xs[r - 1]!.toFixed(2)}`).join(', ');
        process.stderr.write(`overlay round ${r}/${o.rounds}: ${paths.map((p) => `${p.name} ${results.get(p.name)![r - 1]!.toFixed(2)}`).join(', ')} Gbit/s; engine CPU ${cpuNow} ns/byte\n`);
      }
      report(results, cpu, o);
    });
  } finally {
    // The agents are gone (inTempDir); their TAPs and bridges go with the namespaces.
    await new Promise((r) => setTimeout(r, 300));
    teardown();
  }
}
