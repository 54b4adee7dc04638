/** The mesh bench's summary: medians per path and measure, then the ratios the targets are stated in. */
import { median } from './lib/procs.js';
import { results as record } from './lib/results.js';

export type Measure = 'gbps' | 'cps' | 'rps' | 'p50' | 'p99' | 'pps';
export type Results = Map<string, Map<Measure, number[]>>;

export interface PathDef {
  name: string;
  kind: 'direct' | 'haproxy' | 'mesh';
  /** HAProxy nbthread or mesh --threads; 0 for direct. */
  threads: number;
  host: string;
  iperf: number;
  http: number;
  udp: boolean;
}

/** How each measure is recorded in the run's JSON and charts. */
const RECORDED: Record<Measure, { measure: string; unit: string; better: 'higher' | 'lower' }> = {
  gbps: { measure: 'TCP throughput', unit: 'Gbit/s', better: 'higher' },
  cps: { measure: 'new connections', unit: 'connections/s', better: 'higher' },
  rps: { measure: 'requests over 50 connections', unit: 'requests/s', better: 'higher' },
  p50: { measure: 'request latency p50', unit: 'us', better: 'lower' },
  p99: { measure: 'request latency p99', unit: 'us', better: 'lower' },
  pps: { measure: 'UDP packets (64 B)', unit: 'packets/s', better: 'higher' },
};

const COLUMNS: Array<[Measure, string, number]> = [
  ['gbps', 'TCP Gbit/s', 2],
  ['cps', 'conn/s', 0],
  ['rps', 'req/s', 0],
  ['p50', 'p50 us', 0],
  ['p99', 'p99 us', 0],
  ['pps', 'UDP pkt/s', 0],
];

export function report(paths: PathDef[], results: Results, o: { rounds: number; seconds: number }): void {
  const med = (name: string | undefined, m: Measure) => {
    const v = (name && results.get(name)?.get(m)) || [];
    return v.length ? median(v) : NaN;
  };
  for (const p of paths) for (const [m, samples] of results.get(p.name) ?? []) record.add({ part: 'mesh', ...RECORDED[m], path: p.name, samples });
  const fmt = (v: number, digits: number) => (Number.isNaN(v) ? 'n/a' : v.toFixed(digits));
  console.log(`\nrouting mesh, medians of ${o.rounds} rounds x ${o.seconds} s (loopback, ${process.platform}, node ${process.version})`);
  console.log(['path'.padEnd(22), ...COLUMNS.map(([, title]) => title.padStart(11))].join(''));
  for (const p of paths) console.log([p.name.padEnd(22), ...COLUMNS.map(([m, , d]) => fmt(med(p.name, m), d).padStart(11))].join(''));
  const ratio = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? 'n/a' : (a / b).toFixed(2));
  const find = (kind: PathDef['kind'], threads: number) => paths.find((p) => p.kind === kind && (kind === 'direct' || p.threads === threads))?.name;
  const line = (a: string, b: string | undefined, ms: Measure[]) =>
    b && console.log(`  ${a} / ${b}: ${ms.map((m) => `${COLUMNS.find((c) => c[0] === m)![1]} ${ratio(med(a, m), med(b, m))}`).join(', ')}`);
  console.log('\nratios (latency ratios: lower is better)');
  for (const mesh of paths.filter((p) => p.kind === 'mesh')) {
    line(mesh.name, find('haproxy', mesh.threads), ['gbps', 'cps', 'rps', 'p50', 'p99']);
    if (mesh.threads !== 1) line(mesh.name, find('haproxy', 1), ['cps', 'rps']);
    line(mesh.name, find('direct', 0), ['gbps', 'cps', 'rps', 'pps']);
  }
  for (const h of paths.filter((p) => p.kind === 'haproxy')) line(h.name, find('direct', 0), ['gbps', 'cps', 'rps']);
}
