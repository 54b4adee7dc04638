import t from 'tap';
import { dump, plane } from '../helpers/plane.js';

t.test('service create: defaults, auto-assigned ports, VIPs', async (t) => {
  const { p } = await plane(t);
  const net = await p.networks.create({ name: 'backend' });
  t.equal(net.subnet, '10.0.1.0/24');
  t.equal(net.gateway, '10.0.1.1');
  t.equal(net.vni, 4096);
  const net2 = await p.networks.create({ name: 'front', subnet: '10.9.0.0/16' });
  t.equal(net2.vni, 4097);
  const s = await p.services.create({ name: 'web', ports: [{ target: 80 }, { target: 53, protocol: 'udp' }, { target: 443, published: 8443 }], networks: ['backend'] });
  t.equal(s.lb, 'rr');
  t.equal(s.endpointMode, 'vip');
  t.same(s.ports.map((x) => `${x.published}/${x.protocol}`), ['30000/tcp', '30000/udp', '8443/tcp']);
  t.same(s.networks, [{ network: net.id, vip: '10.0.1.2' }]);
  const s2 = await p.services.create({ name: 'api', ports: [{ target: 80 }], networks: [net.id] });
  t.equal(s2.ports[0]!.published, 30001);
  t.equal(s2.networks[0]!.vip, '10.0.1.3');
  const dnsrr = await p.services.create({ name: 'db', endpointMode: 'dnsrr', networks: ['backend'] });
  t.same(dnsrr.networks, [{ network: net.id }], 'dnsrr gets no VIP');
});

const invalidSpecs: Array<[string, unknown, RegExp]> = [
  ['bad name', { name: 'bad_name!' }, /^name: "bad_name!" is not a valid name/],
  ['name starting with -', { name: '-web' }, /^name: /],
  ['missing name', { ports: [] }, /^name: is required/],
  ['port 0', { name: 'x', ports: [{ target: 80, published: 0 }] }, /^ports\[0\]\.published: must be from 1 to 65535 \(got 0\)/],
  ['port > 65535', { name: 'x', ports: [{ target: 70000 }] }, /^ports\[0\]\.target: must be from 1 to 65535 \(got 70000\)/],
  ['unknown scheduler', { name: 'x', lb: 'random' }, /^lb: must be one of rr, wrr, lc, wlc, sh, mh \(got "random"\)/],
  ['unknown protocol', { name: 'x', ports: [{ target: 1, protocol: 'sctp' }] }, /^ports\[0\]\.protocol: must be one of tcp, udp/],
  ['unknown field', { name: 'x', replicas: 3 }, /^replicas: unknown field/],
  ['same port twice', { name: 'x', ports: [{ target: 1, published: 9000 }, { target: 2, published: 9000 }] }, /^ports\[1\]\.published: port 9000\/tcp is given twice/],
  ['unknown network', { name: 'x', networks: ['nope'] }, /^networks\[0\]: network nope not found/],
  ['duplicate published port', { name: 'x', ports: [{ target: 80, published: 30100 }, { target: 81, published: 8080 }] }, /^ports\[1\]\.published: port 8080\/tcp is already published by service web/],
  ['duplicate name', { name: 'web', ports: [{ target: 80, published: 30200 }] }, /^name: service web already exists/],
];

t.test('invalid specs are rejected with the field named, and nothing is stored', async (t) => {
  const { p } = await plane(t);
  await p.services.create({ name: 'web', ports: [{ target: 80, published: 8080 }] });
  const before = await dump(p);
  for (const [what, spec, message] of invalidSpecs) {
    const err = await p.services.create(spec).then(
      () => undefined,
      (e: Error) => e,
    );
    t.ok(err, `${what}: rejected`);
    t.match(err?.message, message, what);
  }
  t.same(await dump(p), before, 'store unchanged after every rejection');
  const ok = await p.services.create({ name: 'x', ports: [{ target: 80, published: 30100 }] });
  t.equal(ok.ports[0]!.published, 30100, 'a port claimed by a rejected spec was released');
});

t.test('update adds and removes ports and releases them; remove frees everything', async (t) => {
  const { p } = await plane(t);
  await p.services.create({ name: 'web', ports: [{ target: 80, published: 8080 }] });
  const u = await p.services.update('web', { portsAdd: [{ target: 443, published: 8443 }], portsRm: [{ target: 80 }], lb: 'mh' });
  t.same(u.ports.map((x) => x.published), [8443]);
  t.equal(u.lb, 'mh');
  await t.rejects(p.services.update('web', { lb: 'nope' }), /lb: must be one of/);
  const other = await p.services.create({ name: 'other', ports: [{ target: 1, published: 8080 }] });
  t.equal(other.ports[0]!.published, 8080, 'port freed by update is reusable');
  await t.rejects(p.services.update('web', { portsAdd: [{ target: 1, published: 8080 }] }), /already published by service other/);
  await p.tasks.add({ service: 'web', addr: '127.0.0.1:9000' });
  await p.removeService('web');
  t.same(await p.tasks.list(), []);
  const again = await p.services.create({ name: 'web', ports: [{ target: 443, published: 8443 }] });
  t.ok(again.id, 'name and port reusable after rm');
});

t.test('update: changing the endpoint mode drops or allocates VIPs', async (t) => {
  const { p } = await plane(t);
  const net = await p.networks.create({ name: 'net' });
  await p.services.create({ name: 's', networks: ['net'] });
  const rr = await p.services.update('s', { endpointMode: 'dnsrr' });
  t.same(rr.networks, [{ network: net.id }], 'dnsrr: VIP released');
  const other = await p.services.create({ name: 'o', networks: ['net'] });
  t.equal(other.networks[0]!.vip, '10.0.1.2', 'the released VIP is free again');
  const vip = await p.services.update('s', { endpointMode: 'vip' });
  t.equal(vip.networks[0]!.vip, '10.0.1.3', 'vip: a VIP allocated again');
});

t.test('tasks: names by slot, addr rules, overlay IPs from IPAM', async (t) => {
  const { p } = await plane(t);
  await p.networks.create({ name: 'net' });
  await p.services.create({ name: 'web', ports: [{ target: 80 }], networks: ['net'] });
  const a = await p.tasks.add({ service: 'web', addr: '127.0.0.1:9000' });
  const b = await p.tasks.add({ service: 'web', network: 'net' });
  t.equal(a.name, 'web.1');
  t.equal(b.name, 'web.2');
  t.same(b.addresses.map((x) => x.ip), ['10.0.1.3'], 'first free after gateway and VIP');
  await t.rejects(p.tasks.add({ service: 'web', network: 'net', ip: '10.0.1.3' }), /ip: 10.0.1.3 is already in use/);
  await t.rejects(p.tasks.add({ service: 'web', network: 'net', ip: '10.0.2.3' }), /ip: 10.0.2.3 is not a usable address/);
  await t.rejects(p.tasks.add({ service: 'web' }), /addr: give exactly one of/);
  await t.rejects(p.tasks.add({ service: 'nope', addr: '1.2.3.4:5' }), /service: service nope not found/);
  await t.rejects(p.tasks.add({ service: 'web', addr: '1.2.3.4:99999' }), /addr: "1.2.3.4:99999" is not a valid endpoint/);
  await t.rejects(p.tasks.add({ service: 'web', addr: '1.2.3.4:5', node: 'ghost' }), /node: node ghost not found/);
  await p.tasks.remove('web.1');
  const c = await p.tasks.add({ service: 'web', addr: '127.0.0.1:9001' });
  t.equal(c.name, 'web.1', 'freed slot is reused');
  await p.tasks.remove(b.id);
  const d = await p.tasks.add({ service: 'web', network: 'net' });
  t.same(d.addresses.map((x) => x.ip), ['10.0.1.3'], 'freed IP is reused');
});

t.test('networks: overlapping subnets rejected; in-use networks cannot be removed', async (t) => {
  const { p } = await plane(t);
  await p.networks.create({ name: 'a', subnet: '10.5.0.0/16' });
  await t.rejects(p.networks.create({ name: 'b', subnet: '10.5.3.0/24' }), /subnet: 10.5.3.0\/24 overlaps 10.5.0.0\/16/);
  await t.rejects(p.networks.create({ name: 'c', subnet: '10.5.3.1/24' }), /subnet: "10.5.3.1\/24" is not a valid IPv4 CIDR/);
  await t.rejects(p.networks.create({ name: 'a' }), /name: network a already exists/);
  await p.services.create({ name: 's', networks: ['a'] });
  await t.rejects(p.networks.remove('a'), /in use by service s/);
  await p.removeService('s');
  await p.networks.remove('a');
  t.same(await p.networks.list(), []);
});

t.test('malformed stored objects are skipped on read, not trusted', async (t) => {
  const { p, store, invalid } = await plane(t);
  await p.services.create({ name: 'ok' });
  await store.put('services', 'evil', { id: 'evil', name: 'x', ports: 'not an array' });
  const list = await p.services.list();
  t.same(list.map((s) => s.name), ['ok']);
  t.same(invalid, ['services/evil']);
});

t.test('node availability', async (t) => {
  const { p } = await plane(t);
  const n = await p.nodes.update('node1', { availability: 'drain' });
  t.equal(n.availability, 'drain');
  const hb = await p.nodes.heartbeat({ id: 'node1', addr: '127.0.0.1', hostname: 'h' });
  t.equal(hb.availability, 'drain', 'heartbeat keeps availability set by an operator');
  await t.rejects(p.nodes.update('node1', { availability: 'off' }), /availability: must be one of active, pause, drain/);
});
