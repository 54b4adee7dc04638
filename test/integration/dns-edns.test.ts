/**
 * Embedded DNS against a real agent with the real `dig`: EDNS (RFC 6891) on the fast path
 * and the slow one, the kinds of query the bench measures (A, AAAA, NXDOMAIN, tasks.,
 * PTR), and the DNS metrics on the agent's /metrics counting exactly the queries sent.
 */
import t from 'tap';
import { createSocket } from 'node:dgram';
import { digAt, startUpstreamDns } from '../helpers/dns.js';
import { loopbackNet, metricValue, startAgent } from '../helpers/procs.js';

const ip = loopbackNet();
const dnsAt = ip(1);
const upstream = ip(2);
const a = Math.floor(Math.random() * 200) + 20;

await startUpstreamDns(t, upstream);
const agent = await startAgent(t, { ip: ip(1), args: ['--dns', `${dnsAt}:53`, '--dns-upstream', `${upstream}:53`] });
const { dig, short, status } = digAt(dnsAt);

await agent.ok('network', 'create', '--subnet', `127.95.${a}.0/24`, 'neta');
await agent.ok('service', 'create', '--name', 'web', '--network', 'neta');
await agent.ok('task', 'add', '--service', 'web', '--network', 'neta', '--name', 'web-a');
const vip = (JSON.parse((await agent.cli('service', 'inspect', 'web')).stdout)[0] as { networks: Array<{ vip: string }> }).networks[0]!.vip;
const taskIp = (JSON.parse((await agent.cli('task', 'ls', '--format', 'json')).stdout) as Array<{ name: string; addresses: Array<{ ip: string }> }>).find((x) => x.name === 'web-a')!.addresses[0]!.ip;

t.test('EDNS: an OPT in the reply only when the query had one; BADVERS above version 0; DO echoed', async (t) => {
  // Twice each: the first builds the cache entry, the second is served from it.
  for (const round of ['built', 'cached']) {
    const edns = await dig('+edns=0', 'web');
    t.match(edns, /OPT PSEUDOSECTION/, `${round}: OPT present`);
    t.match(edns, /EDNS: version: 0, flags:; udp: 4096/, `${round}: version 0, our payload size`);
    t.match(edns, /ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1/);
    const plain = await dig('+noedns', 'web');
    t.notMatch(plain, /OPT PSEUDOSECTION/, `${round}: no OPT without one in the query`);
    t.match(plain, /ADDITIONAL: 0/);
  }
  t.match(await dig('+dnssec', 'web'), /EDNS: version: 0, flags: do;/, 'DO echoed (RFC 3225)');
  const badvers = await dig('+edns=1', '+noednsnegotiation', 'web');
  t.match(badvers, /status: BADVERS/, 'version 1: BADVERS');
  t.match(badvers, /EDNS: version: 0,/, 'with our version');
  t.match(badvers, /ANSWER: 0/);
  // The slow path (the decoder) too: a query with a cookie option and a name the fast path does not take.
  t.match(await dig('+edns=0', '+cookie', 'web'), /EDNS: version: 0/, 'options in the OPT are ignored (RFC 6891 section 6.1.2)');
  const forwarded = await dig('+edns=0', 'nothere.test');
  t.match(forwarded, /status: NXDOMAIN/);
  const servfail = await dig('+edns=0', 'timeout.test');
  t.match(servfail, /status: SERVFAIL/);
  t.match(servfail, /EDNS: version: 0, flags:; udp: 4096/, 'a reply we build on the slow path carries our OPT');
});

t.test('the bench kinds: A, AAAA NODATA, NXDOMAIN, tasks., PTR, with and without EDNS', async (t) => {
  for (const e of ['+edns=0', '+noedns']) {
    t.same(await short(e, 'web'), [vip], `${e} A`);
    t.same(await short(e, 'web-a'), [taskIp], `${e} A of a task`);
    const aaaa = await dig(e, 'web', 'AAAA');
    t.match(aaaa, /status: NOERROR/);
    t.match(aaaa, /ANSWER: 0/, `${e} AAAA: NODATA`);
    t.equal(await status(e, 'nosuch.test'), 'NXDOMAIN', `${e} NXDOMAIN from the upstream`);
    t.same(await short(e, 'tasks.web'), [taskIp], `${e} tasks.`);
    t.same(await short(e, '-x', vip), ['web.'], `${e} PTR of the VIP`);
    t.same(await short(e, '-x', taskIp), ['web-a.'], `${e} PTR of the task`);
  }
  t.same(await short('+tcp', '+edns=0', 'tasks.web'), [taskIp], 'over TCP, with EDNS');
});

t.test('metrics: queries by type and rcode, forwarded, upstream latency, malformed and dropped', async (t) => {
  const before = await agent.metrics();
  const value = (text: string, name: string, labels = '') => metricValue(text, name, labels) ?? 0;
  for (let i = 0; i < 3; i++) await short('web');
  await short('web', 'AAAA');
  await short('-x', vip);
  await status('nosuch2.test');
  await status('timeout.test');
  const sock = createSocket('udp4');
  t.teardown(() => sock.close());
  const replies: Buffer[] = [];
  sock.on('message', (m) => replies.push(m));
  await new Promise<void>((r) => sock.bind(0, ip(3), () => r()));
  const send = (b: Buffer) => new Promise<void>((r) => sock.send(b, 53, dnsAt, () => r()));
  await send(Buffer.from('beef01000001000000000000c00c00010001', 'hex')); // a name pointing at itself: FORMERR
  await send(Buffer.from('0102030405', 'hex')); // shorter than a header: dropped
  await new Promise((r) => setTimeout(r, 500));
  t.equal(replies.length, 1, 'one reply: the FORMERR');
  const after = await agent.metrics();
  const delta = (name: string, labels = '') => value(after, name, labels) - value(before, name, labels);
  t.equal(delta('swarmnet_dns_queries_total', 'type="A",rcode="NOERROR"'), 3);
  t.equal(delta('swarmnet_dns_queries_total', 'type="AAAA",rcode="NOERROR"'), 1);
  t.equal(delta('swarmnet_dns_queries_total', 'type="PTR",rcode="NOERROR"'), 1);
  t.equal(delta('swarmnet_dns_queries_total', 'type="A",rcode="NXDOMAIN"'), 1);
  t.equal(delta('swarmnet_dns_queries_total', 'type="A",rcode="SERVFAIL"'), 1);
  t.equal(delta('swarmnet_dns_queries_total', 'type="other",rcode="FORMERR"'), 1);
  t.equal(delta('swarmnet_dns_malformed_total'), 1);
  t.equal(delta('swarmnet_dns_dropped_total', 'reason="short"'), 1);
  t.equal(delta('swarmnet_dns_forwarded_total'), 2, 'nosuch2.test and timeout.test');
  t.equal(delta('swarmnet_dns_upstream_errors_total', 'reason="timeout"'), 1);
  t.equal(delta('swarmnet_dns_upstream_duration_seconds_count'), 1, 'one upstream answer timed');
  t.ok(value(after, 'swarmnet_dns_upstream_duration_seconds_bucket', 'le="2"') >= 1, 'in the histogram');
  t.ok(delta('swarmnet_dns_answer_cache_total', 'result="hit"') >= 2, 'the repeated A query was served from the cache');
  t.match(after, /# TYPE swarmnet_dns_upstream_duration_seconds histogram/);
});
