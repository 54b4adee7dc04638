/**
 * Routing-mesh benchmark: the same transfers, in one run, through
 *   (a) a direct connection to the backend,
 *   (b) HAProxy in tcp mode (if installed), and
 *   (c) the swarmnet mesh,
 * interleaved round by round so machine noise hits every path alike; medians and
 * ratios printed at the end.
 *
 * Clients and servers are C programs so the client is not the bottleneck:
 *   throughput   iperf3 (TCP, one stream)
 *   conn/s       wrk with `Connection: close` (a new TCP connection per request)
 *                against an HAProxy HTTP responder (a node http server if no HAProxy)
 *   UDP pkt/s    iperf3 -u, 64-byte datagrams, unlimited rate; received packets/s
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { agentApi, startAgent } from './lib/agent.js';
import { inTempDir, median, run, start, waitTcp, which } from './lib/procs.js';

const NET = '127.0.77';
const MESH = `${NET}.1`;
const BACKEND = `${NET}.2`;
const HAPROXY = `${NET}.3`;
const IPERF_PORT = 5201;
const HTTP_PORT = 8080;
const PUB_IPERF = 15201;
const PUB_HTTP = 18080;

export interface MeshBenchOptions {
  rounds: number;
  seconds: number;
  haproxyThreads: number;
}

interface PathDef {
  name: string;
  host: string;
  iperf: number;
  http: number;
  udp: boolean;
}

export async function meshBench(o: MeshBenchOptions): Promise<void> {
  const iperf3 = which('iperf3');
  const wrk = which('wrk');
  const haproxy = which('haproxy');
  if (!iperf3 || !wrk) throw new Error('bench needs iperf3 and wrk: apt-get install -y iperf3 wrk (and haproxy for the HAProxy column)');
  await inTempDir('mesh', async (dir) => {
    start(iperf3, ['-s', '-B', BACKEND, '-p', String(IPERF_PORT)]);
    if (haproxy) {
      writeFileSync(join(dir, 'responder.cfg'), responderCfg());
      start(haproxy, ['-f', join(dir, 'responder.cfg'), '-db']);
      writeFileSync(join(dir, 'peer.cfg'), peerCfg(o.haproxyThreads));
      start(haproxy, ['-f', join(dir, 'peer.cfg'), '-db']);
    } else {
      const srv = createServer((_, res) => res.end('ok'));
      srv.listen(HTTP_PORT, BACKEND).unref(); // not a child: unref'd so the run can end
    }
    const socket = join(dir, 'agent.sock');
    await startAgent({ socket, args: ['--data-dir', join(dir, 'agent'), '--ingress-addr', MESH, '--log-level', 'warn', '--no-overlay'] });
    const iperfPort = { target: IPERF_PORT, published: PUB_IPERF };
    await agentApi(socket, 'POST', '/v1/services', { name: 'iperf', ports: [iperfPort, { ...iperfPort, protocol: 'udp' }] });
    await agentApi(socket, 'POST', '/v1/tasks', { service: 'iperf', addr: BACKEND });
    await agentApi(socket, 'POST', '/v1/services', { name: 'http', ports: [{ target: HTTP_PORT, published: PUB_HTTP }] });
    await agentApi(socket, 'POST', '/v1/tasks', { service: 'http', addr: BACKEND });
    await waitTcp(BACKEND, IPERF_PORT);
    await waitTcp(BACKEND, HTTP_PORT);

    const paths: PathDef[] = [
      { name: 'direct', host: BACKEND, iperf: IPERF_PORT, http: HTTP_PORT, udp: true },
      ...(haproxy ? [{ name: `haproxy (${o.haproxyThreads} thread${o.haproxyThreads > 1 ? 's' : ''})`, host: HAPROXY, iperf: PUB_IPERF, http: PUB_HTTP, udp: false }] : []),
      { name: 'swarmnet mesh', host: MESH, iperf: PUB_IPERF, http: PUB_HTTP, udp: true },
    ];
    const results = new Map<string, { gbps: number[]; cps: number[]; pps: number[] }>(paths.map((p) => [p.name, { gbps: [], cps: [], pps: [] }]));
    for (let round = 1; round <= o.rounds; round++) {
      for (const p of paths) {
        const r = results.get(p.name)!;
        r.gbps.push(await tcpThroughput(iperf3, p, o.seconds));
        r.cps.push(await connRate(wrk, p, o.seconds));
        if (p.udp) r.pps.push(await udpRate(iperf3, p, o.seconds));
        process.stderr.write(`round ${round}/${o.rounds} ${p.name}: ${r.gbps.at(-1)!.toFixed(2)} Gbit/s, ${Math.round(r.cps.at(-1)!)} conn/s${p.udp ? `, ${Math.round(r.pps.at(-1)!)} pkt/s` : ''}\n`);
      }
    }
    report(paths, results, o);
  });
}

async function tcpThroughput(iperf3: string, p: PathDef, seconds: number): Promise<number> {
  const out = JSON.parse(await run(iperf3, ['-c', p.host, '-p', String(p.iperf), '-t', String(seconds), '-J'])) as { end: { sum_received: { bits_per_second: number } } };
  return out.end.sum_received.bits_per_second / 1e9;
}

async function connRate(wrk: string, p: PathDef, seconds: number): Promise<number> {
  const out = await run(wrk, ['-t1', '-c32', `-d${seconds}s`, '-H', 'Connection: close', `http://${p.host}:${p.http}/`]);
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!m) throw new Error(`wrk output not understood: ${out}`);
  const errors = /Socket errors: (.*)/.exec(out);
  if (errors) process.stderr.write(`  ${p.name}: wrk socket errors: ${errors[1]}\n`);
  return Number(m[1]);
}

async function udpRate(iperf3: string, p: PathDef, seconds: number): Promise<number> {
  const out = JSON.parse(await run(iperf3, ['-c', p.host, '-p', String(p.iperf), '-u', '-b', '0', '-l', '64', '-t', String(seconds), '-J'])) as {
    end: { sum: { packets: number; lost_packets: number; seconds: number } };
  };
  const s = out.end.sum;
  return (s.packets - s.lost_packets) / s.seconds;
}

function report(paths: PathDef[], results: Map<string, { gbps: number[]; cps: number[]; pps: number[] }>, o: MeshBenchOptions): void {
  const med = (name: string, k: 'gbps' | 'cps' | 'pps') => {
    const v = results.get(name)?.[k] ?? [];
    return v.length ? median(v) : NaN;
  };
  const fmt = (v: number, digits = 0) => (Number.isNaN(v) ? 'n/a' : v.toFixed(digits));
  console.log(`\nrouting mesh, medians of ${o.rounds} rounds x ${o.seconds} s (loopback, ${process.platform}, node ${process.version})`);
  console.log(['path'.padEnd(22), 'TCP Gbit/s'.padStart(11), 'conn/s'.padStart(10), 'UDP pkt/s'.padStart(11)].join(''));
  for (const p of paths) console.log([p.name.padEnd(22), fmt(med(p.name, 'gbps'), 2).padStart(11), fmt(med(p.name, 'cps')).padStart(10), fmt(med(p.name, 'pps')).padStart(11)].join(''));
  const mesh = 'swarmnet mesh';
  const ratio = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? 'n/a' : (a / b).toFixed(2));
  console.log('\nratios');
  for (const peer of paths.filter((p) => p.name !== mesh)) {
    console.log(
      `  mesh/${peer.name}: throughput ${ratio(med(mesh, 'gbps'), med(peer.name, 'gbps'))}, conn/s ${ratio(med(mesh, 'cps'), med(peer.name, 'cps'))}, UDP pkt/s ${ratio(med(mesh, 'pps'), med(peer.name, 'pps'))}`,
    );
  }
}

function responderCfg(): string {
  return `global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 3s
  timeout client 30s
  timeout server 30s
frontend responder
  bind ${BACKEND}:${HTTP_PORT}
  http-request return status 200 content-type text/plain string ok
`;
}

function peerCfg(threads: number): string {
  return `global
  nbthread ${threads}
  maxconn 8000
defaults
  mode tcp
  timeout connect 3s
  timeout client 900s
  timeout server 900s
frontend iperf
  bind ${HAPROXY}:${PUB_IPERF}
  default_backend iperf
backend iperf
  server s1 ${BACKEND}:${IPERF_PORT}
frontend http
  bind ${HAPROXY}:${PUB_HTTP}
  default_backend http
backend http
  server s1 ${BACKEND}:${HTTP_PORT}
`;
}
