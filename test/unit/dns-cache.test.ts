/**
 * The ready-answer cache and the fast path's wire code: replies built from the request's
 * own header and question (id, letter case), EDNS (OPT echoed, DO, payload size), TC
 * when too large, dnsrr rotation, and a view change emptying the cache.
 */
import t from 'tap';
import * as packet from 'dns-packet';
import type { View } from '../../src/control/view.js';
import type { Service, Task } from '../../src/control/schema.js';
import { AnswerCache } from '../../src/dns/cache.js';
import { ClusterRecords } from '../../src/dns/cluster.js';
import { DnsStats } from '../../src/dns/metrics.js';
import { QTYPE } from '../../src/dns/constants.js';
import { readQuery, writeReply, type ReadyRecords } from '../../src/dns/wire.js';

const svc = (name: string, vip: string | undefined, endpointMode: 'vip' | 'dnsrr' = 'vip'): Service =>
  ({ id: `id-${name}`, name, endpointMode, ports: [], networks: [{ network: 'N', ...(vip && { vip }) }] }) as unknown as Service;
const task = (name: string, service: string, ip: string): Task => ({ id: `t-${name}`, name, service: `id-${service}`, state: 'running', addresses: [{ network: 'N', ip }] }) as unknown as Task;

/** A view of the two maps the DNS reads, whose change listeners the test fires. */
function fakeView(services: Service[], tasks: Task[]) {
  const listeners = new Set<() => void>();
  const view = {
    services: new Map(services.map((s) => [s.id, s])),
    tasks: new Map(tasks.map((x) => [x.id, x])),
    onChange: (fn: () => void) => (listeners.add(fn), () => listeners.delete(fn)),
  };
  return { view: view as unknown as View, raw: view, changed: () => listeners.forEach((fn) => fn()) };
}

function setup() {
  const v = fakeView([svc('web', '10.0.0.2'), svc('db', undefined, 'dnsrr')], [task('db-1', 'db', '10.0.0.20'), task('db-2', 'db', '10.0.0.21'), task('db-3', 'db', '10.0.0.22')]);
  const stats = new DnsStats();
  const records = new ClusterRecords({ view: v.view, ttlSeconds: 5 });
  const cache = new AnswerCache({ records, view: v.view, maxEntries: 100, stats });
  return { ...v, stats, cache };
}

const scratch = Buffer.alloc(256);
type Opt = { udpPayloadSize?: number; ednsVersion?: number; flags?: number };
const query = (name: string, type: 'A' | 'AAAA' = 'A', id = 0x1234, opt?: Opt) =>
  packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type, name }], ...(opt && { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, ...opt } as packet.Answer] }) });

/** The fast path as the server runs it: read, look up, write. */
function serve(cache: AnswerCache, msg: Buffer, client = '127.0.0.1', max: number | undefined = 512): packet.DecodedPacket | undefined {
  const q = readQuery(msg, scratch);
  if (!q) throw new Error('not read by the fast path');
  const rec = cache.answer(client, q.qtype, q.name);
  return rec && packet.decode(writeReply(msg, q, rec, { max }));
}

t.test('a reply carries the request id and question as sent, answers point at it', async (t) => {
  const { cache } = setup();
  const r = serve(cache, query('WeB', 'A', 0xbeef))!;
  t.equal(r.id, 0xbeef);
  t.equal(r.type, 'response');
  t.same(r.questions, [{ name: 'WeB', type: 'A', class: 'IN' }], 'the question as sent (0x20 case kept)');
  t.same(r.answers!.map((a) => [a.name, a.type, (a as { data: string }).data, (a as { ttl: number }).ttl]), [['WeB', 'A', '10.0.0.2', 5]]);
  t.ok(r.flag_aa && r.flag_rd && r.flag_ra, 'AA, RD echoed, RA');
  t.notOk(r.additionals?.length, 'no OPT without one in the query');
  const again = serve(cache, query('web', 'A', 7))!;
  t.equal(again.id, 7, 'the same entry, another id');
  t.equal(again.answers![0]!.name, 'web');
});

t.test('NODATA for another type; undefined (the chain decides) for an unknown name', async (t) => {
  const { cache } = setup();
  const r = serve(cache, query('web', 'AAAA'))!;
  t.equal((r.flags ?? 0) & 0xf, 0, 'NOERROR');
  t.equal(r.answers!.length, 0);
  t.equal(serve(cache, query('nosuch')), undefined);
  t.equal(serve(cache, query('nosuch')), undefined, 'also when cached');
});

t.test('EDNS: our OPT in the reply, DO echoed; a reply over the client size is cut with TC', async (t) => {
  const { cache } = setup();
  const r = serve(cache, query('web', 'A', 1, { flags: packet.DNSSEC_OK }), '127.0.0.1', 1232)!;
  const opt = r.additionals!.find((a) => a.type === 'OPT') as packet.OptAnswer;
  t.ok(opt, 'OPT present');
  t.equal(opt.ednsVersion, 0);
  t.equal(opt.udpPayloadSize, 4096);
  t.ok(opt.flag_do, 'DO echoed (RFC 3225)');
  t.equal(r.answers!.length, 1);
  const plain = serve(cache, query('web', 'A', 1, {}), '127.0.0.1', 1232)!;
  t.notOk((plain.additionals!.find((a) => a.type === 'OPT') as packet.OptAnswer).flag_do, 'no DO when not asked');
  const msg = query('web', 'A', 9, {});
  const q = readQuery(msg, scratch)!;
  const big: ReadyRecords = { flags: 0x0400, count: 40, bytes: Buffer.alloc(600) };
  const cut = packet.decode(writeReply(msg, q, big, { max: 512 }));
  t.ok(cut.flag_tc, 'TC');
  t.equal(cut.answers!.length, 0);
  t.equal(cut.additionals!.length, 1, 'the OPT still there (RFC 6891 section 7)');
  t.equal(writeReply(msg, q, big, { max: undefined }).length, q.questionEnd + 600 + 11, 'over TCP (no max) nothing is cut');
});

t.test('dnsrr: each query gets the next rotation', async (t) => {
  const { cache } = setup();
  const firsts = [1, 2, 3, 4].map(() => (serve(cache, query('db'))!.answers![0] as { data: string }).data);
  t.same(firsts, ['10.0.0.20', '10.0.0.21', '10.0.0.22', '10.0.0.20']);
  t.same((serve(cache, query('db'))!.answers!.map((a) => (a as { data: string }).data) as string[]).sort(), ['10.0.0.20', '10.0.0.21', '10.0.0.22']);
});

t.test('a view change empties the cache: the next answer is the new one', async (t) => {
  const { cache, raw, changed, stats } = setup();
  t.equal((serve(cache, query('web'))!.answers![0] as { data: string }).data, '10.0.0.2');
  serve(cache, query('web'));
  t.same(stats.cache, { hits: 1, builds: 1 });
  raw.services.set('id-web', svc('web', '10.0.0.9'));
  t.equal((serve(cache, query('web'))!.answers![0] as { data: string }).data, '10.0.0.2', 'until the view says it changed');
  changed();
  t.equal((serve(cache, query('web'))!.answers![0] as { data: string }).data, '10.0.0.9');
  raw.services.set('id-new', svc('new', '10.0.0.10'));
  t.equal(serve(cache, query('new')), undefined);
  changed();
  t.ok(serve(cache, query('new')), 'a name that was unknown is found after the change');
});

t.test('scope: a task client gets the answers of its networks, cached apart from the node', async (t) => {
  const v = fakeView([svc('web', '10.0.0.2'), { ...svc('other', '10.1.0.2'), networks: [{ network: 'M', vip: '10.1.0.2' }] } as Service], [task('w-1', 'web', '10.0.0.30')]);
  const cache = new AnswerCache({ records: new ClusterRecords({ view: v.view, ttlSeconds: 5 }), view: v.view, maxEntries: 100, stats: new DnsStats() });
  t.ok(serve(cache, query('other'), '127.0.0.1'), 'the node sees all');
  t.equal(serve(cache, query('other'), '10.0.0.30'), undefined, 'a task on N does not see other (M)');
  t.ok(serve(cache, query('web'), '10.0.0.30'));
});

t.test('the fast path reads only the plain shape; the rest goes to the decoder', async (t) => {
  const plain = query('web');
  const cases: Array<[string, Buffer]> = [
    ['a response', Buffer.from(packet.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'web' }] }))],
    ['two questions', packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'web' }, { type: 'A', name: 'db' }] })],
    ['class CH', packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'web', class: 'CH' }] })],
    ['a byte outside letters, digits, - and _', query('we b')],
    ['trailing bytes', Buffer.concat([plain, Buffer.from([0])])],
    ['a label longer than the message', Buffer.concat([plain.subarray(0, 12), Buffer.from([40, 0x61])])],
    ['a compression pointer in the question', Buffer.concat([plain.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])])],
    ['an additional record that is not an OPT', packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'web' }], additionals: [{ type: 'A', name: 'x', data: '1.2.3.4' }] })],
    ['the root name', packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: '.' }] })],
    ['a header only', plain.subarray(0, 12)],
  ];
  for (const [what, msg] of cases) t.equal(readQuery(msg, scratch), undefined, what);
  const q = readQuery(query('Tasks.WEB_1-x', 'AAAA'), scratch)!;
  t.same([q.name, q.qtype, q.edns], ['tasks.web_1-x', QTYPE.AAAA, undefined]);
  t.same(readQuery(query('web', 'A', 1, { ednsVersion: 1, udpPayloadSize: 4000 }), scratch)!.edns, { udpSize: 4000, version: 1, dnssecOk: false });
});
