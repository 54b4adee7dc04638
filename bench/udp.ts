/**
 * UDP routing-mesh benchmark: the same traffic, in one run, straight to the task
 * (direct), through the mesh's native UDP engine, and through its JavaScript path
 * (an agent with --no-native-relay), rounds interleaved so machine noise hits every
 * path alike; medians and ratios at the end.
 *
 *   pkt/s        iperf3 -u -l 64 -b 0: 64-byte datagrams at full speed, one flow;
 *                datagrams/s the server reports it received
 *   new flows/s  bench/tools/udpflows.c: one datagram from each of many new source
 *                addresses (a new flow each), answered by an echo server; answered/s.
 *                The service has 32 tasks (32 echo ports) and the agents run with
 *                --udp-timeout 500ms: flows toward one task are bounded by the
 *                engine's upstream sockets (--udp-sockets, 4096), so a steady stream of
 *                new flows needs them to expire (docs/mesh.md).
 */
import { join } from 'node:path';
import { agentApi, startAgent } from './lib/agent.js';
import { inTempDir, median, run, start, waitTcp, which } from './lib/procs.js';
import { udp64Args, udpReceivedRate } from './lib/iperf.js';
import { results as record } from './lib/results.js';
import { buildUdpFlows, flood, startEcho, udpFlowsUnavailable } from './lib/udpflows.js';

const NET = '127.0.77';
const NATIVE = `${NET}.1`;
const BACKEND = `${NET}.2`;
const JS = `${NET}.4`;
/** The native engine on Node's loop (--threads 1), beside NATIVE on one engine thread per core. */
const NATIVE1 = `${NET}.5`;
const IPERF_PORT = 5201;
const PUB_IPERF = 15201;
const ECHO_PORT = 17000;
const ECHO_TASKS = 32;
const PUB_ECHO = 17000;
const UDP_TIMEOUT = '500ms';
/** Sources per flood round: more than one round sends (200,000/s for 10 s); the tool has 67 M (udpflows.c), so 16 rounds pass before a flow repeats. */
const SOURCES_PER_ROUND = 4_000_000;

export interface UdpBenchOptions {
  rounds: number;
  seconds: number;
}

interface Path {
  name: string;
  host: string;
  iperf: number;
  echo: number;
}

type Figures = { pps: number[]; fps: number[] };

export async function udpBench(o: UdpBenchOptions): Promise<void> {
  const iperf3 = which('iperf3');
  if (!iperf3) throw new Error('bench udp needs iperf3: apt-get install -y iperf3');
  const noFlows = udpFlowsUnavailable();
  if (noFlows) process.stderr.write(`udp: new flows/s not measured: ${noFlows}\n`);
  await inTempDir('udp', async (dir) => {
    const tool = noFlows ? undefined : buildUdpFlows(dir);
    start(iperf3, ['-s', '-B', BACKEND, '-p', String(IPERF_PORT)]);
    if (tool) await startEcho(tool, BACKEND, ECHO_PORT, ECHO_TASKS);
    for (const [ip, extra] of [[NATIVE, []], [NATIVE1, ['--threads', '1']], [JS, ['--no-native-relay']]] as const) {
      const socket = join(dir, `agent-${ip}.sock`);
      await startAgent({ socket, args: ['--data-dir', join(dir, `agent-${ip}`), '--ingress-addr', ip, '--log-level', 'warn', '--no-overlay', '--udp-timeout', UDP_TIMEOUT, ...extra] });
      // iperf3 runs its control connection over TCP on the same port.
      const iperfPort = { target: IPERF_PORT, published: PUB_IPERF };
      await agentApi(socket, 'POST', '/v1/services', { name: 'iperf', ports: [iperfPort, { ...iperfPort, protocol: 'udp' }] });
      await agentApi(socket, 'POST', '/v1/tasks', { service: 'iperf', addr: BACKEND });
      await agentApi(socket, 'POST', '/v1/services', { name: 'echo', ports: [{ protocol: 'udp', target: ECHO_PORT, published: PUB_ECHO }] });
      for (let i = 0; i < ECHO_TASKS; i++) await agentApi(socket, 'POST', '/v1/tasks', { service: 'echo', addr: `${BACKEND}:${ECHO_PORT + i}` });
    }
    await waitTcp(BACKEND, IPERF_PORT);

    const paths: Path[] = [
      { name: 'direct', host: BACKEND, iperf: IPERF_PORT, echo: ECHO_PORT },
      { name: 'mesh native', host: NATIVE, iperf: PUB_IPERF, echo: PUB_ECHO },
      { name: 'native 1 thr', host: NATIVE1, iperf: PUB_IPERF, echo: PUB_ECHO },
      { name: 'mesh js', host: JS, iperf: PUB_IPERF, echo: PUB_ECHO },
    ];
    const results = new Map<string, Figures>(paths.map((p) => [p.name, { pps: [], fps: [] }]));
    let sources = 0;
    for (let round = 1; round <= o.rounds; round++) {
      for (const p of paths) {
        const r = results.get(p.name)!;
        r.pps.push(await packetRate(iperf3, p, o.seconds));
        let flows = '';
        if (tool) {
          const f = await flood(tool, p.host, p.echo, o.seconds, (sources += SOURCES_PER_ROUND));
          r.fps.push(f.rate);
          flows = `, ${Math.round(f.rate)} new flows/s (${f.received}/${f.sent} answered)`;
        }
        process.stderr.write(`udp round ${round}/${o.rounds} ${p.name}: ${Math.round(r.pps.at(-1)!)} pkt/s${flows}\n`);
      }
    }
    report(paths, results, o);
  });
}

/** iperf3 UDP, 64-byte datagrams, unlimited rate: datagrams the server received, per second (lib/iperf.ts). */
async function packetRate(iperf3: string, p: Path, seconds: number): Promise<number> {
  return udpReceivedRate(JSON.parse(await run(iperf3, udp64Args(p.host, p.iperf, seconds))) as { server_output_text?: string });
}

function report(paths: Path[], results: Map<string, Figures>, o: UdpBenchOptions): void {
  const med = (name: string, k: keyof Figures) => {
    const v = results.get(name)![k];
    return v.length ? median(v) : NaN;
  };
  for (const p of paths) {
    const f = results.get(p.name)!;
    record.add({ part: 'udp', measure: 'packets (64 B)', unit: 'packets/s', better: 'higher', path: p.name, samples: f.pps });
    record.add({ part: 'udp', measure: 'new flows', unit: 'flows/s', better: 'higher', path: p.name, samples: f.fps });
  }
  const fmt = (v: number) => (Number.isNaN(v) ? 'n/a' : v.toFixed(0));
  const ratio = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? 'n/a' : (a / b).toFixed(2));
  console.log(`\nUDP through the mesh, medians of ${o.rounds} rounds x ${o.seconds} s (loopback, node ${process.version})`);
  console.log(['path'.padEnd(14), 'pkt/s (64 B)'.padStart(14), 'new flows/s'.padStart(13)].join(''));
  for (const p of paths) console.log([p.name.padEnd(14), fmt(med(p.name, 'pps')).padStart(14), fmt(med(p.name, 'fps')).padStart(13)].join(''));
  console.log('\nratios');
  for (const p of paths.filter((p) => p.name !== 'direct')) {
    console.log(`  ${p.name}/direct: pkt/s ${ratio(med(p.name, 'pps'), med('direct', 'pps'))}, new flows/s ${ratio(med(p.name, 'fps'), med('direct', 'fps'))}`);
  }
  console.log(`  mesh native/mesh js: pkt/s ${ratio(med('mesh native', 'pps'), med('mesh js', 'pps'))}, new flows/s ${ratio(med('mesh native', 'fps'), med('mesh js', 'fps'))}`);
}
