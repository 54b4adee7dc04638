/** `services:` to ServiceSpecs: networks (list, map, aliases, ipv4_address), the short-name alias, endpoint mode, labels, x-swarmnet. */
import t from 'tap';
import { load, loadError, service } from '../fixtures/compose/files.js';

const NS = 'com.docker.stack.namespace';
const NETS = 'networks:\n  front:\n  back:\n';

t.test('a multi-service stack on two networks', async (t) => {
  const { spec, warnings } = load(t, {
    files: {
      'compose.yml': `services:
  web:
    ports: ["8080:80", {target: 443, published: 8443, mode: host}]
    networks: [front]
  api:
    networks:
      front:
        aliases: [backend, api-v2]
      back:
        ipv4_address: 10.0.9.10
    deploy:
      endpoint_mode: vip
  db:
    networks:
      back: null
    deploy:
      endpoint_mode: dnsrr
${NETS}`,
    },
  });
  t.same(warnings, []);
  t.same(service(spec, 'web').spec, {
    name: 'shop_web',
    ports: [
      { protocol: 'tcp', target: 80, published: 8080, mode: 'ingress' },
      { protocol: 'tcp', target: 443, published: 8443, mode: 'host' },
    ],
    networks: [{ target: 'shop_front', aliases: ['web'] }],
    labels: { [NS]: 'shop' },
  });
  t.same(service(spec, 'api').spec, {
    name: 'shop_api',
    endpointMode: 'vip',
    ports: [],
    networks: [
      { target: 'shop_front', aliases: ['backend', 'api-v2', 'api'] },
      { target: 'shop_back', aliases: ['api'], ipv4Address: '10.0.9.10' },
    ],
    labels: { [NS]: 'shop' },
  });
  t.same(service(spec, 'db').spec, { name: 'shop_db', endpointMode: 'dnsrr', ports: [], networks: [{ target: 'shop_back', aliases: ['db'] }], labels: { [NS]: 'shop' } });
  t.same(spec.services.map((s) => s.key), ['web', 'api', 'db'], 'file order');
  const api = service(spec, 'api');
  t.same(api.networkSources.map((s) => s.path), ['services.api.networks.front', 'services.api.networks.back']);
  t.same(
    Object.fromEntries(Object.entries(api.sources).map(([k, v]) => [k, v.path])),
    {
      name: 'services.api',
      endpointMode: 'services.api.deploy.endpoint_mode',
      'networks[0].aliases[0]': 'services.api.networks.front.aliases[0]',
      'networks[0].aliases[1]': 'services.api.networks.front.aliases[1]',
      'networks[1].ipv4Address': 'services.api.networks.back.ipv4_address',
    },
  );
});

t.test('the short name is an alias once, after the file’s aliases', async (t) => {
  const { spec } = load(t, { files: { 'compose.yml': `services:\n  web:\n    networks:\n      front: {aliases: [web, www, www]}\n${NETS}` } });
  t.same(service(spec, 'web').spec.networks, [{ target: 'shop_front', aliases: ['web', 'www'] }]);
});

t.test('endpoint mode, labels and deploy.labels', async (t) => {
  const { spec } = load(t, {
    files: {
      'compose.yml': `services:
  web:
    labels: [a=1, "b=x=y", c]
    deploy:
      endpoint_mode: DNSRR
      labels: {a: "2", d: 4}
`,
    },
  });
  const web = service(spec, 'web');
  t.equal(web.spec.endpointMode, 'dnsrr', 'lower-cased as docker does');
  t.same(web.spec.labels, { a: '2', b: 'x=y', c: '', d: '4', [NS]: 'shop' }, 'deploy.labels over labels, the stack label last');
  t.equal(web.sources['labels.a']?.path, 'services.web.deploy.labels.a');
  t.equal(web.sources['labels.b']?.path, 'services.web.labels[1]');
});

t.test('x-swarmnet: scheduler, PROXY protocol, health checks', async (t) => {
  const { spec } = load(t, {
    files: {
      'compose.yml': `services:
  web:
    x-swarmnet:
      scheduler: wlc
      proxy_protocol: v2
      health_check: {interval: 1m30s, timeout: 500ms, retries: 5}
  api:
    x-swarmnet:
      health_check: {timeout: 1.5s}
  db:
    x-swarmnet:
      scheduler: sh
      proxy_protocol: none
      health_check: {interval: 2h, retries: "2"}
`,
    },
  });
  const web = service(spec, 'web').spec;
  t.same([web.lb, web.proxyProtocol, web.healthCheck], ['wlc', 'v2', { interval: 90_000, timeout: 500, retries: 5 }]);
  t.same(service(spec, 'api').spec.healthCheck, { interval: 5000, timeout: 1500, retries: 3 }, "unset fields: service create's defaults");
  const db = service(spec, 'db').spec;
  t.same([db.lb, db.proxyProtocol, db.healthCheck], ['sh', 'none', { interval: 7_200_000, timeout: 2000, retries: 2 }]);
  t.equal(service(spec, 'web').sources['healthCheck.timeout']?.path, 'services.web.x-swarmnet.health_check.timeout');
});

t.test('errors at the value', async (t) => {
  const cases: Array<[string, string]> = [
    ['    x-swarmnet: {scheduler: fastest}\n', 'services.web.x-swarmnet.scheduler: must be one of rr, wrr, lc, wlc, sh, mh (got "fastest")'],
    ['    x-swarmnet: {proxy_protocol: v3}\n', 'services.web.x-swarmnet.proxy_protocol: must be one of none, v1, v2 (got "v3")'],
    ['    x-swarmnet: {health_check: {interval: 5}}\n', 'services.web.x-swarmnet.health_check.interval: 5 is not a duration (e.g. 500ms, 5s, 1m30s)'],
    ['    x-swarmnet: {health_check: {interval: 5 s}}\n', 'services.web.x-swarmnet.health_check.interval: "5 s" is not a duration (e.g. 500ms, 5s, 1m30s)'],
    ['    x-swarmnet: {health_check: {timeout: 0s}}\n', 'services.web.x-swarmnet.health_check.timeout: must be from 1 to 86400000 (got 0)'],
    ['    x-swarmnet: {health_check: {interval: 25h}}\n', 'services.web.x-swarmnet.health_check.interval: must be from 1 to 86400000 (got 90000000)'],
    ['    x-swarmnet: {health_check: {retries: 1.5}}\n', 'services.web.x-swarmnet.health_check.retries: must be a whole number'],
    ['    x-swarmnet: {health_check: {retries: 0}}\n', 'services.web.x-swarmnet.health_check.retries: must be from 1 to 100 (got 0)'],
    ['    x-swarmnet: {schedular: rr}\n', 'services.web.x-swarmnet.schedular: unknown key (not in the compose file format)'],
    ['    x-swarmnet: {x-mine: 1}\n', 'services.web.x-swarmnet.x-mine: unknown key (not in the compose file format)'],
    ['    x-swarmnet: {health_check: {every: 5s}}\n', 'services.web.x-swarmnet.health_check.every: unknown key (not in the compose file format)'],
    ['    deploy: {endpoint_mode: round-robin}\n', 'services.web.deploy.endpoint_mode: must be one of vip, dnsrr (got "round-robin")'],
    ['    networks: {front: {ipv4_address: 10.0.0.256}}\n', 'services.web.networks.front.ipv4_address: "10.0.0.256" is not an IPv4 address'],
    ['    networks: {front: {aliases: "www"}}\n', 'services.web.networks.front.aliases: must be a list'],
    ['    networks: {front: [www]}\n', 'services.web.networks.front: must be a mapping (aliases:, ipv4_address:) or empty'],
    ['    networks: [{front: {}}]\n', 'services.web.networks[0]: must be a network name'],
    ['    networks: front\n', 'services.web.networks: must be a list of network names or a mapping'],
    ['    labels: {a: [1]}\n', 'services.web.labels.a: a label value must be a string'],
    ['    labels: ["=x"]\n', 'services.web.labels[0]: a label needs a key ("key=value")'],
  ];
  for (const [body, want] of cases) t.equal(loadError(t, `services:\n  web:\n${body}${NETS}`), `compose.yml: ${want}`, body);
  t.equal(loadError(t, 'services:\n  web:\n'), 'compose.yml: services.web: must be a mapping');
  t.equal(loadError(t, 'services:\n  web:\n    networks: {front: {aliases: ["bad alias"]}}\n' + NETS), 'compose.yml: services.web.networks.front.aliases[0]: "bad alias" is not a valid alias (one DNS label: letters, digits, \'-\' and \'_\', at most 63, starting with a letter or digit)');
  t.match(loadError(t, 'services:\n  web.v2: {}\n'), /^compose\.yml: services\.web\.v2: /, "a key docker allows but DNS does not: the agent's schema names it");
});
