/** Compose files as files: YAML errors with positions, versions, the top level, a real-world file, anchors, naming. */
import t from 'tap';
import { ComposeError, loadStack } from '../../src/stack/compose/index.js';
import { composeDir, errorOf, load, loadError, service } from '../fixtures/compose/files.js';

t.test('bad YAML: the file, line and column, then yaml own message', async (t) => {
  const cases: Array<[string, string]> = [
    ['services:\n  web:\n    ports: [80\n', 'compose.yml:4:1: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['services:\n  web: {}\n  web: {}\n', 'compose.yml:3:3: Map keys must be unique'],
    ['services:\n  web:\n    image: "x\n', 'compose.yml:4:1: Missing closing "quote'],
    ['services: {}\n---\nnetworks: {}\n', 'compose.yml:2:1: Source contains multiple documents; please use YAML.parseAllDocuments()'],
  ];
  for (const [text, want] of cases) t.equal(loadError(t, text), want, JSON.stringify(text));
  const err = errorOf(() => load(t, { files: { 'compose.yml': 'a: [' } }));
  t.match(err, /^compose\.yml:1:\d+: /, 'position always present');
});

t.test('errors are ComposeErrors with file, path and a stable code', async (t) => {
  composeDir(t, { 'compose.yml': 'services:\n  web:\n    ports: ["x"]\n' });
  try {
    loadStack(['compose.yml'], 'shop', { env: {} });
    t.fail('no error');
  } catch (err) {
    t.ok(err instanceof ComposeError);
    const e = err as ComposeError;
    t.equal(e.code, 'ECOMPOSE');
    t.equal(e.file, 'compose.yml');
    t.equal(e.path, 'services.web.ports[0]');
    t.equal(e.message, 'compose.yml: services.web.ports[0]: target port "x" is not a number');
  }
});

t.test('the top level must be a mapping', async (t) => {
  for (const text of ['', '- a\n- b\n', 'just text\n', '42\n']) {
    t.equal(loadError(t, text), 'compose.yml: the top level must be a mapping (services:, networks: ...)', JSON.stringify(text));
  }
});

t.test('versions: 3.x and none load; 1 and 2 are refused with one clear line', async (t) => {
  for (const v of ['"3"', '"3.0"', '"3.8"', '3.9', '"3.14"']) {
    const { spec } = load(t, { files: { 'compose.yml': `version: ${v}\nservices:\n  web: {}\n` } });
    t.equal(spec.services.length, 1, `version ${v} loads`);
  }
  t.equal(load(t, { files: { 'compose.yml': 'services:\n  web: {}\n' } }).spec.services.length, 1, 'Compose Specification (no version)');
  for (const v of ['2.4', '2', '1', '4.0', 'latest']) {
    t.equal(loadError(t, `version: "${v}"\nservices:\n  web: {}\n`), `compose.yml: version: version ${v} is not supported: swarmnet deploys version 3 and Compose Specification files`);
  }
  // Version 1 had no version key: services at the top level.
  t.equal(loadError(t, 'web:\n  image: nginx\n  links: [db]\n'), 'compose.yml: version 1 is not supported (services at the top level, such as web): swarmnet deploys version 3 and Compose Specification files');
  // A version 2 file with keys version 3 dropped still gets the version line, not an unknown-key error.
  t.match(loadError(t, 'version: "2.1"\nservices:\n  web:\n    volume_driver: x\n'), /version 2\.1 is not supported/);
});

t.test('a file that cannot be read', async (t) => {
  composeDir(t, {});
  t.equal(errorOf(() => loadStack(['missing.yml'], 'shop', { env: {} })), 'missing.yml: cannot read: no such file');
  t.equal(errorOf(() => loadStack([], 'shop', { env: {} })), 'stack deploy: no compose file given (-c FILE)');
});

t.test('a real-world file deploys with one warning line', async (t) => {
  const { spec, warnings } = load(t, {
    files: {
      'compose.yml': `version: "3.8"
services:
  web:
    image: nginx:1.25
    command: ["nginx", "-g", "daemon off;"]
    environment:
      - TZ=UTC
    volumes:
      - static:/usr/share/nginx/html:ro
    ports:
      - "8080:80"
    depends_on: [api]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 30s
    deploy:
      replicas: 3
      restart_policy: {condition: on-failure}
      resources: {limits: {cpus: "0.5", memory: 128M}}
      placement: {constraints: [node.role == worker]}
  api:
    image: example/api
    env_file: api.env
    secrets: [db_password]
    deploy:
      replicas: 2
      update_config: {parallelism: 1, delay: 10s}
volumes:
  static:
secrets:
  db_password:
    file: ./db_password.txt
`,
    },
  });
  t.same(warnings, [
    'ignored (not networking): services.web.image, services.web.command, services.web.environment, services.web.volumes, services.web.depends_on, services.web.healthcheck, services.web.deploy.replicas, services.web.deploy.restart_policy, services.web.deploy.resources, services.web.deploy.placement, services.api.image, services.api.env_file, services.api.secrets, services.api.deploy.replicas, services.api.deploy.update_config, volumes, secrets',
  ]);
  t.same(spec.services.map((s) => s.spec.name), ['shop_web', 'shop_api']);
  t.same(spec.networks.map((n) => n.name), ['shop_default']);
  t.same(service(spec, 'web').spec.ports, [{ protocol: 'tcp', target: 80, published: 8080, mode: 'ingress' }]);
});

t.test('names and labels as docker stack deploy: NAME_key, com.docker.stack.namespace', async (t) => {
  const { spec } = load(t, {
    stack: 'prod',
    files: { 'compose.yml': 'services:\n  web:\n    networks: [front]\nnetworks:\n  front:\n  named:\n    name: my-net\n' },
  });
  const web = service(spec, 'web');
  t.equal(web.spec.name, 'prod_web');
  t.same(web.spec.labels, { 'com.docker.stack.namespace': 'prod' });
  t.same(spec.networks.map((n) => [n.key, n.name, n.spec?.labels]), [['front', 'prod_front', { 'com.docker.stack.namespace': 'prod' }]]);
  t.equal(spec.name, 'prod');
  t.same(JSON.parse(JSON.stringify(spec)), spec, 'the StackSpec is plain JSON');
});

t.test('anchors, aliases and << merge keys (x- fragments) expand', async (t) => {
  const { spec } = load(t, {
    files: {
      'compose.yml': `x-net: &net
  networks:
    front: {aliases: [shared]}
x-labels: &labels
  labels: {tier: app}
x-more: &more
  labels: {tier: other}
  deploy: {endpoint_mode: dnsrr}
services:
  a:
    <<: [*net, *labels, *more]
  b:
    <<: *net
    labels: {tier: own}
networks:
  front:
`,
    },
  });
  const a = service(spec, 'a');
  t.same(a.spec.networks, [{ target: 'shop_front', aliases: ['shared', 'a'] }]);
  t.equal(a.spec.labels?.tier, 'app', 'the earlier anchor wins');
  t.equal(a.spec.endpointMode, 'dnsrr', 'keys only a later anchor has are merged');
  t.equal(a.sources['networks[0].aliases[0]']?.path, 'services.a.networks.front.aliases[0]', 'merged values have the path where they land');
  t.equal(service(spec, 'b').spec.labels?.tier, 'own', "the mapping's own keys win");
});

t.test('an alias bomb is refused, not expanded', async (t) => {
  let text = 'x-a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n';
  for (let i = 0; i < 8; i++) text += `x-${i}: &l${i} [${Array(10).fill(i === 0 ? '*a' : `*l${i - 1}`).join(', ')}]\n`;
  t.match(loadError(t, text), /more than 200000 values/);
});
