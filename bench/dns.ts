/**
 * DNS benchmark: queries per second with dnsperf against swarmnet's embedded DNS and
 * against dnsmasq serving the same records (a hosts file), in one run, rounds
 * interleaved, medians and the ratio. Both on loopback, both answering from memory.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentApi, startAgent } from './lib/agent.js';
import { inTempDir, median, run, start, waitTcp, which } from './lib/procs.js';

const AGENT = '127.0.81.1';
const DNSMASQ = '127.0.81.2';
const PORT = 5353;

export interface DnsBenchOptions {
  rounds: number;
  seconds: number;
  services: number;
}

export async function dnsBench(o: DnsBenchOptions): Promise<void> {
  const dnsperf = which('dnsperf');
  const dnsmasq = which('dnsmasq');
  if (!dnsperf || !dnsmasq) throw new Error('bench dns needs dnsperf and dnsmasq: apt-get install -y dnsperf dnsmasq-base');
  await inTempDir('dns', async (dir) => {
    const socket = join(dir, 'agent.sock');
    await startAgent({ socket, args: ['--data-dir', join(dir, 'agent'), '--ingress-addr', AGENT, '--dns', `${AGENT}:${PORT}`, '--dns-upstream', '127.0.81.9:53', '--log-level', 'error', '--no-overlay'] });
    const post = (path: string, body: unknown) => agentApi<{ networks?: Array<{ vip: string }>; addresses?: Array<{ ip: string }>; name: string }>(socket, 'POST', path, body);
    await post('/v1/networks', { name: 'benchnet', subnet: '10.77.0.0/16' });
    const hosts: string[] = [];
    const names: string[] = [];
    for (let i = 0; i < o.services; i++) {
      const s = await post('/v1/services', { name: `svc${i}`, networks: ['benchnet'] });
      hosts.push(`${s.networks![0]!.vip} svc${i}`);
      const tk = await post('/v1/tasks', { service: `svc${i}`, network: 'benchnet', name: `svc${i}-t` });
      hosts.push(`${tk.addresses![0]!.ip} svc${i}-t`);
      names.push(`svc${i} A`, `svc${i}-t A`);
    }
    writeFileSync(join(dir, 'hosts'), hosts.join('\n') + '\n');
    writeFileSync(join(dir, 'queries'), names.join('\n') + '\n');
    start(dnsmasq, ['--keep-in-foreground', '--no-resolv', '--no-hosts', `--addn-hosts=${join(dir, 'hosts')}`, `--listen-address=${DNSMASQ}`, '--bind-interfaces', `--port=${PORT}`, '--cache-size=10000', '--user=root', '--pid-file=']);
    await waitTcp(DNSMASQ, PORT);
    const servers = [
      { name: 'dnsmasq', host: DNSMASQ },
      { name: 'swarmnet', host: AGENT },
    ];
    const qps = new Map<string, number[]>(servers.map((s) => [s.name, []]));
    for (let r = 1; r <= o.rounds; r++) {
      for (const s of servers) {
        const out = await run(dnsperf, ['-s', s.host, '-p', String(PORT), '-d', join(dir, 'queries'), '-l', String(o.seconds), '-c', '4', '-Q', '200000']);
        const m = /Queries per second:\s+([\d.]+)/.exec(out);
        const lost = /Queries lost:\s+(\d+)/.exec(out)?.[1];
        if (!m) throw new Error(`dnsperf output not understood: ${out}`);
        qps.get(s.name)!.push(Number(m[1]));
        process.stderr.write(`round ${r}/${o.rounds} ${s.name}: ${Number(m[1]).toFixed(0)} qps (lost ${lost})\n`);
      }
    }
    const med = (n: string) => median(qps.get(n)!);
    console.log(`\nDNS, dnsperf -c 4, ${o.services * 2} names, medians of ${o.rounds} rounds x ${o.seconds} s`);
    for (const s of servers) console.log(`${s.name.padEnd(10)} ${med(s.name).toFixed(0).padStart(8)} qps`);
    console.log(`ratio swarmnet/dnsmasq: ${(med('swarmnet') / med('dnsmasq')).toFixed(2)}`);
  });
}
