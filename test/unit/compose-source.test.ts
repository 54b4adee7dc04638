/** sourceOf: StackSpec fields (as the planner and the agent name them) back to the compose file and path. */
import t from 'tap';
import { sourceOf } from '../../src/stack/compose/index.js';
import { load } from '../fixtures/compose/files.js';

t.test('fields to files and paths', async (t) => {
  const { spec } = load(t, {
    use: ['compose.yml', 'prod.yml'],
    files: {
      'compose.yml': `services:
  web:
    ports: ["80", "8080-8081:80-81"]
    networks:
      front: {aliases: [www]}
      back:
  api:
    labels: [tier=api]
    x-swarmnet:
      scheduler: rr
      health_check: {interval: 5s}
networks:
  front:
    ipam: {config: [{subnet: 10.1.0.0/24}]}
    labels: {team: web}
  back:
`,
      'prod.yml': `services:
  api:
    networks:
      back: {ipv4_address: 10.0.0.5}
    deploy: {endpoint_mode: dnsrr}
    x-swarmnet:
      health_check: {timeout: 1s}
networks:
  back:
    attachable: true
`,
    },
  });
  const cases: Array<[string, string | undefined]> = [
    ['services[0]', 'compose.yml: services.web'],
    ['services[0].name', 'compose.yml: services.web'],
    ['services[0].ports[0]', 'compose.yml: services.web.ports[0]'],
    ['services[0].ports[2].published', 'compose.yml: services.web.ports[1]'],
    ['services[0].ports', 'compose.yml: services.web'],
    ['services[0].networks[0]', 'compose.yml: services.web.networks.front'],
    ['services[0].networks[0].aliases[0]', 'compose.yml: services.web.networks.front.aliases[0]'],
    // The compose key, added as an alias: the attachment.
    ['services[0].networks[0].aliases[1]', 'compose.yml: services.web.networks.front'],
    ['services[0].networks[1].aliases[0]', 'compose.yml: services.web.networks.back'],
    ['services[1].networks[0].ipv4Address', 'prod.yml: services.api.networks.back.ipv4_address'],
    ['services[1].networks[0]', 'prod.yml: services.api.networks.back'],
    ['services[1].endpointMode', 'prod.yml: services.api.deploy.endpoint_mode'],
    ['services[1].lb', 'compose.yml: services.api.x-swarmnet.scheduler'],
    ['services[1].healthCheck.interval', 'compose.yml: services.api.x-swarmnet.health_check.interval'],
    ['services[1].healthCheck.timeout', 'prod.yml: services.api.x-swarmnet.health_check.timeout'],
    ['services[1].healthCheck.retries', 'compose.yml: services.api.x-swarmnet.health_check'],
    ['services[1].labels.tier', 'compose.yml: services.api.labels[0]'],
    ['services[1].labels.com.docker.stack.namespace', 'compose.yml: services.api.labels'],
    ['networks[0].subnet', 'compose.yml: networks.front.ipam.config[0].subnet'],
    ['networks[0].labels.team', 'compose.yml: networks.front.labels.team'],
    ['networks[0].name', 'compose.yml: networks.front'],
    ['networks[0]', 'compose.yml: networks.front'],
    ['networks[1].attachable', 'prod.yml: networks.back.attachable'],
    // Declared empty in compose.yml, given settings by prod.yml: the object is prod.yml's.
    ['networks[1].encrypted', 'prod.yml: networks.back'],
    ['services[9].ports[0]', undefined],
    ['networks[5]', undefined],
    ['ports[0]', undefined],
    ['', undefined],
  ];
  for (const [field, want] of cases) t.equal(sourceOf(spec, field), want, field);
});

t.test('the implicit default network and a service on it', async (t) => {
  const { spec } = load(t, { files: { 'compose.yml': 'services:\n  web: {}\n  api: {}\n' } });
  t.equal(sourceOf(spec, 'networks[0].subnet'), 'compose.yml: services.web', 'the first service that joins it');
  t.equal(sourceOf(spec, 'services[1].networks[0].aliases[0]'), 'compose.yml: services.api');
});
