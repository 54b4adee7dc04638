/**
 * Network aliases, fixed service addresses and whole-list service updates: the pure
 * helpers (aliasClash, matchPorts), the control plane's operations over a real embedded
 * store (what is stored, what is refused, that a refusal writes nothing), and the DNS
 * handler's answers for aliases over a view built here.
 */
import t from 'tap';
import { aliasClash, normalizeAliases, taskAliasClash } from '../../src/control/aliases.js';
import { matchPorts, normalizePorts } from '../../src/control/ports.js';
import type { Service, Task, View } from '../../src/control/index.js';
import { clusterHandler } from '../../src/dns/cluster.js';
import { dump, plane } from '../helpers/plane.js';

const svc = (id: string, networks: Service['networks'], endpointMode: Service['endpointMode'] = 'vip'): Service => ({ id, name: id, endpointMode, ports: [], networks, lb: 'rr', proxyProtocol: 'none', labels: {}, createdAt: 0, updatedAt: 0 });
const task = (id: string, service: string, addresses: Task['addresses']): Task => ({ id, name: id, service, node: 'n1', addresses, weight: 1, state: 'running', createdAt: 0 });

t.test('aliasClash: what clashes on one network, and what does not', async (t) => {
  const services = [svc('shop_web', [{ network: 'front', vip: '10.0.0.2', aliases: ['web'] }]), svc('shop_db', [{ network: 'back', aliases: ['db'] }])];
  const tasks = [task('web-a', 'shop_web', [{ network: 'front', ip: '10.0.0.5', aliases: ['cache'] }])];
  const cases: Array<[string, Parameters<typeof aliasClash>[2], { field: string; message: string } | undefined]> = [
    ['alias = another service name', { name: 'x', networks: [{ network: 'front', networkName: 'shop_front', aliases: ['a', 'shop_web'] }] }, { field: 'networks[0].aliases[1]', message: 'alias shop_web clashes with service shop_web on network shop_front' }],
    ['alias = another service alias, any case', { name: 'x', networks: [{ network: 'back' }, { network: 'front', aliases: ['WEB'] }] }, { field: 'networks[1].aliases[0]', message: 'alias WEB clashes with an alias of service shop_web on network front' }],
    ['alias = a task name', { name: 'x', networks: [{ network: 'front', aliases: ['web-a'] }] }, { field: 'networks[0].aliases[0]', message: 'alias web-a clashes with task web-a on network front' }],
    ['alias = a task alias', { name: 'x', networks: [{ network: 'front', aliases: ['cache'] }] }, { field: 'networks[0].aliases[0]', message: 'alias cache clashes with an alias of task web-a on network front' }],
    ['own name = another service alias', { name: 'web', networks: [{ network: 'front' }] }, { field: 'name', message: 'service name web clashes with an alias of service shop_web on network front' }],
    ['same alias on another network', { name: 'x', networks: [{ network: 'back', aliases: ['web'] }] }, undefined],
    ['own name as alias (dropped, harmless)', { name: 'x', networks: [{ network: 'front', aliases: ['x'] }] }, undefined],
    ['the service itself, updated', { id: 'shop_web', name: 'shop_web', networks: [{ network: 'front', aliases: ['web', 'web-a', 'cache'] }] }, undefined],
    ['no networks', { name: 'web', networks: [] }, undefined],
  ];
  for (const [what, candidate, want] of cases) t.same(aliasClash(services, tasks, candidate), want, what);
  t.same(taskAliasClash(services, tasks, { service: 'other', network: 'front', aliases: ['cache', 'web'] }), { field: 'aliases[1]', message: 'alias web clashes with an alias of service shop_web on network front' }, 'task alias = a service alias');
  t.same(taskAliasClash(services, tasks, { service: 'other', network: 'front', aliases: ['cache'] }), undefined, 'tasks may share an alias');
  t.same(taskAliasClash(services, tasks, { service: 'other', network: 'front', aliases: ['Web-A'] }), { field: 'aliases[0]', message: 'alias Web-A clashes with task web-a on network front' });
  t.same(taskAliasClash(services, tasks, { service: 'shop_web', network: 'front', aliases: ['web'] }), undefined, "its own service's alias");
  t.same(normalizeAliases(['a', 'A', 'web', 'b', 'WEB'], 'Web'), ['a', 'b'], 'deduplicated in any case, own name dropped, first spelling kept');
  t.equal(normalizeAliases(['web'], 'web'), undefined, 'nothing left: no list');
});

t.test('matchPorts: kept ports by identity, auto ports keep their assigned number', async (t) => {
  const current = [
    { protocol: 'tcp' as const, target: 80, published: 8080, mode: 'ingress' as const },
    { protocol: 'tcp' as const, target: 443, published: 30007, mode: 'ingress' as const },
    { protocol: 'udp' as const, target: 53, published: 5353, mode: 'ingress' as const },
  ];
  const wanted = normalizePorts([{ target: 80, published: 8080 }, { target: 443 }, { target: 53, protocol: 'udp' }, { target: 80, published: 8081 }, { target: 80, published: 8080, protocol: 'udp' }], 'ports');
  t.same(matchPorts(current, wanted), [current[0], current[1], undefined, undefined, undefined], 'explicit match, auto keeps 30007, 5353 was explicit (a fresh port), new ports claimed');
  const host = normalizePorts([{ target: 80, published: 8080, mode: 'host' }], 'ports');
  t.same(matchPorts(current, host), [undefined], 'another mode is another port');
  const two = normalizePorts([{ target: 443 }, { target: 443, published: 30007 }], 'ports');
  t.same(matchPorts(current, two), [undefined, current[1]], 'an explicit port wins its match over an auto one');
});

t.test('create: aliases per network, fixed VIP, stored shapes', async (t) => {
  const { p } = await plane(t);
  const front = await p.networks.create({ name: 'front', subnet: '10.50.0.0/24' });
  const back = await p.networks.create({ name: 'back', subnet: '10.51.0.0/24' });
  const s = await p.services.create({ name: 'shop_web', networks: [{ target: 'front', aliases: ['web', 'WEB', 'www', 'shop_web'], ipv4Address: '10.50.0.100' }, 'back'] });
  t.same(s.networks, [{ network: front.id, vip: '10.50.0.100', aliases: ['web', 'www'] }, { network: back.id, vip: '10.51.0.2' }], 'aliases deduplicated, own name dropped, none: no list');
  const d = await p.services.create({ name: 'db', endpointMode: 'dnsrr', networks: [{ target: back.id, aliases: ['database'] }] });
  t.same(d.networks, [{ network: back.id, aliases: ['database'] }]);
  const tk = await p.tasks.add({ service: 'db', network: 'back', aliases: ['primary', 'PRIMARY'], name: 'db-1' });
  t.same(tk.addresses, [{ network: back.id, ip: '10.51.0.3', aliases: ['primary'] }]);
  const plain = await p.tasks.add({ service: 'db', network: 'back' });
  t.notOk('aliases' in plain.addresses[0]!, 'no aliases: no field');
  await p.tasks.add({ service: 'db', network: 'back', aliases: ['primary'] });
  t.pass('two tasks may share an alias');
});

t.test('refused with the field named, and nothing written at all', async (t) => {
  const { p, journal } = await plane(t);
  await p.networks.create({ name: 'front', subnet: '10.60.0.0/24' });
  await p.networks.create({ name: 'back', subnet: '10.61.0.0/24' });
  await p.services.create({ name: 'web', ports: [{ target: 80, published: 8080 }], networks: [{ target: 'front', aliases: ['www'], ipv4Address: '10.60.0.10' }] });
  await p.tasks.add({ service: 'web', network: 'front', name: 'web-a', aliases: ['node1'] });
  await p.services.create({ name: 'api', networks: ['front'] });
  const before = await dump(p);
  const bytes = journal();
  const refused: Array<[string, () => Promise<unknown>, RegExp, string]> = [
    ['bad alias', () => p.services.create({ name: 'x', networks: [{ target: 'front', aliases: ['ok', 'bad!'] }] }), /^networks\[0\]\.aliases\[1\]: "bad!" is not a valid alias/, 'EINVALID'],
    ['alias too long', () => p.services.create({ name: 'x', networks: [{ target: 'front', aliases: ['a'.repeat(64)] }] }), /^networks\[0\]\.aliases\[0\]: .* is not a valid alias/, 'EINVALID'],
    ['unknown key in the long form', () => p.services.create({ name: 'x', networks: [{ target: 'front', alias: ['a'] }] }), /^networks\[0\]\.alias: unknown field/, 'EINVALID'],
    ['neither name nor object', () => p.services.create({ name: 'x', networks: [5] }), /^networks\[0\]: must be a network name or id, or \{target, aliases\?, ipv4Address\?\}/, 'EINVALID'],
    ['bad ipv4Address', () => p.services.create({ name: 'x', networks: [{ target: 'front', ipv4Address: '10.60.0' }] }), /^networks\[0\]\.ipv4Address: "10.60.0" is not a valid IPv4 address/, 'EINVALID'],
    ['unknown network, long form', () => p.services.create({ name: 'x', networks: [{ target: 'nope' }] }), /^networks\[0\]\.target: network nope not found/, 'EINVALID'],
    ['network twice', () => p.services.create({ name: 'x', networks: ['front', { target: 'front', aliases: ['a'] }] }), /^networks\[1\]: network front is given twice \(also networks\[0\]\)/, 'EINVALID'],
    ['ipv4Address outside the subnet', () => p.services.create({ name: 'x', networks: [{ target: 'front', ipv4Address: '10.61.0.9' }] }), /^networks\[0\]\.ipv4Address: 10.61.0.9 is not a usable address of front \(10.60.0.0\/24\): outside the subnet/, 'EINVALID'],
    ['ipv4Address = network address', () => p.services.create({ name: 'x', networks: [{ target: 'front', ipv4Address: '10.60.0.0' }] }), /ipv4Address: .*the network address/, 'EINVALID'],
    ['ipv4Address = gateway', () => p.services.create({ name: 'x', networks: [{ target: 'front', ipv4Address: '10.60.0.1' }] }), /ipv4Address: .*the gateway address/, 'EINVALID'],
    ['ipv4Address = broadcast', () => p.services.create({ name: 'x', networks: [{ target: 'front', ipv4Address: '10.60.0.255' }] }), /ipv4Address: .*the broadcast address/, 'EINVALID'],
    ['ipv4Address in dnsrr mode', () => p.services.create({ name: 'x', endpointMode: 'dnsrr', networks: [{ target: 'front', ipv4Address: '10.60.0.20' }] }), /^networks\[0\]\.ipv4Address: a dnsrr service has no VIP/, 'EINVALID'],
    ['ipv4Address taken by a VIP', () => p.services.create({ name: 'x', networks: ['back', { target: 'front', ipv4Address: '10.60.0.10' }] }), /^networks\[1\]\.ipv4Address: 10.60.0.10 is already in use by service web/, 'ECONFLICT'],
    ['ipv4Address taken by a task', () => p.services.create({ name: 'x', networks: [{ target: 'front', ipv4Address: '10.60.0.2' }] }), /^networks\[0\]\.ipv4Address: 10.60.0.2 is already in use by task web-a/, 'ECONFLICT'],
    ['alias = a service name', () => p.services.create({ name: 'x', networks: ['back', { target: 'front', aliases: ['web'] }] }), /^networks\[1\]\.aliases\[0\]: alias web clashes with service web on network front/, 'ECONFLICT'],
    ['alias = a service alias', () => p.services.create({ name: 'x', networks: [{ target: 'front', aliases: ['WWW'] }] }), /^networks\[0\]\.aliases\[0\]: alias WWW clashes with an alias of service web on network front/, 'ECONFLICT'],
    ['name = a service alias', () => p.services.create({ name: 'www', networks: ['front'] }), /^name: service name www clashes with an alias of service web on network front/, 'ECONFLICT'],
    ['name taken', () => p.services.create({ name: 'web' }), /^name: service web already exists/, 'ECONFLICT'],
    ['published port taken', () => p.services.create({ name: 'x', ports: [{ target: 1, published: 8080 }] }), /^ports\[0\]\.published: port 8080\/tcp is already published by service web/, 'ECONFLICT'],
  ];
  for (const [what, call, message, code] of refused) {
    const err = await call().then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    t.match(err?.message, message, what);
    t.equal(err?.code, code, `${what}: ${code}`);
  }
  const tasks: Array<[string, unknown, RegExp]> = [
    ['task alias = a service alias', { service: 'api', network: 'front', aliases: ['x', 'www'] }, /^aliases\[1\]: alias www clashes with an alias of service web on network front/],
    ['task alias without a network', { service: 'web', addr: '127.0.0.1:80', aliases: ['a'] }, /^aliases: aliases are names on the task's network/],
    ['bad task alias', { service: 'web', network: 'front', aliases: ['a.b'] }, /^aliases\[0\]: "a.b" is not a valid alias/],
    ['task ip = broadcast', { service: 'web', network: 'front', ip: '10.60.0.255' }, /^ip: 10.60.0.255 is not a usable address of front \(10.60.0.0\/24\): the broadcast address/],
    ['task ip taken', { service: 'web', network: 'front', ip: '10.60.0.10' }, /^ip: 10.60.0.10 is already in use by service web/],
    ['task name taken', { service: 'web', network: 'front', name: 'web-a' }, /^name: task web-a already exists/],
  ];
  for (const [what, spec, message] of tasks) await t.rejects(p.tasks.add(spec), message, what);
  t.same(await dump(p), before, 'store unchanged');
  t.ok(journal().equals(bytes), 'not one write: no claim made and undone either');
});

t.test('update: whole lists replace, unchanged ports and VIPs are kept', async (t) => {
  const { p, journal } = await plane(t);
  const front = await p.networks.create({ name: 'front', subnet: '10.70.0.0/24' });
  const back = await p.networks.create({ name: 'back', subnet: '10.71.0.0/24' });
  const s = await p.services.create({ name: 'web', ports: [{ target: 80, published: 8080 }, { target: 443 }, { target: 53, protocol: 'udp', published: 5300 }], networks: [{ target: 'front', aliases: ['www'] }], labels: { a: '1', b: '2' } });
  const auto = s.ports[1]!.published;
  const vip = s.networks[0]!.vip;
  const u = await p.services.update('web', {
    ports: [{ target: 443 }, { target: 80, published: 8080 }, { target: 81, published: 8081 }],
    networks: [{ target: 'front', aliases: ['w3'] }, { target: 'back', ipv4Address: '10.71.0.50' }],
    labels: { c: '3' },
  });
  t.same(u.ports.map((x) => `${x.published}:${x.target}/${x.protocol}`), [`${auto}:443/tcp`, '8080:80/tcp', '8081:81/tcp'], 'auto port kept, explicit kept, new one claimed, 5300/udp dropped');
  t.same(u.networks, [{ network: front.id, vip, aliases: ['w3'] }, { network: back.id, vip: '10.71.0.50' }], 'VIP kept, aliases replaced, fixed VIP on the new network');
  t.same(u.labels, { c: '3' });
  const x = await p.services.create({ name: 'x', ports: [{ target: 1, published: 5300, protocol: 'udp' }], networks: [{ target: 'front', aliases: ['www'] }] });
  t.equal(x.ports[0]!.published, 5300, 'the dropped port was released; the old alias is free');
  await t.rejects(p.services.create({ name: 'y', ports: [{ target: 1, published: 8080 }] }), /already published by service web/, 'a kept port is still claimed');

  const moved = await p.services.update('web', { networks: [{ target: 'front', ipv4Address: '10.70.0.99' }, 'back'] });
  t.same(moved.networks.map((n) => n.vip), ['10.70.0.99', '10.71.0.50'], 'another ipv4Address moves the VIP; one not given keeps the current');
  const reuse = await p.services.create({ name: 'z', networks: [{ target: 'front', ipv4Address: vip! }] });
  t.equal(reuse.networks[0]!.vip, vip, 'the old VIP was released');

  const host = await p.services.update('web', { ports: [{ target: 443 }, { target: 80, published: 8080, mode: 'host' }, { target: 81, published: 8081 }] });
  t.equal(host.ports[1]!.mode, 'host', '8080 ingress became 8080 host');
  await t.rejects(p.services.create({ name: 'y', ports: [{ target: 1, published: 8080 }] }), /already published by service web/, 'and its claim survived the change');

  const bytes = journal();
  const before = await dump(p);
  const refused: Array<[string, unknown, RegExp]> = [
    ['ports with portsAdd', { ports: [], portsAdd: [{ target: 1 }] }, /^ports: give ports \(the whole list\) or portsAdd\/portsRm, not both \(portsAdd given too\)/],
    ['networks with networksRm', { networks: [], networksRm: ['front'] }, /^networks: give networks \(the whole list\) or networksAdd\/networksRm, not both \(networksRm given too\)/],
    ['labels with labelsRm', { labels: {}, labelsRm: ['a'] }, /^labels: give labels .* \(labelsRm given too\)/],
    ['alias clash on update', { networks: [{ target: 'front', aliases: ['x'] }] }, /^networks\[0\]\.aliases\[0\]: alias x clashes with service x on network front/],
    ['alias clash through networksAdd', { networksAdd: [{ target: 'front', aliases: ['www'] }] }, /^networksAdd\[0\]\.aliases\[0\]: alias www clashes with an alias of service x on network front/],
    ['ipv4Address taken on update', { networks: [{ target: 'front', ipv4Address: vip! }] }, /^networks\[0\]\.ipv4Address: .* is already in use by service z/],
    ['dnsrr with an ipv4Address', { endpointMode: 'dnsrr', networks: [{ target: 'front', ipv4Address: '10.70.0.99' }] }, /^networks\[0\]\.ipv4Address: a dnsrr service has no VIP/],
    ['replacement port taken', { ports: [{ target: 1, published: 5300, protocol: 'udp' }] }, /^ports\[0\]\.published: port 5300\/udp is already published by service x/],
  ];
  for (const [what, up, message] of refused) await t.rejects(p.services.update('web', up), message, what);
  t.same(await dump(p), before, 'store unchanged');
  t.ok(journal().equals(bytes), 'not one write');

  const added = await p.services.update('web', { networksAdd: [{ target: 'front', aliases: ['web2'] }] });
  t.same(added.networks[0], { network: front.id, vip: '10.70.0.99', aliases: ['web2'] }, 'networksAdd long form on an attached network: its aliases replaced, VIP kept');
  const plain = await p.services.update('web', { networksAdd: ['front'] });
  t.same(plain.networks[0]!.aliases, ['web2'], 'a plain name for an attached network changes nothing');
  const rr = await p.services.update('web', { endpointMode: 'dnsrr' });
  t.same(rr.networks, [{ network: front.id, aliases: ['web2'] }, { network: back.id }], 'dnsrr: VIPs dropped, aliases kept');
});

t.test('DNS: aliases answer on their networks only, as the name does', async (t) => {
  const web = { ...svc('web', [{ network: 'A', vip: '10.1.0.2', aliases: ['www'] }, { network: 'B', vip: '10.2.0.2' }]), ports: [{ protocol: 'tcp' as const, target: 80, published: 30000, mode: 'ingress' as const }] };
  const db = svc('db', [{ network: 'A', aliases: ['database'] }], 'dnsrr');
  const tasks = [
    task('web-1', 'web', [{ network: 'A', ip: '10.1.0.10' }]),
    task('web-2', 'web', [{ network: 'B', ip: '10.2.0.10' }]),
    task('db-1', 'db', [{ network: 'A', ip: '10.1.0.20', aliases: ['primary'] }]),
    task('db-2', 'db', [{ network: 'A', ip: '10.1.0.21' }]),
    task('b-1', 'web', [{ network: 'B', ip: '10.2.0.30', aliases: ['primary'] }]),
  ];
  const view = { services: new Map([web, db].map((s) => [s.id, s])), tasks: new Map(tasks.map((x) => [x.id, x])), onChange: () => () => undefined } as unknown as View;
  const h = clusterHandler({ view, ttlSeconds: 5 });
  const ask = async (name: string, client: string, type = 'A') => {
    const r = await h({ name, type, client, raw: Buffer.alloc(0), transport: 'udp' });
    if (!r || 'raw' in r) return undefined;
    return r.answers.map((x) => ((d: unknown) => (typeof d === 'string' ? d : JSON.stringify(d)))((x as { data: unknown }).data)).sort();
  };
  t.same(await ask('www', '10.1.0.20'), ['10.1.0.2'], 'alias -> the VIP on its network');
  t.same(await ask('www', '10.2.0.10'), undefined, 'not visible from another network: unknown (forwarded)');
  t.same(await ask('www', '127.0.0.1'), ['10.1.0.2'], 'the node sees it, with the VIP of that network only');
  t.same(await ask('web', '127.0.0.1'), ['10.1.0.2', '10.2.0.2'], 'the name: every VIP, as before');
  t.same(await ask('tasks.www', '10.1.0.20'), ['10.1.0.10'], 'tasks.<alias>: task IPs on the alias network');
  t.same(await ask('tasks.www', '127.0.0.1'), ['10.1.0.10'], 'also from the node');
  t.same(await ask('database', '10.1.0.10'), ['10.1.0.20', '10.1.0.21'], 'dnsrr alias: task IPs');
  t.same(await ask('primary', '10.1.0.10'), ['10.1.0.20'], 'task alias: the task on the client network');
  t.same(await ask('primary', '10.2.0.10'), ['10.2.0.30'], 'the same alias on another network: that one');
  t.same(await ask('primary', '127.0.0.1'), ['10.1.0.20', '10.2.0.30'], 'the node: all');
  t.same(await ask('WWW'.toLowerCase(), '10.1.0.20', 'AAAA'), [], 'NODATA for another type');
  t.same(await ask('www', '10.1.0.20', 'SRV'), [JSON.stringify({ priority: 0, weight: 0, port: 30000, target: 'www' })], 'SRV for the alias');
  t.same(await ask('_80._tcp.www', '10.1.0.20', 'SRV'), [JSON.stringify({ priority: 0, weight: 0, port: 30000, target: 'www' })]);
  t.same(await ask('_80._tcp.www', '10.2.0.10', 'SRV'), undefined);
});
