/** The mesh bench's summary: medians per path and measure, then the ratios the targets are stated in. */
import { median } from './lib/procs.js';

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
