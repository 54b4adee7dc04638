/**
 * Control-plane benchmark (cluster mode, real nats-server, agents as processes on
 * loopback addresses 127.0.78.0/24):
 *   convergence  a service created through one agent until every agent has applied it
 *                (in its view, its port listening), measured with the agents' /v1/wait
 *                long-poll; p50/p99 over the samples, for 3, 10 and 30 agents
 *   load         1,000 services x 10 tasks: time to write them through the API, and time
 *                for a fresh agent to start on that state until it listens on every port
 */
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { agentApi, startAgent } from './lib/agent.js';
import { results } from './lib/results.js';
import { inTempDir, start, waitTcp, which } from './lib/procs.js';

const NET = '127.0.78';
const NATS = `${NET}.254`;

export interface ControlBenchOptions {
  sizes: number[];
  samples: number;
  services: number;
  tasksPerService: number;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Agent i: ingress on 127.0.78.i, API on its own socket in the bench's directory. */
async function benchAgent(dir: string, i: number, timeoutMs?: number): Promise<{ socket: string; child: ChildProcess }> {
  const ip = `${NET}.${i}`;
  const socket = join(dir, `a${i}.sock`);
  const child = await startAgent({ socket, args: ['--nats', `nats://${NATS}:4222`, '--node-id', `bench${i}`, '--data-dir', join(dir, `a${i}`), '--ingress-addr', ip, '--log-level', 'error', '--no-overlay'], ...(timeoutMs && { timeoutMs }) });
  return { socket, child };
}

async function convergence(dir: string, n: number, samples: number, round: number): Promise<number[]> {
  const agents = await Promise.all(Array.from({ length: n }, (_, i) => benchAgent(dir, i + 1, 60_000)));
  const times: number[] = [];
  for (let k = 0; k < samples; k++) {
    const name = `conv-${round}-${k}`;
    const waits = agents.map((a) => agentApi(a.socket, 'GET', `/v1/wait?service=${name}&timeout=30000`).then(() => performance.now()));
    await new Promise((r) => setTimeout(r, 20)); // let every long-poll arrive first
    const t0 = performance.now();
    await agentApi(agents[k % n]!.socket, 'POST', '/v1/services', { name, ports: [{ target: 80 }] });
    const done = await Promise.all(waits);
    times.push(Math.max(...done) - t0);
  }
  for (const a of agents) a.child.kill('SIGKILL');
  return times;
}

async function load(dir: string, o: ControlBenchOptions): Promise<void> {
  const writer = await benchAgent(dir, 100);
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < o.services; i = next++) {
      await agentApi(writer.socket, 'POST', '/v1/services', { name: `load-${i}`, ports: [{ target: 80 }] });
      for (let j = 0; j < o.tasksPerService; j++) await agentApi(writer.socket, 'POST', '/v1/tasks', { service: `load-${i}`, addr: `10.${(i >> 8) & 255}.${i & 255}.${j + 1}:80` });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const writeMs = performance.now() - t0;
  const objects = o.services * (1 + o.tasksPerService);
  console.log(`load: wrote ${o.services} services x ${o.tasksPerService} tasks (${objects} objects) through one agent in ${(writeMs / 1000).toFixed(1)} s (${Math.round(objects / (writeMs / 1000))} objects/s, 16 concurrent clients)`);
  const t1 = performance.now();
  const fresh = await benchAgent(dir, 101, 120_000);
  for (;;) {
    const info = await agentApi<{ listening: string[] }>(fresh.socket, 'GET', '/v1/info');
    if (info.listening.length >= o.services) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log(`load: a fresh agent started and listened on all ${o.services} published ports in ${((performance.now() - t1) / 1000).toFixed(2)} s`);
}

export async function controlBench(o: ControlBenchOptions): Promise<void> {
  const nats = which('nats-server');
  if (!nats) throw new Error('bench control needs nats-server: apt-get install -y nats-server');
  await inTempDir('control', async (dir) => {
    start(nats, ['-js', '-a', NATS, '-p', '4222', '-sd', join(dir, 'nats')]);
    await waitTcp(NATS, 4222);
    console.log(`\ncontrol plane convergence (write on one agent -> applied on all), ${o.samples} samples each`);
    console.log(['agents'.padEnd(8), 'p50 ms'.padStart(8), 'p99 ms'.padStart(8), 'max ms'.padStart(8)].join(''));
    for (const [round, n] of o.sizes.entries()) {
      const times = await convergence(dir, n, o.samples, round);
      results.add({ part: 'control', measure: 'convergence', unit: 'ms', better: 'lower', path: `${n} agents`, samples: times });
      console.log([String(n).padEnd(8), percentile(times, 50).toFixed(1).padStart(8), percentile(times, 99).toFixed(1).padStart(8), Math.max(...times).toFixed(1).padStart(8)].join(''));
    }
    await load(dir, o);
  });
}
