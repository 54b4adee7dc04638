/**
 * Embedded DNS against a real agent with the real `dig` client: cluster records,
 * scoping by source address, forwarding to an upstream started here, freshness
 * after changes, and robustness against malformed packets.
 */
import t from 'tap';
import { createSocket } from 'node:dgram';
import { digAt, startUpstreamDns } from '../helpers/dns.js';
import { loopbackNet, startAgent } from '../helpers/procs.js';

const ip = loopbackNet();
const dnsAt = ip(1);
const upstream = ip(2);
// Overlay subnets on loopback addresses, so `dig -b <task ip>` can send from a task's address.
const a = Math.floor(Math.random() * 200) + 20;
const netA = `127.93.${a}.0/24`;
const netB = `127.94.${a}.0/24`;

await startUpstreamDns(t, upstream);
const agent = await startAgent(t, { ip: ip(1), args: ['--dns', `${dnsAt}:53`, '--dns-upstream', `${upstream}:53`, '--dns-ttl', '5'] });

const { dig, short, status } = digAt(dnsAt);

/** Setup steps run before any subtest, so they throw rather than assert. */
const ok = (...args: string[]) => agent.ok(...args);
await ok('network', 'create', '--subnet', netA, 'neta');
await ok('network', 'create', '--subnet', netB, 'netb');
await ok('service', 'create', '--name', 'web', '--network', 'neta', '--publish', '80');
await ok('service', 'create', '--name', 'db', '--endpoint-mode', 'dnsrr', '--network', 'neta');
await ok('service', 'create', '--name', 'other', '--network', 'netb');
await ok('task', 'add', '--service', 'web', '--network', 'neta', '--name', 'web-a');
await ok('task', 'add', '--service', 'db', '--network', 'neta');
await ok('task', 'add', '--service', 'db', '--network', 'neta');
await ok('task', 'add', '--service', 'other', '--network', 'netb', '--name', 'other-b');
const svc = async (name: string) => JSON.parse((await agent.cli('service', 'inspect', name)).stdout)[0] as { networks: Array<{ vip?: string }> };
const task = async (name: string) => (JSON.parse((await agent.cli('task', 'ls', '--format', 'json')).stdout) as Array<{ name: string; addresses: Array<{ ip: string }> }>).find((x) => x.name === name)!.addresses[0]!.ip;
const webVip = (await svc('web')).networks[0]!.vip!;
const otherVip = (await svc('other')).networks[0]!.vip!;
const webTask = await task('web-a');
const otherTask = await task('other-b');

t.test('records: service VIP, tasks., dnsrr rotation, task names, PTR, NODATA for AAAA', async (t) => {
  t.same(await short('web'), [webVip]);
  t.same(await short('WEB.'), [webVip], 'case-insensitive');
  t.same(await short('tasks.web'), [webTask]);
  const first = await short('db');
  const second = await short('db');
  t.equal(first.length, 2);
  t.same([...first].sort(), [...second].sort());
  t.not(first[0], second[0], 'dnsrr answers rotate');
  t.same(await short('web-a'), [webTask]);
  t.same(await short('-x', webVip), ['web.']);
  t.same(await short('-x', webTask), ['web-a.']);
  const aaaa = await dig('web', 'AAAA');
  t.match(aaaa, /status: NOERROR/);
  t.match(aaaa, /ANSWER: 0/, 'the name exists without AAAA: NODATA');
  t.match(aaaa, /flags: qr aa/, 'authoritative');
  t.match(await dig('web'), /IN\s+A\s+[\d.]+/);
  t.match(await dig('web'), /\s5\s+IN\s+A\s/, 'TTL 5 s');
  t.same(await short('+tcp', 'web'), [webVip], 'over TCP too');
  const published = (JSON.parse((await agent.cli('service', 'inspect', 'web')).stdout)[0] as { ports: Array<{ published: number }> }).ports[0]!.published;
  t.same(await short('web', 'SRV'), [`0 0 ${published} web.`], 'SRV for the published port');
  t.same(await short('_80._tcp.web', 'SRV'), [`0 0 ${published} web.`], 'RFC 2782 form, by target port');
  t.equal(await status('_81._tcp.web', 'SRV'), 'NXDOMAIN', 'no such port: not a cluster name');
});

t.test('scoping: a task sees services on its networks only; the node sees all', async (t) => {
  t.same(await short('-b', webTask, 'web'), [webVip]);
  t.equal(await status('-b', webTask, 'other'), 'NXDOMAIN', 'web-a (neta) cannot see other (netb): forwarded, unknown upstream');
  t.same(await short('-b', otherTask, 'other'), [otherVip]);
  t.equal(await status('-b', otherTask, 'web'), 'NXDOMAIN');
  t.same(await short('other'), [otherVip], 'from the node: all');
});

t.test('forwarding: upstream answers, TCP retry on truncation, SERVFAIL on timeout', async (t) => {
  t.same(await short('example.test'), ['192.0.2.1']);
  t.equal(await status('nothere.test'), 'NXDOMAIN');
  const big = await short('big.test', 'TXT');
  t.equal(big.length, 40, 'the truncated UDP answer was fetched again over TCP');
  t.equal(await status('timeout.test'), 'SERVFAIL');
});

t.test('changes are visible on the next query; no stale answer after a task leaves', async (t) => {
  await ok('task', 'add', '--service', 'web', '--network', 'neta', '--name', 'web-b');
  t.pass('task added');
  t.equal((await short('tasks.web')).length, 2);
  await ok('task', 'rm', 'web-a');
  t.same(await short('tasks.web'), [await task('web-b')]);
  t.same(await short('web-a'), []);
});

t.test('a large answer over UDP is truncated (TC) and complete over TCP', async (t) => {
  await ok('service', 'create', '--name', 'many', '--network', 'neta');
  for (let i = 0; i < 40; i++) {
    const res = await agent.request('POST', '/v1/tasks', { service: 'many', network: 'neta' });
    t.equal(res.status, 201);
  }
  const udp = await dig('+notcp', '+ignore', '+noedns', 'tasks.many');
  t.match(udp, /flags: qr aa tc/, 'UDP reply has TC set');
  t.match(udp, /ANSWER: 0/);
  t.equal((await short('tasks.many')).length, 40, 'dig retried over TCP and got all 40');
});

t.test('malformed, truncated and looping packets: FORMERR or dropped; the server keeps answering', async (t) => {
  const sock = createSocket('udp4');
  t.teardown(() => sock.close());
  const replies: Buffer[] = [];
  sock.on('message', (m) => replies.push(m));
  await new Promise<void>((r) => sock.bind(0, ip(3), () => r()));
  const valid = Buffer.from('abcd01000001000000000000037765620000010001', 'hex'); // id abcd, query web A
  const loop = Buffer.from('beef01000001000000000000c00c00010001', 'hex'); // name is a pointer to itself
  const send = (b: Buffer) => new Promise<void>((r) => sock.send(b, 53, dnsAt, () => r()));
  await send(loop);
  await send(valid.subarray(0, 20));
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < 3000; i++) {
    const b = i % 2 ? Buffer.from(valid) : Buffer.alloc(Math.floor(rand() * 80));
    for (let j = 0; j < b.length; j++) if (i % 2 === 0 || rand() < 0.1) b[j] = Math.floor(rand() * 256);
    await send(b);
  }
  await new Promise((r) => setTimeout(r, 1500));
  const loopReply = replies.find((r) => r.readUInt16BE(0) === 0xbeef);
  t.ok(loopReply, 'the looping-compression packet got an answer');
  t.equal(loopReply!.readUInt16BE(2) & 0xf, 1, 'FORMERR');
  t.ok(replies.length > 100, `replies to the fuzz (${replies.length}) and no crash`);
  t.equal(agent.child.exitCode, null, 'agent alive');
  t.same(await short('web'), [webVip], 'still answering');
});
