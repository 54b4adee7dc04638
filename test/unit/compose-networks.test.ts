/** Top-level `networks:` to NetworkSpecs: driver, encryption, subnet, attachable, labels, name, external, default. */
import t from 'tap';
import { load, loadError, service } from '../fixtures/compose/files.js';

const NS = 'com.docker.stack.namespace';
/** One service on `front`, with `front` declared as given. */
const front = (decl: string) => `services:\n  web:\n    networks: [front]\nnetworks:\n  front:\n${decl}`;

t.test('every used key', async (t) => {
  const { spec, warnings } = load(t, {
    files: {
      'compose.yml': front(`    driver: overlay
    driver_opts:
      encrypted: ""
    ipam:
      driver: default
      config:
        - subnet: 10.20.0.0/24
    attachable: true
    internal: false
    enable_ipv4: true
    enable_ipv6: false
    labels:
      - team=net
      - flag
    x-docs: ignored silently
`),
    },
  });
  t.same(warnings, []);
  const n = spec.networks[0]!;
  t.same(n.spec, { name: 'shop_front', encrypted: true, subnet: '10.20.0.0/24', attachable: true, labels: { team: 'net', flag: '', [NS]: 'shop' } });
  t.same(
    Object.fromEntries(Object.entries(n.sources).map(([k, v]) => [k, v.path])),
    {
      encrypted: 'networks.front.driver_opts.encrypted',
      subnet: 'networks.front.ipam.config[0].subnet',
      attachable: 'networks.front.attachable',
      labels: 'networks.front.labels',
      'labels.team': 'networks.front.labels[0]',
      'labels.flag': 'networks.front.labels[1]',
    },
  );
  t.equal(n.source.path, 'networks.front');
});

t.test('a network with nothing set, labels as a map, encrypted with any value', async (t) => {
  const bare = load(t, { files: { 'compose.yml': front('') } }).spec.networks[0]!;
  t.same(bare.spec, { name: 'shop_front', labels: { [NS]: 'shop' } });
  const labelled = load(t, { files: { 'compose.yml': front('    labels: {team: net, n: 1, on: true, none: null, com.docker.stack.namespace: other}\n    driver_opts: {encrypted: "true"}\n') } }).spec.networks[0]!;
  t.same(labelled.spec?.labels, { team: 'net', n: '1', on: 'true', none: '', [NS]: 'shop' }, "the stack's label wins");
  t.equal(labelled.spec?.encrypted, true);
});

t.test('name: and external', async (t) => {
  const named = load(t, { files: { 'compose.yml': front('    name: shared-net\n') } }).spec;
  t.equal(named.networks[0]!.name, 'shared-net', 'name: is used as it is, no prefix');
  t.same(service(named, 'web').spec.networks, [{ target: 'shared-net', aliases: ['web'] }]);
  for (const decl of ['    external: true\n', '    external: true\n    name: corp\n', '    external:\n      name: corp\n', '    external: {name: corp}\n    name: corp\n']) {
    const { spec } = load(t, { files: { 'compose.yml': front(decl) } });
    const n = spec.networks[0]!;
    const name = decl.includes('corp') ? 'corp' : 'front';
    t.same([n.key, n.name, n.external, n.spec], ['front', name, true, undefined], decl);
    t.same(service(spec, 'web').spec.networks, [{ target: name, aliases: ['web'] }]);
  }
  t.equal(load(t, { files: { 'compose.yml': front('    external: false\n') } }).spec.networks[0]!.external, false);
});

t.test('refused', async (t) => {
  const cases: Array<[string, string]> = [
    ['    driver: bridge\n', 'networks.front.driver: driver bridge is not supported: swarmnet networks are overlay networks'],
    ['    external: true\n    driver: overlay\n', 'networks.front.driver: an external network takes no other key than name (it exists already, as it is)'],
    ['    external: true\n    labels: [a=b]\n', 'networks.front.labels: an external network takes no other key than name (it exists already, as it is)'],
    ['    external: {name: a}\n    name: b\n', 'networks.front.external.name: conflicts with networks.front.name (b): give name only'],
    ['    internal: true\n', 'networks.front.internal: internal networks are not supported: swarmnet does not cut a network off from the outside'],
    ['    enable_ipv6: true\n', 'networks.front.enable_ipv6: IPv6 is not supported: swarmnet networks are IPv4'],
    ['    enable_ipv4: false\n', 'networks.front.enable_ipv4: swarmnet networks are IPv4: enable_ipv4 cannot be false'],
    ['    ipam: {config: [{subnet: 10.0.0.1/24}]}\n', 'networks.front.ipam.config[0].subnet: "10.0.0.1/24" is not a valid IPv4 CIDR (a.b.c.d/len)'],
    ['    ipam: {config: [{subnet: nonsense}]}\n', 'networks.front.ipam.config[0].subnet: "nonsense" is not a valid IPv4 CIDR (a.b.c.d/len)'],
    ['    ipam: {config: [{subnet: "fd00::/64"}]}\n', 'networks.front.ipam.config[0].subnet: "fd00::/64" is not a valid IPv4 CIDR (a.b.c.d/len)'],
    ['    attachable: yes\n', 'networks.front.attachable: must be true or false'],
    ['    labels: "a=b"\n', 'networks.front.labels: must be a mapping or a list of "key=value"'],
    ['    labels: {a: {b: c}}\n', 'networks.front.labels.a: a label value must be a string'],
    ['    name: -bad-\n', 'networks.front.name: "-bad-" is not a valid name (letters, digits, \'-\' and \'_\', at most 63, starting and ending with a letter or digit)'],
    ['    drivr: overlay\n', 'networks.front.drivr: unknown key (not in the compose file format)'],
    ['    x-swarmnet: {}\n', 'networks.front.x-swarmnet: x-swarmnet is read on services only (services.NAME.x-swarmnet)'],
  ];
  for (const [decl, want] of cases) t.equal(loadError(t, front(decl)), `compose.yml: ${want}`, decl);
  t.equal(loadError(t, 'networks:\n  n: [a]\n'), 'compose.yml: networks.n: must be a mapping');
});

t.test('ignored with a note: other driver options, another IPAM driver, extra subnets, gateways', async (t) => {
  const { spec, warnings } = load(t, {
    files: {
      'compose.yml': front(`    driver_opts: {com.docker.network.driver.mtu: "1400", encrypted: ""}
    ipam:
      driver: custom
      options: {a: b}
      config:
        - {subnet: 10.30.0.0/24, gateway: 10.30.0.254, ip_range: 10.30.0.0/25, aux_addresses: {h: 10.30.0.9}}
        - {subnet: 10.31.0.0/24}
`),
    },
  });
  t.equal(spec.networks[0]!.spec?.subnet, '10.30.0.0/24', 'the first subnet');
  t.same(warnings, [
    'ignored (not supported by swarmnet): networks.front.ipam.options, networks.front.ipam.config[0].gateway, networks.front.ipam.config[0].ip_range, networks.front.ipam.config[0].aux_addresses, networks.front.driver_opts.com.docker.network.driver.mtu, networks.front.ipam.driver (custom), networks.front.ipam.config[1]',
  ]);
});

t.test('the default network: implicit, declared, and only networks in use', async (t) => {
  const implicit = load(t, { files: { 'compose.yml': 'services:\n  web: {}\n  api:\n    networks: [default, back]\nnetworks:\n  back:\n  unused:\n    driver: overlay\n' } }).spec;
  t.same(implicit.networks.map((n) => [n.key, n.name]), [['back', 'shop_back'], ['default', 'shop_default']], 'declared order, the implicit default last, unused networks left out (as docker)');
  t.same(implicit.networks[1]!.spec, { name: 'shop_default', labels: { [NS]: 'shop' } });
  t.equal(implicit.networks[1]!.source.path, 'services.web', 'sourced at the first service that joins it');
  t.same(service(implicit, 'web').spec.networks, [{ target: 'shop_default', aliases: ['web'] }]);
  t.same(service(implicit, 'web').networkSources.map((s) => s.path), ['services.web']);
  t.same(service(implicit, 'api').spec.networks.map((n) => n.target), ['shop_default', 'shop_back']);

  const declared = load(t, { files: { 'compose.yml': 'services:\n  web:\n    networks: []\nnetworks:\n  default:\n    ipam: {config: [{subnet: 10.9.0.0/24}]}\n' } }).spec;
  t.same(declared.networks.map((n) => [n.key, n.name, n.spec?.subnet]), [['default', 'shop_default', '10.9.0.0/24']], 'a declared default is configured as declared; an empty list is no list');

  const external = load(t, { files: { 'compose.yml': 'services:\n  web: {}\nnetworks:\n  default:\n    external: true\n    name: corp\n' } }).spec;
  t.same(service(external, 'web').spec.networks, [{ target: 'corp', aliases: ['web'] }], 'the default may be an external network');

  t.same(load(t, { files: { 'compose.yml': 'networks:\n  a:\n' } }).spec, { name: 'shop', networks: [], services: [] }, 'no services: nothing to create');
  t.match(loadError(t, 'services:\n  web: {}\nnetworks:\n  unused:\n    driver: host\n'), /networks\.unused\.driver: driver host is not supported/, 'unused networks are still checked');
});

t.test('a service naming an undefined network', async (t) => {
  t.equal(loadError(t, 'services:\n  web:\n    networks: [front, back]\nnetworks:\n  front:\n'), 'compose.yml: services.web.networks[1]: network back is not defined (declare it under the top-level networks:)');
  t.equal(loadError(t, 'services:\n  web:\n    networks:\n      back: {aliases: [b]}\n'), 'compose.yml: services.web.networks.back: network back is not defined (declare it under the top-level networks:)');
});
