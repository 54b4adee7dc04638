/**
 * Routing-mesh benchmark: the same workloads, in one run, through
 *   (a) a direct connection to the backend,
 *   (b) HAProxy in tcp mode (if installed) at each thread count (`nbthread`), and
 *   (c) the swarmnet mesh at each thread count (`swarmnet agent --threads`),
 * interleaved round by round so machine noise hits every path alike; medians and
 * ratios printed at the end.
 *
 * Clients and servers are C programs so the client is not the bottleneck:
 *   throughput   iperf3 (TCP, one stream)
 *   conn/s       wrk with `Connection: close` (a new TCP connection per request)
 *   req/s        wrk, 50 keep-alive connections, small requests and replies; p50/p99
 *                from wrk's latency distribution
 *   UDP pkt/s    iperf3 -u, 64-byte datagrams, unlimited rate; received packets/s
 * The HTTP server is HAProxy's `http-request return` responder (a node http server if
 * there is no HAProxy).
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { agentApi, startAgent } from './lib/agent.js';
import { inTempDir, run, start, waitTcp, which } from './lib/procs.js';
import { udp64Args, udpReceivedRate } from './lib/iperf.js';
import { runWrk } from './lib/wrk.js';
import { report, type Measure, type PathDef, type Results } from './mesh-report.js';

const NET = '127.0.77';
const BACKEND = `${NET}.2`;
/** Per thread count T: the mesh on .1x, HAProxy on .2x (T = 1 keeps .1 and .3 of earlier runs). */
const meshAddr = (t: number) => (t === 1 ? `${NET}.1` : `${NET}.${10 + t}`);
const haproxyAddr = (t: number) => (t === 1 ? `${NET}.3` : `${NET}.${20 + t}`);
const IPERF_PORT = 5201;
const HTTP_PORT = 8080;
const PUB_IPERF = 15201;
const PUB_HTTP = 18080;
/** Persistent connections of the request/response measure. */
const RR_CONNS = 50;
/** Connections of the new-connection measure (each request opens one). */
const CPS_CONNS = 32;

export interface MeshBenchOptions {
  rounds: number;
  seconds: number;
  /** Thread counts compared: HAProxy `nbthread` and the mesh's `--threads`. */
  threads: number[];
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
      for (const t of o.threads) {
        writeFileSync(join(dir, `peer${t}.cfg`), peerCfg(t));
        start(haproxy, ['-f', join(dir, `peer${t}.cfg`), '-db']);
      }
    } else {
      const srv = createServer((_, res) => res.end('ok'));
      srv.listen(HTTP_PORT, BACKEND).unref(); // not a child: unref'd so the run can end
    }
    for (const t of o.threads) await startMesh(dir, t);
    await waitTcp(BACKEND, IPERF_PORT);
    await waitTcp(BACKEND, HTTP_PORT);

    const plural = (t: number) => `${t} thread${t > 1 ? 's' : ''}`;
    const paths: PathDef[] = [{ name: 'direct', kind: 'direct', threads: 0, host: BACKEND, iperf: IPERF_PORT, http: HTTP_PORT, udp: true }];
    for (const t of o.threads) {
      if (haproxy) paths.push({ name: `haproxy (${plural(t)})`, kind: 'haproxy', threads: t, host: haproxyAddr(t), iperf: PUB_IPERF, http: PUB_HTTP, udp: false });
      paths.push({ name: `mesh (${plural(t)})`, kind: 'mesh', threads: t, host: meshAddr(t), iperf: PUB_IPERF, http: PUB_HTTP, udp: true });
    }
    const results: Results = new Map(paths.map((p) => [p.name, new Map<Measure, number[]>()]));
    const add = (p: PathDef, m: Measure, v: number) => {
      const r = results.get(p.name)!;
      r.set(m, [...(r.get(m) ?? []), v]);
    };
    for (let round = 1; round <= o.rounds; round++) {
      for (const p of paths) {
        const gbps = await tcpThroughput(iperf3, p, o.seconds);
        add(p, 'gbps', gbps);
        const cps = await runWrk(wrk, { url: `http://${p.host}:${p.http}/`, connections: CPS_CONNS, seconds: o.seconds, headers: ['Connection: close'] });
        add(p, 'cps', cps.rps);
        const rr = await runWrk(wrk, { url: `http://${p.host}:${p.http}/`, connections: RR_CONNS, seconds: o.seconds, latency: true });
        add(p, 'rps', rr.rps);
        add(p, 'p50', rr.p50Us);
        add(p, 'p99', rr.p99Us);
        for (const e of [cps.socketErrors, rr.socketErrors]) if (e) process.stderr.write(`  ${p.name}: wrk socket errors: ${e}\n`);
        const pps = p.udp ? await udpRate(iperf3, p, o.seconds) : undefined;
        if (pps !== undefined) add(p, 'pps', pps);
        process.stderr.write(
          `round ${round}/${o.rounds} ${p.name}: ${gbps.toFixed(2)} Gbit/s, ${Math.round(cps.rps)} conn/s, ` +
            `${Math.round(rr.rps)} req/s (p50 ${Math.round(rr.p50Us)} us, p99 ${Math.round(rr.p99Us)} us)${pps === undefined ? '' : `, ${Math.round(pps)} pkt/s`}\n`,
        );
      }
    }
    report(paths, results, o);
  });
}

/** An agent whose data plane runs on `threads` threads, publishing both services on its own address. */
async function startMesh(dir: string, threads: number): Promise<void> {
  const socket = join(dir, `agent${threads}.sock`);
  const args = ['--data-dir', join(dir, `agent${threads}`), '--ingress-addr', meshAddr(threads), '--log-level', 'warn', '--no-overlay', '--threads', String(threads)];
  await startAgent({ socket, args });
  const iperfPort = { target: IPERF_PORT, published: PUB_IPERF };
  await agentApi(socket, 'POST', '/v1/services', { name: 'iperf', ports: [iperfPort, { ...iperfPort, protocol: 'udp' }] });
  await agentApi(socket, 'POST', '/v1/tasks', { service: 'iperf', addr: BACKEND });
  await agentApi(socket, 'POST', '/v1/services', { name: 'http', ports: [{ target: HTTP_PORT, published: PUB_HTTP }] });
  await agentApi(socket, 'POST', '/v1/tasks', { service: 'http', addr: BACKEND });
  await waitTcp(meshAddr(threads), PUB_HTTP);
}

/** Tries of one iperf3 measure, and the pause between them. */
const IPERF_TRIES = 3;
const IPERF_RETRY_MS = 1_000;

interface IperfEnd {
  sum_received?: { bits_per_second: number };
  sum?: object;
}

interface IperfOut {
  end?: IperfEnd;
  server_output_text?: string;
  error?: string;
}

/**
 * One iperf3 client run's JSON (its `end` holding `want`). On the loaded machine a run came back without sums
 * twice and ended the whole bench (likely cause, not confirmed: iperf3 -s serves one test at
 * a time and turns away a client that comes while it winds up the previous one or waitTcp's
 * probe); so such a run is tried again after a pause, and iperf3's error is printed.
 */
async function iperfRun(iperf3: string, args: string[], want: keyof IperfEnd): Promise<IperfOut & { end: IperfEnd }> {
  let last = '';
  for (let i = 1; i <= IPERF_TRIES; i++) {
    let out: IperfOut;
    try {
      out = JSON.parse(await run(iperf3, args.includes('-J') ? args : [...args, '-J'])) as IperfOut;
    } catch (err) {
      out = { error: (err as Error).message }; // a non-zero exit: its JSON says why
    }
    if (out.end?.[want]) return out as IperfOut & { end: IperfEnd };
    last = out.error ?? 'no result';
    process.stderr.write(`  iperf3 ${args.join(' ')}: ${last} (try ${i}/${IPERF_TRIES})\n`);
    await new Promise((r) => setTimeout(r, IPERF_RETRY_MS));
  }
  throw new Error(`iperf3 ${args.join(' ')}: ${last}`);
}

async function tcpThroughput(iperf3: string, p: PathDef, seconds: number): Promise<number> {
  const { end } = await iperfRun(iperf3, ['-c', p.host, '-p', String(p.iperf), '-t', String(seconds)], 'sum_received');
  return end.sum_received!.bits_per_second / 1e9;
}

/** Datagrams the server received (lib/iperf.ts says why not the client's count). */
async function udpRate(iperf3: string, p: PathDef, seconds: number): Promise<number> {
  return udpReceivedRate(await iperfRun(iperf3, udp64Args(p.host, p.iperf, seconds), 'sum'));
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
  timeout http-keep-alive 30s
frontend responder
  bind ${BACKEND}:${HTTP_PORT}
  http-request return status 200 content-type text/plain string ok
`;
}

function peerCfg(threads: number): string {
  const at = haproxyAddr(threads);
  return `global
  nbthread ${threads}
  maxconn 8000
defaults
  mode tcp
  timeout connect 3s
  timeout client 900s
  timeout server 900s
frontend iperf
  bind ${at}:${PUB_IPERF}
  default_backend iperf
backend iperf
  server s1 ${BACKEND}:${IPERF_PORT}
frontend http
  bind ${at}:${PUB_HTTP}
  default_backend http
backend http
  server s1 ${BACKEND}:${HTTP_PORT}
`;
}
