/**
 * 64-bit extended sequence numbers (RFC 4303 section 2.2.1): outbound SAs start just
 * below 2^32 (the test-only SWARMNET_TEST_ESP_SEQ_START), so the low 32 bits on the wire
 * wrap within a few hundred packets. Traffic keeps flowing across the wrap in both
 * directions, nothing is dropped as a replay or a forgery, and the counters pass 2^32:
 * where Swarm's kernel IPsec with 32-bit numbers stops (moby#52005).
 */
import t from 'tap';
import { join } from 'node:path';
import { createContainer, createTopology } from '../helpers/netns.js';
import { startNats } from '../helpers/nats.js';
import { metricValue, startHostAgent, startBackends, DIST, type AgentProc } from '../helpers/procs.js';
import { until } from '../helpers/net.js';

const START = 2n ** 32n - 300n;
const CLIENT = join(DIST, 'test/fixtures/client.js');
const topo = createTopology(t, 2);
const nats = await startNats(t, topo.gateway, 4222);
const env = { SWARMNET_TEST_ESP_SEQ_START: String(START) };
const agents: AgentProc[] = [];
for (const [i, h] of topo.hosts.entries()) agents.push(await startHostAgent(t, h, { nats: nats.url, nodeId: `wrap${i + 1}`, overlay: true, args: ['--dns-upstream', '127.0.0.1:1'], env }));
const [a1, a2] = agents as [AgentProc, AgentProc];
const [c1, c2] = [createContainer(t, 'w1'), createContainer(t, 'w2')];
await startBackends(t, ['one@0.0.0.0:7000'], c1.spawn);
await startBackends(t, ['two@0.0.0.0:7000'], c2.spawn);
await a1.ok('network', 'create', '--opt', 'encrypted=aes-256-gcm', 'wrapnet');
await a1.ok('service', 'create', '--name', 'w', '--network', 'wrapnet');
await a1.ok('task', 'add', '--service', 'w', '--network', 'wrapnet', '--netns', c1.path, '--name', 'one');
await a2.ok('task', 'add', '--service', 'w', '--network', 'wrapnet', '--netns', c2.path, '--name', 'two');
const tasks = JSON.parse(await a1.ok('task', 'ls', '--format', 'json')) as Array<{ name: string; addresses: Array<{ ip: string }> }>;
const ipOf = (name: string) => tasks.find((x) => x.name === name)!.addresses[0]!.ip;

type Sa = { dir: 'in' | 'out'; peer: string; seq: string };
const sas = async (a: AgentProc) => (JSON.parse(await a.ok('network', 'inspect', 'wrapnet')) as Array<{ cipher?: string; encryption: { cipher: string; sas: Sa[] } }>)[0]!.encryption;
const drops = async (a: AgentProc) => {
  const text = await a.metrics();
  return ['replay', 'too_old', 'bad_icv', 'unknown_spi'].reduce((n, r) => n + (metricValue(text, 'swarmnet_esp_dropped_total', `reason="${r}"`) ?? 0), 0);
};

t.test('traffic crosses 2^32 sequence numbers both ways (AES-256-GCM)', async (t) => {
  t.equal((await sas(a1)).cipher, 'aes-256-gcm', 'the network uses AES-256-GCM');
  await until('c1 reaches c2', async () => (await c1.exec('ping', ['-c', '1', '-W', '1', ipOf('two')])).code === 0, 20000);
  // Enough packets both ways to pass the wrap several hundred times over.
  const r = await c1.exec('ping', ['-c', '400', '-i', '0.002', '-s', '1000', '-W', '2', ipOf('two')], 60000);
  t.match(r.stdout, / 0% packet loss/, `400 pings across the wrap, none lost`);
  const bulk = await c2.exec(process.execPath, [CLIENT, ipOf('one'), '7000', '200', 'tcp'], 60000);
  t.equal(bulk.stdout.trim().split('\n').filter((l) => l.startsWith('one ')).length, 200, '200 TCP requests host2 -> host1');
  for (const [name, a] of [['host1', a1], ['host2', a2]] as const) {
    const out = (await sas(a)).sas.filter((s) => s.dir === 'out');
    t.ok(out.length > 0 && out.every((s) => BigInt(s.seq) > 2n ** 32n), `${name}: outbound sequence numbers past 2^32 (${out.map((s) => s.seq).join(', ')})`);
    const inb = (await sas(a)).sas.filter((s) => s.dir === 'in' && BigInt(s.seq) > 0n);
    t.ok(inb.some((s) => BigInt(s.seq) > 2n ** 32n), `${name}: inbound highest accepted past 2^32`);
    t.equal(await drops(a), 0, `${name}: nothing dropped as replay, too old, forged or unknown`);
  }
  t.match((await c2.exec(process.execPath, [CLIENT, ipOf('one'), '7000', '1', 'udp'])).stdout, /^one hello/, 'UDP still flows after the wrap');
});
