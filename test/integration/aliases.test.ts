/**
 * Network aliases and fixed VIPs against a real agent, through the CLI and the API, with
 * the real `dig`: a service alias answers its VIP (or its task IPs in dnsrr) on its
 * network only, `tasks.<alias>`, task aliases, `ip=` honoured; a clashing alias is
 * refused with nothing written to the store; a whole-list update (`ports`, `networks`)
 * keeps the listener of an unchanged port, so a connection through it survives.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { digAt, startUpstreamDns } from '../helpers/dns.js';
import { openConn, sleep, tcpRequest, until } from '../helpers/net.js';
import { loopbackNet, startAgent, startBackends } from '../helpers/procs.js';

const ip = loopbackNet();
const dnsAt = ip(1);
// Overlay subnets on loopback addresses, so `dig -b <task ip>` can send from a task's address.
const a = Math.floor(Math.random() * 200) + 20;
const front = (host: number) => `127.96.${a}.${host}`;
const back = (host: number) => `127.97.${a}.${host}`;

await startUpstreamDns(t, ip(2));
// A short drain: a connection of a listener that was removed (not kept) is cut after 1 s.
const agent = await startAgent(t, { ip: ip(1), args: ['--dns', `${dnsAt}:53`, '--dns-upstream', `${ip(2)}:53`, '--dns-ttl', '5', '--drain-timeout', '1s'] });
await startBackends(t, [`first@${ip(3)}:9601`, `second@${ip(3)}:7001`, `third@${ip(3)}:7002`]);
const { short, status } = digAt(dnsAt);

/** Setup steps run before any subtest, so they throw rather than assert. */
const ok = (...args: string[]) => agent.ok(...args);
await ok('network', 'create', '--subnet', front(0) + '/24', 'shop_front');
await ok('network', 'create', '--subnet', back(0) + '/24', 'shop_back');
await ok('service', 'create', '--name', 'shop_web', '--publish', '80', '--network', `name=shop_front,alias=web,alias=www,ip=${front(100)}`, '--network', 'shop_back');
await ok('service', 'create', '--name', 'shop_db', '--endpoint-mode', 'dnsrr', '--network', 'name=shop_front,alias=db');
await ok('service', 'create', '--name', 'other', '--network', 'shop_back');
await ok('task', 'add', '--service', 'shop_web', '--network', 'shop_front', '--name', 'web-a', '--alias', 'cache', '--alias', 'Cache');
await ok('task', 'add', '--service', 'shop_db', '--network', 'shop_front', '--name', 'db-1');
await ok('task', 'add', '--service', 'shop_db', '--network', 'shop_front', '--name', 'db-2');
await ok('task', 'add', '--service', 'other', '--network', 'shop_back', '--name', 'other-b');

interface Inspected {
  ports: Array<{ target: number; published: number }>;
  networks: Array<{ network: string; vip?: string; aliases?: string[] }>;
}
const inspect = async (name: string) => JSON.parse(await ok('service', 'inspect', name))[0] as Inspected;
const tasks = JSON.parse(await ok('task', 'ls', '--format', 'json')) as Array<{ name: string; addresses: Array<{ ip: string; aliases?: string[] }> }>;
const taskIp = (name: string) => tasks.find((x) => x.name === name)!.addresses[0]!.ip;
const [webA, db1, db2, otherB] = ['web-a', 'db-1', 'db-2', 'other-b'].map(taskIp) as [string, string, string, string];
/** What the agent wrote to its store, but the nodes' heartbeats: unchanged means nothing was written. */
const writes = () =>
  readFileSync(join(agent.dataDir, 'store', 'journal.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l && (JSON.parse(l) as { k: string }).k !== 'nodes');

t.test('stored shapes: aliases per network, the fixed VIP, task aliases', async (t) => {
  const web = await inspect('shop_web');
  t.same(web.networks.map((n) => [n.vip, n.aliases]), [[front(100), ['web', 'www']], [back(2), undefined]], 'ip= is the VIP; no aliases on shop_back');
  t.same(tasks.find((x) => x.name === 'web-a')!.addresses[0]!.aliases, ['cache'], 'task aliases deduplicated in any case');
  const pretty = await ok('service', 'inspect', '--pretty', 'shop_web');
  t.match(pretty, new RegExp(`shop_front VIP ${front(100).replace(/\./g, '\\.')} Aliases web, www`));
});

t.test('DNS: aliases on their network, tasks.<alias>, task aliases, dnsrr', async (t) => {
  t.same(await short('-b', db1, 'web'), [front(100)], 'alias -> the fixed VIP');
  t.same(await short('-b', db1, 'WWW'), [front(100)], 'case-insensitive');
  t.same(await short('-b', db1, 'shop_web'), [front(100)], 'the name from shop_front: its VIP there');
  t.same(await short('-b', db1, 'tasks.web'), [webA], 'tasks.<alias>');
  t.same(await short('-b', webA, 'cache'), [webA], 'task alias');
  const first = await short('-b', webA, 'db');
  const second = await short('-b', webA, 'db');
  t.same([...first].sort(), [db1, db2].sort(), 'dnsrr alias -> task IPs');
  t.not(first[0], second[0], 'rotated');
  t.same((await short('-b', webA, 'tasks.db')).sort(), [db1, db2].sort(), 'tasks.<dnsrr alias>');
  const published = (await inspect('shop_web')).ports[0]!.published;
  t.same(await short('-b', db1, 'web', 'SRV'), [`0 0 ${published} web.`], 'SRV for an alias');
  t.same(await short('web'), [front(100)], 'the node sees the alias too');
});

t.test('DNS: an alias is not visible from a task on another network', async (t) => {
  t.equal(await status('-b', otherB, 'web'), 'NXDOMAIN', 'other-b (shop_back) does not see shop_front aliases: forwarded, unknown upstream');
  t.equal(await status('-b', otherB, 'cache'), 'NXDOMAIN', 'nor task aliases there');
  t.equal(await status('-b', otherB, 'tasks.web'), 'NXDOMAIN');
  t.same(await short('-b', otherB, 'shop_web'), [back(2)], 'the service name still answers there: its VIP on shop_back');
});

t.test('clashes and bad input: refused, one line naming the field, nothing written', async (t) => {
  const before = writes();
  const bad: Array<[string[], RegExp]> = [
    [['service', 'create', '--name', 'x', '--network', 'name=shop_front,alias=web'], /^swarmnet: networks\[0\]\.aliases\[0\]: alias web clashes with an alias of service shop_web on network shop_front$/],
    [['service', 'create', '--name', 'x', '--network', 'shop_back', '--network', 'name=shop_front,alias=shop_db'], /^swarmnet: networks\[1\]\.aliases\[0\]: alias shop_db clashes with service shop_db on network shop_front$/],
    [['service', 'create', '--name', 'x', '--network', 'name=shop_front,alias=web-a'], /^swarmnet: networks\[0\]\.aliases\[0\]: alias web-a clashes with task web-a on network shop_front$/],
    [['service', 'create', '--name', 'www', '--network', 'shop_front'], /^swarmnet: name: service name www clashes with an alias of service shop_web on network shop_front$/],
    [['service', 'create', '--name', 'x', '--network', `name=shop_front,ip=${front(100)}`], /^swarmnet: networks\[0\]\.ipv4Address: 127\.96\.\d+\.100 is already in use by service shop_web$/],
    [['service', 'create', '--name', 'x', '--network', `name=shop_front,ip=${back(9)}`], /^swarmnet: networks\[0\]\.ipv4Address: .* is not a usable address of shop_front .*: outside the subnet$/],
    [['service', 'create', '--name', 'x', '--endpoint-mode', 'dnsrr', '--network', `name=shop_front,ip=${front(9)}`], /^swarmnet: networks\[0\]\.ipv4Address: a dnsrr service has no VIP/],
    [['service', 'create', '--name', 'x', '--network', 'name=shop_front,alias=no.dots'], /^swarmnet: networks\[0\]\.aliases\[0\]: "no\.dots" is not a valid alias/],
    [['service', 'create', '--name', 'x', '--network', 'name=shop_front,aliases=a'], /^swarmnet: --network: unknown key 'aliases' in 'name=shop_front,aliases=a' \(use name, alias, ip\)$/],
    [['service', 'create', '--name', 'x', '--network', 'alias=a'], /^swarmnet: --network: 'alias=a' has no name=NETWORK$/],
    [['service', 'update', 'other', '--network-add', 'name=shop_front,alias=cache'], /^swarmnet: networksAdd\[0\]\.aliases\[0\]: alias cache clashes with an alias of task web-a on network shop_front$/],
    [['task', 'add', '--service', 'shop_db', '--network', 'shop_front', '--alias', 'www'], /^swarmnet: aliases\[0\]: alias www clashes with an alias of service shop_web on network shop_front$/],
    [['task', 'add', '--service', 'other', '--addr', '127.0.0.1:1', '--alias', 'a'], /^swarmnet: aliases: aliases are names on the task's network/],
  ];
  for (const [args, message] of bad) {
    const r = await agent.cli(...args);
    t.not(r.code, 0, `${args.join(' ')}: non-zero exit`);
    t.match(r.stderr.trim(), message, args.join(' '));
  }
  const api = await agent.request('PATCH', '/v1/services/shop_web', { ports: [], portsRm: [{ target: 80 }] });
  t.equal(api.status, 400);
  t.match(JSON.parse(api.text), { error: { code: 'EINVALID', field: 'ports' } }, 'ports and portsRm together');
  t.same(writes(), before, 'the store journal has not one new entry');
});

t.test('whole-list update keeps an unchanged port: a connection through it survives', async (t) => {
  await ok('service', 'create', '--name', 'stream', '--publish', '22101:7000', '--publish', '22102:7001', '--network', 'name=shop_front,alias=s1');
  await ok('task', 'add', '--service', 'stream', '--addr', `${ip(3)}:9601`);
  await until('stream listening', async () => (await tcpRequest(agent.ingress, 22101).catch(() => '')).startsWith('first'), 10000);
  const vip = (await inspect('stream')).networks[0]!.vip;
  const conn = await openConn(agent.ingress, 22101);
  t.teardown(() => conn.close());
  t.match(await conn.ask('before'), /^first /);
  t.match(await tcpRequest(agent.ingress, 22102), /^second /);

  const res = await agent.request('PATCH', '/v1/services/stream', {
    ports: [{ target: 7000, published: 22101 }, { target: 7002, published: 22103 }],
    networks: [{ target: 'shop_front', aliases: ['s2'] }],
  });
  t.equal(res.status, 200, res.text);
  await until('22103 listening', async () => (await tcpRequest(agent.ingress, 22103).catch(() => '')).startsWith('third'), 10000);
  await until('22102 closed', async () => (await tcpRequest(agent.ingress, 22102).catch(() => 'closed')) === 'closed', 10000);
  t.pass('the new port listens, the dropped one is closed');
  await sleep(2000); // past the drain timeout: a re-made listener would have cut it by now
  t.match(await conn.ask('after'), /^first /, 'the connection opened before the update still carries data');
  const after = await inspect('stream');
  t.same(after.networks.map((n) => [n.vip, n.aliases]), [[vip, ['s2']]], 'VIP kept, aliases replaced');
  t.same(await short('-b', db1, 's2'), [vip!], 'the new alias answers');
  t.equal(await status('-b', db1, 's1'), 'NXDOMAIN', 'the old one is gone');
});
