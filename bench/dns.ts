/**
 * DNS benchmark: queries per second with dnsperf against swarmnet's embedded DNS and
 * against dnsmasq serving the same records, in one run, rounds interleaved, medians and
 * the ratio, per kind of query and for the mix of cluster names:
 *   A        <service> (VIP) and <task> names
 *   AAAA     a service name without AAAA: NODATA (RFC 2308 section 2.2)
 *   tasks.   tasks.<service>
 *   PTR      d.c.b.a.in-addr.arpa of VIPs and task IPs
 *   NXDOMAIN names outside the cluster: both forward to the same upstream, a third dnsmasq
 *            that gives NXDOMAIN with the zone's SOA (TTL and MINIMUM 30 s), so
 *            both cache the answer for 30 s (RFC 2308 section 5), as against a real resolver
 *            (the upstream asks it of a fourth dnsmasq, authoritative for `example`)
 *   uncached names the upstream answers NXDOMAIN without SOA (`--local`): neither may cache
 *            them (RFC 2308 section 5), every query goes upstream: the forwarding itself
 * dnsmasq gets the same data as a hosts file (`<vip> svcN`, `<task ip> svcN-t tasks.svcN`,
 * which also gives it the PTRs) and the same TTL. Before measuring, one query of each
 * kind is asked of both with dig and the answers compared.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentApi, startAgent } from './lib/agent.js';
import { inTempDir, median, run, start, waitTcp, which } from './lib/procs.js';
import { results } from './lib/results.js';

const AGENT = '127.0.81.1';
const DNSMASQ = '127.0.81.2';
const UPSTREAM = '127.0.81.3';
const AUTH = '127.0.81.4';
const PORT = 5353;
const TTL = 5;

export interface DnsBenchOptions {
  rounds: number;
  seconds: number;
  services: number;
}

interface Kind {
  name: string;
  /** dnsperf lines: `name TYPE`. */
  queries: string[];
}

export async function dnsBench(o: DnsBenchOptions): Promise<void> {
  const dnsperf = which('dnsperf');
  const dnsmasq = which('dnsmasq');
  const dig = which('dig');
  if (!dnsperf || !dnsmasq || !dig) throw new Error('bench dns needs dnsperf, dnsmasq and dig: apt-get install -y dnsperf dnsmasq-base bind9-dnsutils');
  await inTempDir('dns', async (dir) => {
    const socket = join(dir, 'agent.sock');
    const upstream = `${UPSTREAM}:${PORT}`;
    await startAgent({ socket, args: ['--data-dir', join(dir, 'agent'), '--ingress-addr', AGENT, '--dns', `${AGENT}:${PORT}`, '--dns-upstream', upstream, '--dns-ttl', String(TTL), '--log-level', 'error', '--no-overlay'] });
    const post = (path: string, body: unknown) => agentApi<{ networks?: Array<{ vip: string }>; addresses?: Array<{ ip: string }>; name: string }>(socket, 'POST', path, body);
    await post('/v1/networks', { name: 'benchnet', subnet: '10.77.0.0/16' });
    const hosts: string[] = [];
    const kinds: Kind[] = [
      { name: 'A', queries: [] },
      { name: 'AAAA', queries: [] },
      { name: 'tasks.', queries: [] },
      { name: 'PTR', queries: [] },
      { name: 'NXDOMAIN', queries: [] },
      { name: 'uncached', queries: [] },
    ];
    const [a, aaaa, tasks, ptr, nx, uncached] = kinds.map((k) => k.queries) as [string[], string[], string[], string[], string[], string[]];
    for (let i = 0; i < o.services; i++) {
      const s = await post('/v1/services', { name: `svc${i}`, networks: ['benchnet'] });
      const vip = s.networks![0]!.vip;
      const tk = await post('/v1/tasks', { service: `svc${i}`, network: 'benchnet', name: `svc${i}-t` });
      const ip = tk.addresses![0]!.ip;
      hosts.push(`${vip} svc${i}`, `${ip} svc${i}-t tasks.svc${i}`);
      a.push(`svc${i} A`, `svc${i}-t A`);
      aaaa.push(`svc${i} AAAA`);
      tasks.push(`tasks.svc${i} A`);
      ptr.push(`${reverse(vip)} PTR`, `${reverse(ip)} PTR`);
      nx.push(`nosuch${i}.example A`);
      uncached.push(`nosuch${i}.nosoa A`);
    }
    // The mix of cluster names: every kind above but NXDOMAIN (forwarded), interleaved.
    const mix = interleave([a, aaaa, tasks, ptr]);
    kinds.push({ name: 'mix', queries: mix });
    writeFileSync(join(dir, 'hosts'), hosts.join('\n') + '\n');
    for (const k of kinds) writeFileSync(join(dir, `q-${k.name}`), k.queries.join('\n') + '\n');
    const common = ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--bind-interfaces', `--port=${PORT}`, '--user=root', '--pid-file='];
    // The upstream: NXDOMAIN without SOA for every name (not cacheable, RFC 2308 section 5),
    // but `example`, which it asks of a dnsmasq authoritative for it: NXDOMAIN with an SOA
    // (cacheable for 30 s). Auth mode needs --bind-dynamic and answers only its zone.
    start(dnsmasq, [...common, `--listen-address=${UPSTREAM}`, '--local=/#/', `--server=/example/${AUTH}#${PORT}`]);
    start(dnsmasq, [...common.filter((a) => a !== '--bind-interfaces'), '--bind-dynamic', `--listen-address=${AUTH}`, `--auth-server=ns.example,${AUTH}`, `--auth-zone=example,${AUTH}/32`, '--auth-soa=1,hostmaster.example,1200,120,604800,30', '--auth-ttl=30']);
    start(dnsmasq, [...common, `--addn-hosts=${join(dir, 'hosts')}`, `--local-ttl=${TTL}`, `--server=${UPSTREAM}#${PORT}`, `--listen-address=${DNSMASQ}`, '--cache-size=10000']);
    await waitTcp(DNSMASQ, PORT);
    await waitTcp(UPSTREAM, PORT);
    const servers = [
      { name: 'dnsmasq', host: DNSMASQ },
      { name: 'swarmnet', host: AGENT },
    ];
    for (const k of kinds) await sameAnswers(dig, servers, k.queries[0]!);
    const qps = new Map<string, number[]>();
    for (let r = 1; r <= o.rounds; r++) {
      for (const k of kinds) {
        for (const s of servers) {
          const out = await run(dnsperf, ['-s', s.host, '-p', String(PORT), '-d', join(dir, `q-${k.name}`), '-l', String(o.seconds), '-c', '4', '-Q', '200000']);
          const m = /Queries per second:\s+([\d.]+)/.exec(out);
          const lost = /Queries lost:\s+(\d+)/.exec(out)?.[1];
          if (!m) throw new Error(`dnsperf output not understood: ${out}`);
          const key = `${k.name}/${s.name}`;
          qps.set(key, [...(qps.get(key) ?? []), Number(m[1])]);
          process.stderr.write(`round ${r}/${o.rounds} ${k.name.padEnd(8)} ${s.name.padEnd(8)}: ${Number(m[1]).toFixed(0)} qps (lost ${lost})\n`);
        }
      }
    }
    console.log(`\nDNS, dnsperf -c 4, ${o.services} services + ${o.services} tasks, medians of ${o.rounds} rounds x ${o.seconds} s (qps)`);
    console.log(`${'query'.padEnd(10)} ${'dnsmasq'.padStart(9)} ${'swarmnet'.padStart(9)}  ratio`);
    for (const k of kinds) {
      for (const x of servers) results.add({ part: 'dns', measure: `${k.name} queries`, unit: 'queries/s', better: 'higher', path: x.name, samples: qps.get(`${k.name}/${x.name}`)! });
      const [d, s] = servers.map((x) => median(qps.get(`${k.name}/${x.name}`)!)) as [number, number];
      console.log(`${k.name.padEnd(10)} ${d.toFixed(0).padStart(9)} ${s.toFixed(0).padStart(9)}  ${(s / d).toFixed(2)}`);
    }
  });
}

/** `10.77.0.2` -> `2.0.77.10.in-addr.arpa` (RFC 1035 section 3.5). */
function reverse(ip: string): string {
  return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
}

function interleave(lists: string[][]): string[] {
  const out: string[] = [];
  const longest = Math.max(...lists.map((l) => l.length));
  for (let i = 0; i < longest; i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

/** The two servers give the same status and records (owner, TTL, type, data) for `line`, or the bench stops. */
async function sameAnswers(dig: string, servers: Array<{ name: string; host: string }>, line: string): Promise<void> {
  const [name, type] = line.split(' ') as [string, string];
  const answers = await Promise.all(
    servers.map(async (s) => {
      const out = await run(dig, [`@${s.host}`, '-p', String(PORT), name, type, '+noall', '+comments', '+answer', '+time=2', '+tries=1']);
      const status = /status: (\w+)/.exec(out)?.[1];
      const records = out.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/).join(' ').toLowerCase()).sort();
      return `${status} ${records.join(' | ')}`;
    }),
  );
  if (answers[0] !== answers[1]) throw new Error(`${line}: the servers disagree: ${servers.map((s, i) => `${s.name}: ${answers[i]}`).join('; ')}`);
}
