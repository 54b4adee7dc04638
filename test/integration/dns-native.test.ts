/**
 * The DNS fast path in C against the JavaScript one, with the real `dig`: two agents given
 * the same services, one serving UDP from C, one with --no-native-dns; every kind of query
 * gets the same reply from both (case, EDNS, BADVERS, forwarded), dnsrr rotates in C, a view
 * change is seen at once, junk datagrams leave the server answering; and the forward cache
 * (RFC 2308): NXDOMAIN kept for the SOA's MINIMUM, then asked again.
 */
import t from 'tap';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { digAt, startUpstreamDns } from '../helpers/dns.js';
import { loopbackNet, metricValue, startAgent, type AgentProc } from '../helpers/procs.js';

t.setTimeout(300_000);
const ip = loopbackNet();
const upstream = ip(3);
const a = Math.floor(Math.random() * 200) + 20;
await startUpstreamDns(t, upstream);
const args = (at: string) => ['--dns', `${at}:53`, '--dns-upstream', `${upstream}:53`, '--dns-ttl', '5'];
const native = await startAgent(t, { ip: ip(1), args: args(ip(1)) });
const js = await startAgent(t, { ip: ip(2), args: [...args(ip(2)), '--no-native-dns'] });
const digN = digAt(ip(1));
const digJ = digAt(ip(2));

for (const agent of [native, js]) {
  await agent.ok('network', 'create', '--subnet', `127.97.${a}.0/24`, 'neta');
  await agent.ok('service', 'create', '--name', 'web', '--network', 'neta', '--publish', '80');
  await agent.ok('service', 'create', '--name', 'db', '--endpoint-mode', 'dnsrr', '--network', 'neta');
  await agent.ok('task', 'add', '--service', 'web', '--network', 'neta', '--name', 'web-a');
  await agent.ok('task', 'add', '--service', 'db', '--network', 'neta', '--name', 'db-1');
  await agent.ok('task', 'add', '--service', 'db', '--network', 'neta', '--name', 'db-2');
}
const vip = (JSON.parse((await native.cli('service', 'inspect', 'web')).stdout)[0] as { networks: Array<{ vip: string }> }).networks[0]!.vip;
const taskIp = (JSON.parse((await native.cli('task', 'ls', '--format', 'json')).stdout) as Array<{ name: string; addresses: Array<{ ip: string }> }>).find((x) => x.name === 'web-a')!.addresses[0]!.ip;

const metric = async (agent: AgentProc, name: string, labels = '') => metricValue(await agent.metrics(), name, labels) ?? 0;

/** dig's reply without what differs per exchange (id, time, server address). */
function normal(out: string): string {
  return out
    .split('\n')
    .filter((l) => !/^;; (Query time|SERVER|WHEN)|^; <<>>|^;; global|^$/.test(l))
    .map((l) => l.replace(/id: \d+/, 'id'))
    .join('\n');
}

t.test('C and JavaScript give the same replies, for every kind, with and without EDNS', async (t) => {
  const queries = [['web'], ['WeB'], ['web-a'], ['web', 'AAAA'], ['tasks.web'], ['-x', vip], ['-x', taskIp], ['web', 'SRV'], ['nosuch.test'], ['x.soa.test']];
  const ednsModes = [['+noedns'], ['+edns=0'], ['+dnssec'], ['+edns=1', '+noednsnegotiation']];
  const before = await metric(native, 'swarmnet_dns_native_replies_total');
  let repeats = 0;
  for (const q of queries) {
    for (const e of ednsModes) {
      // Twice: the first builds the entry (JavaScript), the second is C's.
      for (const round of ['first', 'repeat']) {
        const [n, j] = await Promise.all([digN.dig(...e, ...q), digJ.dig(...e, ...q)]);
        t.match(n, /status: /, `${q.join(' ')} ${e.join(' ')} answered`);
        t.equal(normal(n), normal(j), `${q.join(' ')} ${e.join(' ')} ${round}: the same reply`);
        if (round === 'repeat') repeats++;
      }
    }
  }
  t.match(await digN.dig('WeB'), /^WeB\.\s+5\s+IN\s+A\s/m, 'the letter case of the question kept in the answer (0x20)');
  const served = (await metric(native, 'swarmnet_dns_native_replies_total')) - before;
  t.ok(served >= repeats, `the repeats were answered by C (${served} of ${repeats})`);
  t.equal(await metric(js, 'swarmnet_dns_native_replies_total'), 0, 'none from C with --no-native-dns');
});

t.test('dnsrr answers rotate on the C path', async (t) => {
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) seen.push((await digN.short('db'))[0]!);
  t.equal(new Set(seen).size, 2, 'both tasks come first in turn');
  t.not(seen[1], seen[2], 'consecutive answers differ');
  t.not(seen[2], seen[3]);
});

t.test('a view change is seen by the next query', async (t) => {
  t.same(await digN.short('tasks.web'), [taskIp]);
  t.same(await digN.short('tasks.web'), [taskIp], 'now from C');
  await native.ok('task', 'add', '--service', 'web', '--network', 'neta', '--name', 'web-b');
  t.equal((await digN.short('tasks.web')).length, 2, 'the new task at once');
  t.equal((await digN.short('newname')).length, 0);
  await native.ok('service', 'create', '--name', 'newname', '--network', 'neta');
  t.equal((await digN.short('newname')).length, 1, 'a name that was forwarded is the cluster\'s at once');
});

t.test('junk datagrams: dropped or FORMERR, counted, the server keeps answering', async (t) => {
  const before = { short: await metric(native, 'swarmnet_dns_dropped_total', 'reason="short"'), long: await metric(native, 'swarmnet_dns_dropped_total', 'reason="long"') };
  const sock = createSocket('udp4');
  t.teardown(() => sock.close());
  await new Promise<void>((r) => sock.bind(0, ip(4), () => r()));
  const send = (b: Buffer) => new Promise<void>((r) => sock.send(b, 53, ip(1), () => r()));
  await send(Buffer.alloc(0));
  await send(Buffer.from('0102030405', 'hex'));
  await send(randomBytes(5000));
  for (let i = 0; i < 200; i++) await send(randomBytes(12 + (i % 80)));
  const query = Buffer.from('abcd01000001000000000000037765620000010001', 'hex'); // web A
  const response = Buffer.from(query);
  response[2] = 0x81; // QR set: a response, not a query
  await send(response);
  await send(Buffer.concat([query, Buffer.from('00', 'hex')])); // trailing byte
  await new Promise((r) => setTimeout(r, 300));
  t.same(await digN.short('web'), [vip], 'still answering');
  t.ok((await metric(native, 'swarmnet_dns_dropped_total', 'reason="short"')) - before.short >= 2, 'the short ones counted');
  t.equal((await metric(native, 'swarmnet_dns_dropped_total', 'reason="long"')) - before.long, 1, 'the 5000-byte one counted');
});

t.test('forward cache: NXDOMAIN kept for the SOA minimum (RFC 2308), TTLs counted down', async (t) => {
  for (const [agent, d] of [[native, digN], [js, digJ]] as const) {
    const fwd = () => metric(agent, 'swarmnet_dns_forwarded_total');
    const hits = () => metric(agent, 'swarmnet_dns_forward_cache_total', 'result="hit"');
    const [f0, h0] = [await fwd(), await hits()];
    for (let i = 0; i < 3; i++) t.equal(await d.status('neg.soa.test'), 'NXDOMAIN');
    t.equal((await fwd()) - f0, 1, 'asked upstream once');
    t.ok((await hits()) - h0 >= 2, 'the repeats served from the cache');
    t.match(await d.dig('neg.soa.test'), /soa\.test\.\s+\d+\s+IN\s+SOA/, 'with the SOA');
    await new Promise((r) => setTimeout(r, 2600));
    t.equal(await d.status('neg.soa.test'), 'NXDOMAIN');
    t.equal((await fwd()) - f0, 2, 'asked again once the SOA minimum (2 s) ran out');
    // A positive answer (TTL 60) from the cache a second later carries less.
    t.same(await d.short('example.test'), ['192.0.2.1']);
    await new Promise((r) => setTimeout(r, 1100));
    const ttl = Number(/^example\.test\.\s+(\d+)\s+IN\s+A/m.exec(await d.dig('example.test'))?.[1]);
    t.ok(ttl < 60 && ttl >= 57, `the TTL counted down (${ttl})`);
    t.equal(await d.status('nothere.test'), 'NXDOMAIN');
    const f1 = await fwd();
    t.equal(await d.status('nothere.test'), 'NXDOMAIN');
    t.equal((await fwd()) - f1, 1, 'NXDOMAIN without an SOA is not cached');
  }
});
