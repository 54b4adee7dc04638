/**
 * Forwarding from C (native/src/dns_forward.c) with real sockets: the agent's DNS server
 * (NodeDns, the addon, its C UDP socket) in this process, the upstreams UDP sockets of the
 * test whose replies it scripts. A name is forwarded by JavaScript once, then by C:
 * the client's id restored, replies from another address, with an id not in flight, with
 * another question or unreadable dropped and counted; a silent upstream times out and the
 * next is asked; none left: SERVFAIL (with an OPT for an EDNS query, RFC 6891); TC from
 * upstream: the query goes back to JavaScript, which asks over TCP; a cacheable reply
 * relayed by C lands in the forward cache. Junk to the forwarder's port changes nothing.
 */
import t from 'tap';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { EmbeddedStore, Liveness, View } from '../../src/control/index.js';
import { DnsServer, NodeDns, forwardHandler } from '../../src/dns/index.js';
import { loopbackNet } from '../helpers/procs.js';

t.setTimeout(120_000);
const ip = loopbackNet();
const TIMEOUT_MS = 300;

const dir = mkdtempSync(join(tmpdir(), 'dns-fwd-'));
const store = EmbeddedStore.open(dir);
const view = new View(store, () => undefined, new Liveness({ self: 'n1', timeoutMs: 10_000, holdMs: 4_000 }));
const node = new NodeDns({ view, ttlSeconds: 5, native: true });
t.teardown(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});
if (!node.native) {
  t.comment('the addon is not built: nothing forwards from C');
  process.exit(0);
}

type Script = (q: packet.DecodedPacket, msg: Buffer, from: RemoteInfo, sock: Socket) => void;

/** A scripted upstream on `host` (`port`, else one the kernel picks): every query is kept and handed to `script`. */
async function upstream(host: string, script: Script, port = 0): Promise<{ port: number; seen: Buffer[]; sock: Socket; script: Script }> {
  const sock = createSocket('udp4');
  const u = { port: 0, seen: [] as Buffer[], sock, script };
  sock.on('message', (msg, from) => {
    u.seen.push(msg);
    u.script(packet.decode(msg), msg, from, sock);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, host, resolve);
  });
  u.port = sock.address().port;
  t.teardown(() => sock.close());
  return u;
}

/** A reply to `q` (its id and question unless given), NXDOMAIN without SOA by default: not cacheable. */
function reply(q: packet.DecodedPacket, o: Partial<packet.Packet> = {}): Buffer {
  return packet.encode({ type: 'response', id: q.id, flags: packet.RECURSION_AVAILABLE | 3, questions: q.questions, ...o });
}

/** A DNS server on `host` forwarding to `ups` from C, the timeout short. */
async function server(host: string, ups: Array<{ port: number }>): Promise<{ server: DnsServer; port: number }> {
  const upstreams = ups.map((u) => ({ host: '127.0.0.1', port: u.port }));
  const base = node.serverOptions(upstreams);
  for (let tries = 0; ; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    const s = new DnsServer({ ...base, host, port, handlers: [forwardHandler({ upstreams, timeoutMs: TIMEOUT_MS, stats: base.stats })], forward: { upstreams, timeoutMs: TIMEOUT_MS } });
    try {
      await s.listen();
      t.teardown(() => s.close());
      return { server: s, port };
    } catch (err) {
      s.close();
      if (tries > 20) throw err;
    }
  }
}

const client = createSocket('udp4');
await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
t.teardown(() => client.close());

/** One query from the client socket; the reply with its id, or undefined after `waitMs`. */
async function ask(to: { host: string; port: number }, name: string, o: { id?: number; edns?: boolean; waitMs?: number } = {}): Promise<packet.DecodedPacket | undefined> {
  const id = o.id ?? Math.floor(Math.random() * 0x10000);
  const q = packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name }], ...(o.edns && { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as packet.OptAnswer] }) });
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), o.waitMs ?? 3000);
    const onMsg = (msg: Buffer) => {
      if (msg.readUInt16BE(0) === id) done(packet.decode(msg));
    };
    const done = (r: packet.DecodedPacket | undefined) => {
      clearTimeout(timer);
      client.off('message', onMsg);
      resolve(r);
    };
    client.on('message', onMsg);
    client.send(q, to.port, to.host);
  });
}

/** The reply's rcode name (dns-packet decodes it; its types do not say so). */
function rcode(r: packet.DecodedPacket | undefined): string | undefined {
  return (r as { rcode?: string } | undefined)?.rcode;
}

function data(a: packet.Answer): unknown {
  return (a as { data?: unknown }).data;
}

function counts() {
  node.stats.sync();
  const s = node.stats;
  return { native: s.nativeReplies, forwarded: s.forwarded, timeout: s.upstreamErrors.timeout, dropped: { ...s.upstreamDropped }, stores: s.forwardCache.stores, latency: s.upstreamSeconds.counts.reduce((a, b) => a + b, 0) };
}

t.test('a forwarded name goes upstream from C: id restored, the reply relayed, counted', async (t) => {
  const up = await upstream('127.0.0.1', (q, _m, from, sock) => sock.send(reply(q), from.port, from.address));
  const s = { host: ip(1), ...(await server(ip(1), [up])) };
  const first = await ask(s, 'a.nosoa', { id: 0x1234 });
  t.equal(rcode(first), 'NXDOMAIN', 'JavaScript forwarded the first');
  const before = counts();
  for (const id of [0x4242, 0x0001, 0xfffe]) {
    const r = await ask(s, 'A.NoSoa', { id });
    t.equal(r?.id, id, `the client's id back (${id})`);
    t.equal(rcode(r), 'NXDOMAIN');
    t.equal(r?.questions?.[0]?.name, 'A.NoSoa', 'the question as asked');
  }
  const after = counts();
  t.equal(after.native - before.native, 3, 'the repeats were relayed by C');
  t.equal(after.forwarded - before.forwarded, 3, 'and counted as forwarded');
  t.equal(after.latency - before.latency, 3, 'their upstream times observed');
  t.equal(up.seen.length, 4, 'every query went upstream');
  t.ok(up.seen.slice(1).some((m) => ![0x4242, 0x0001, 0xfffe].includes(m.readUInt16BE(0))), 'with ids of our own');
});

t.test('replies that do not match are dropped and counted; the right one is relayed', async (t) => {
  const stranger = createSocket('udp4');
  await new Promise<void>((resolve) => stranger.bind(0, '127.0.0.1', resolve));
  t.teardown(() => stranger.close());
  let spoof = false;
  const up = await upstream('127.0.0.1', (q, _m, from, sock) => {
    if (spoof) {
      const refused = { flags: packet.RECURSION_AVAILABLE | 5 };
      sock.send(reply({ ...q, id: (q.id! + 1) & 0xffff }, refused), from.port, from.address); // an id not in flight
      stranger.send(reply(q, refused), from.port, from.address); // another address
      sock.send(reply(q, { ...refused, questions: [{ type: 'A', name: 'other.nosoa' }] }), from.port, from.address); // another question
      sock.send(Buffer.from([1, 2, 3, 4, 5]), from.port, from.address); // unreadable
      sock.send(reply(q, { ...refused, type: 'query', flags: 5 }).subarray(0, 12), from.port, from.address); // QR clear
    }
    setTimeout(() => sock.send(reply(q), from.port, from.address), spoof ? 50 : 0);
  });
  const s = { host: ip(2), ...(await server(ip(2), [up])) };
  t.equal(rcode(await ask(s, 'b.nosoa')), 'NXDOMAIN');
  spoof = true;
  const before = counts();
  const r = await ask(s, 'b.nosoa', { id: 7 });
  t.equal(rcode(r), 'NXDOMAIN', 'the matching reply, not a spoofed REFUSED');
  t.equal(r?.id, 7);
  await new Promise((res) => setTimeout(res, 100));
  const d = counts().dropped;
  t.equal(d.bad_id - before.dropped.bad_id, 1, 'the id not in flight');
  t.equal(d.bad_source - before.dropped.bad_source, 1, 'the other address');
  t.equal(d.bad_question - before.dropped.bad_question, 1, 'the other question');
  t.equal(d.malformed - before.dropped.malformed, 2, 'the short one and the one without QR');
  t.equal(counts().native - before.native, 1, 'one reply, by C');
});

t.test('a silent upstream times out, the next answers; none left: SERVFAIL with an OPT', async (t) => {
  const silent = await upstream('127.0.0.1', () => undefined);
  let answer = true;
  const good = await upstream('127.0.0.1', (q, _m, from, sock) => answer && sock.send(reply(q), from.port, from.address));
  const s = { host: ip(3), ...(await server(ip(3), [silent, good])) };
  t.equal(rcode(await ask(s, 'c.nosoa')), 'NXDOMAIN', 'JavaScript: after the first timed out');
  let before = counts();
  const started = Date.now();
  const r = await ask(s, 'c.nosoa', { id: 99 });
  t.equal(rcode(r), 'NXDOMAIN', 'C: from the second upstream');
  t.ok(Date.now() - started >= TIMEOUT_MS - 20, 'after the timeout');
  let after = counts();
  t.equal(after.timeout - before.timeout, 1, 'the timeout counted');
  t.equal(after.native - before.native, 1, 'relayed by C');
  answer = false;
  before = counts();
  const failed = await ask(s, 'c.nosoa', { id: 100, edns: true });
  t.equal(rcode(failed), 'SERVFAIL', 'every upstream silent: SERVFAIL');
  t.equal(failed?.id, 100);
  t.equal(failed?.questions?.[0]?.name, 'c.nosoa');
  t.ok(failed?.additionals?.some((a) => a.type === 'OPT'), 'with our OPT: the query had one (RFC 6891)');
  after = counts();
  t.equal(after.timeout - before.timeout, 2, 'both timeouts counted');
  t.equal(after.native - before.native, 1, 'the SERVFAIL from C');
});

t.test('TC from upstream: back to JavaScript, which asks over TCP', async (t) => {
  const big = { type: 'A' as const, name: 'd.nosoa', ttl: 0, data: '10.1.2.3' };
  const tcp = createServer((c) =>
    c.on('data', (d) => {
      const q = packet.decode(d.subarray(2));
      const out = packet.encode({ type: 'response', id: q.id, flags: packet.RECURSION_AVAILABLE, questions: q.questions, answers: [big] });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(out.length);
      c.end(Buffer.concat([len, out]));
    }),
  );
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  t.teardown(() => tcp.close());
  // UDP and TCP on one port, as a resolver serves both: the kernel picked the TCP one.
  const up = await upstream('127.0.0.1', (q, _m, from, sock) => sock.send(reply(q, { flags: packet.RECURSION_AVAILABLE | packet.TRUNCATED_RESPONSE }), from.port, from.address), (tcp.address() as AddressInfo).port);
  const s = { host: ip(4), ...(await server(ip(4), [up])) };
  for (const round of ['JavaScript', 'marked: C, then JavaScript']) {
    const before = counts();
    const r = await ask(s, 'd.nosoa');
    t.same(r?.answers?.map(data), ['10.1.2.3'], `${round}: the TCP answer`);
    t.notOk(r && r.flags! & packet.TRUNCATED_RESPONSE, 'not truncated');
    t.equal(counts().forwarded - before.forwarded, 1, 'one query, counted as forwarded once');
  }
  t.equal(up.seen.length, 3, 'over UDP: once by JavaScript, then by C and again by JavaScript');
});

t.test('a cacheable reply relayed by C is kept in the forward cache', async (t) => {
  let records = false;
  const up = await upstream('127.0.0.1', (q, _m, from, sock) => sock.send(records ? reply(q, { flags: packet.RECURSION_AVAILABLE, answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '10.9.9.9' }] }) : reply(q), from.port, from.address));
  const s = { host: ip(5), ...(await server(ip(5), [up])) };
  await ask(s, 'e.nosoa');
  records = true;
  const before = counts();
  t.same((await ask(s, 'e.nosoa'))?.answers?.map(data), ['10.9.9.9'], 'C relayed the new answer');
  await new Promise((res) => setTimeout(res, 50));
  t.equal(counts().stores - before.stores, 1, 'and handed it to the forward cache');
  const seen = up.seen.length;
  t.same((await ask(s, 'e.nosoa'))?.answers?.map(data), ['10.9.9.9'], 'then served from the cache');
  t.equal(up.seen.length, seen, 'without asking upstream');
});

t.test('junk to the forwarder socket is dropped and counted; the server keeps answering', async (t) => {
  const up = await upstream('127.0.0.1', (q, _m, from, sock) => sock.send(reply(q), from.port, from.address));
  const s = { host: ip(6), ...(await server(ip(6), [up])) };
  await ask(s, 'f.nosoa');
  await ask(s, 'f.nosoa');
  // The forwarder's port: where C's query came from.
  let port = 0;
  up.script = (q, _m, from, sock) => {
    port = from.port;
    sock.send(reply(q), from.port, from.address);
  };
  await ask(s, 'f.nosoa');
  t.ok(port > 0);
  const before = counts();
  for (let i = 0; i < 200; i++) {
    const junk = Buffer.alloc(1 + (i % 600));
    for (let k = 0; k < junk.length; k++) junk[k] = (i * 31 + k * 7) & 0xff;
    if (junk.length > 3) junk[2]! |= 0x80;
    up.sock.send(junk, port, '127.0.0.1');
  }
  await new Promise((res) => setTimeout(res, 200));
  const d = counts().dropped;
  const dropped = Object.values(d).reduce((a, b) => a + b, 0) - Object.values(before.dropped).reduce((a, b) => a + b, 0);
  t.equal(dropped, 200, 'every junk datagram dropped and counted');
  t.equal((await ask(s, 'f.nosoa', { id: 5 }))?.id, 5, 'still answering');
});
