/** Several -c files merged as compose merges override files (compose-spec 13-merge.md), with the file that set each value. */
import t from 'tap';
import { errorOf, load, service } from '../fixtures/compose/files.js';

const BASE = `services:
  web:
    image: nginx
    ports:
      - "8080:80"
      - "9090:90"
    networks: [front]
    labels: [a=1, b=2]
    deploy:
      endpoint_mode: vip
      replicas: 2
    x-swarmnet:
      scheduler: rr
      health_check: {interval: 5s, timeout: 1s}
  worker:
    ports: ["7000:70"]
networks:
  front:
    ipam: {config: [{subnet: 10.1.0.0/24}]}
    labels: {team: a}
`;

const OVERRIDE = `services:
  web:
    image: nginx:alpine
    ports:
      - target: 80
        published: 8080
        mode: host
      - "7070:70"
    networks:
      front:
        aliases: [www]
      back:
    labels: {b: "3", c: "4"}
    deploy:
      endpoint_mode: dnsrr
    x-swarmnet:
      health_check: {timeout: 3s}
  api:
    networks: [back]
networks:
  front:
    ipam: {config: [{subnet: 10.2.0.0/24}]}
  back:
`;

t.test('an override file merged over the base', async (t) => {
  const { spec, warnings } = load(t, { files: { 'base.yml': BASE, 'override.yml': OVERRIDE }, use: ['base.yml', 'override.yml'] });
  const web = service(spec, 'web');
  t.same(web.spec.ports, [
    { protocol: 'tcp', target: 80, published: 8080, mode: 'host' },
    { protocol: 'tcp', target: 90, published: 9090, mode: 'ingress' },
    { protocol: 'tcp', target: 70, published: 7070, mode: 'ingress' },
  ], 'ports merged by identity: the same (published, target, protocol) replaced in place, others appended');
  t.same(web.portSources, [
    { file: 'override.yml', path: 'services.web.ports[0]' },
    { file: 'base.yml', path: 'services.web.ports[1]' },
    { file: 'override.yml', path: 'services.web.ports[1]' },
  ]);
  t.same(web.spec.networks, [
    { target: 'shop_front', aliases: ['www', 'web'] },
    { target: 'shop_back', aliases: ['web'] },
  ], 'a list and a map of networks unify');
  t.same(web.networkSources, [{ file: 'override.yml', path: 'services.web.networks.front' }, { file: 'override.yml', path: 'services.web.networks.back' }]);
  t.equal(web.spec.endpointMode, 'dnsrr');
  t.same(web.sources.endpointMode, { file: 'override.yml', path: 'services.web.deploy.endpoint_mode' });
  t.same(web.spec.labels, { a: '1', b: '3', c: '4', 'com.docker.stack.namespace': 'shop' }, 'a list and a map of labels merge key by key');
  t.same([web.sources['labels.a']?.file, web.sources['labels.b']?.file], ['base.yml', 'override.yml']);
  t.same(web.spec.healthCheck, { interval: 5000, timeout: 3000, retries: 3 }, 'x-swarmnet merged key by key');
  t.same([web.spec.lb, web.sources.lb?.file, web.sources['healthCheck.timeout']?.file, web.sources['healthCheck.interval']?.file], ['rr', 'base.yml', 'override.yml', 'base.yml']);
  t.same(web.source, { file: 'base.yml', path: 'services.web' }, 'a service is sourced where it is first defined');
  t.same(service(spec, 'worker').spec.ports, [{ protocol: 'tcp', target: 70, published: 7000, mode: 'ingress' }], 'a service only the base has is kept');
  t.same(service(spec, 'api').source, { file: 'override.yml', path: 'services.api' }, 'a service only the override has is added');
  const front = spec.networks.find((n) => n.key === 'front')!;
  t.same([front.spec?.subnet, front.sources.subnet?.file, front.spec?.labels?.team], ['10.2.0.0/24', 'override.yml', 'a'], 'ipam.config replaced, labels kept');
  t.same(spec.networks.map((n) => n.key), ['front', 'back', 'default'], 'worker lists no network: default');
  t.same(warnings, ['ignored (not networking): services.web.image, services.web.deploy.replicas'], 'an ignored key named once even when both files set it');
});

t.test('three files apply in order; aliases append without duplicates', async (t) => {
  const { spec } = load(t, {
    use: ['a.yml', 'b.yml', 'c.yml'],
    files: {
      'a.yml': 'services:\n  web:\n    networks: {front: {aliases: [one, two]}}\nnetworks:\n  front:\n',
      'b.yml': 'services:\n  web:\n    networks: {front: {aliases: [two, three], ipv4_address: 10.0.0.5}}\n',
      'c.yml': 'services:\n  web:\n    networks: {front: {ipv4_address: 10.0.0.6}}\n    deploy: {endpoint_mode: dnsrr}\n',
    },
  });
  const web = service(spec, 'web');
  t.same(web.spec.networks, [{ target: 'shop_front', aliases: ['one', 'two', 'three', 'web'], ipv4Address: '10.0.0.6' }]);
  t.same(web.sources['networks[0].ipv4Address'], { file: 'c.yml', path: 'services.web.networks.front.ipv4_address' });
  t.same([web.sources['networks[0].aliases[0]']?.file, web.sources['networks[0].aliases[2]']?.file], ['a.yml', 'b.yml']);
});

t.test('null keeps, !reset removes, !override replaces', async (t) => {
  const { spec } = load(t, {
    use: ['base.yml', 'over.yml'],
    files: {
      'base.yml': BASE,
      'over.yml': `services:
  web:
    ports: !override
      - "8443:443"
    networks: !reset []
    labels:
      a: !reset
    deploy:
      endpoint_mode:
  worker: !reset null
networks:
  front:
    labels: !override {team: b}
`,
    },
  });
  const web = service(spec, 'web');
  t.same(web.spec.ports, [{ protocol: 'tcp', target: 443, published: 8443, mode: 'ingress' }], '!override: only the new list');
  t.same(web.portSources, [{ file: 'over.yml', path: 'services.web.ports[0]' }]);
  t.same(web.spec.networks, [{ target: 'shop_default', aliases: ['web'] }], '!reset []: no networks left, so the default');
  t.same(web.spec.labels, { b: '2', 'com.docker.stack.namespace': 'shop' }, 'one label reset');
  t.equal(web.spec.endpointMode, 'vip', 'a null in the override keeps the base value');
  t.same(spec.services.map((s) => s.key), ['web'], '!reset on a service removes it');
  t.same(spec.networks.map((n) => n.key), ['default'], 'front is no longer used');
});

t.test('a key only the override sets, with tags inside', async (t) => {
  const { spec } = load(t, {
    use: ['a.yml', 'b.yml'],
    files: { 'a.yml': 'services:\n  web: {}\n', 'b.yml': 'services:\n  web:\n    deploy: {labels: {x: "1", y: !reset "2"}}\n' },
  });
  t.same(service(spec, 'web').spec.labels, { x: '1', 'com.docker.stack.namespace': 'shop' });
});

t.test('values of different shapes: the later one, checked where it is read', async (t) => {
  const { spec } = load(t, {
    use: ['a.yml', 'b.yml'],
    files: { 'a.yml': 'services:\n  web:\n    environment: {A: "1"}\n', 'b.yml': 'services:\n  web:\n    environment: [B=2]\n' },
  });
  t.equal(spec.services.length, 1, 'environment as a mapping, then as a list (compose converts; swarmnet ignores it)');
  t.equal(
    errorOf(() => load(t, { use: ['a.yml', 'b.yml'], files: { 'a.yml': 'services:\n  web:\n    networks: {front: {aliases: [x]}}\nnetworks: {front: }\n', 'b.yml': 'services:\n  web:\n    networks: {front: {aliases: {y: z}}}\n' } })),
    'b.yml: services.web.networks.front.aliases: must be a list',
  );
});

t.test('an error in a later file names that file', async (t) => {
  t.equal(
    errorOf(() => load(t, { use: ['a.yml', 'b.yml'], files: { 'a.yml': 'services:\n  web:\n    ports: ["80:80"]\n', 'b.yml': 'services:\n  api:\n    ports: ["80:80"]\n' } })),
    'b.yml: services.api.ports[0]: published port 80/tcp is already used by services.web.ports[0] (a.yml)',
  );
  t.equal(
    errorOf(() => load(t, { use: ['a.yml', 'b.yml'], files: { 'a.yml': 'services:\n  web: {}\n', 'b.yml': 'services:\n  web:\n    networks: [nope]\n' } })),
    'b.yml: services.web.networks[0]: network nope is not defined (declare it under the top-level networks:)',
  );
  t.equal(errorOf(() => load(t, { use: ['a.yml', 'b.yml'], files: { 'a.yml': 'services: {}\n', 'b.yml': 'services:\n  web:\n    imag: x\n' } })), 'b.yml: services.web.imag: unknown key (not in the compose file format)');
});
