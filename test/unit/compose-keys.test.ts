/** Known keys: unknown ones are errors, refused ones too, ignored ones named in one line; docs/stack.md lists every one. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { COMPOSE_KEYS, type Rule } from '../../src/stack/compose/keys.js';
import { load, loadError } from '../fixtures/compose/files.js';

t.test('unknown keys are errors at their path, at every level', async (t) => {
  const cases: Array<[string, string]> = [
    ['servics: {}\n', 'servics'],
    ['services:\n  web:\n    imagee: x\n', 'services.web.imagee'],
    ['services:\n  web:\n    deploy: {replica: 2}\n', 'services.web.deploy.replica'],
    ['services:\n  web:\n    ports: [{target: 80, publish: 8080}]\n', 'services.web.ports[0].publish'],
    ['services:\n  web:\n    networks: {n: {alias: [x]}}\nnetworks: {n: }\n', 'services.web.networks.n.alias'],
    ['networks:\n  n:\n    ipam: {config: [{subnett: 10.0.0.0/24}]}\n', 'networks.n.ipam.config[0].subnett'],
    ['networks:\n  n:\n    ipam: {drivr: x}\n', 'networks.n.ipam.drivr'],
    ['networks:\n  n:\n    external: {nam: x}\n', 'networks.n.external.nam'],
  ];
  for (const [text, path] of cases) t.equal(loadError(t, text), `compose.yml: ${path}: unknown key (not in the compose file format)`, path);
});

t.test('refused keys', async (t) => {
  t.equal(loadError(t, 'services:\n  web:\n    extends: {service: base}\n'), 'compose.yml: services.web.extends: extends is not supported by stack deploy (docker refuses it too): write the keys into the service');
  t.equal(loadError(t, 'include:\n  - other.yml\nservices: {}\n'), 'compose.yml: include: include is not supported by stack deploy: give the files with -c instead');
});

t.test('x- extension keys are skipped silently where compose allows them; x-swarmnet only on services', async (t) => {
  const { spec, warnings } = load(t, {
    files: {
      'compose.yml': `x-defaults: &d {image: nginx}
services:
  web:
    x-notes: anything
    ports: [{target: 80, x-why: docs}]
    networks: {n: {x-meta: 1}}
    deploy: {x-team: a}
networks:
  n:
    x-owner: ops
    ipam: {x-a: 1, config: [{subnet: 10.5.0.0/24, x-b: 2}]}
`,
    },
  });
  t.same(warnings, []);
  t.equal(spec.services.length, 1);
  t.equal(loadError(t, 'x-swarmnet: {scheduler: rr}\n'), 'compose.yml: x-swarmnet: x-swarmnet is read on services only (services.NAME.x-swarmnet)');
  t.equal(loadError(t, 'services:\n  web:\n    deploy: {x-swarmnet: {}}\n'), 'compose.yml: services.web.deploy.x-swarmnet: x-swarmnet is read on services only (services.NAME.x-swarmnet)');
});

t.test('ignored keys: one line for what is not networking, one for networking swarmnet does not do, build as docker says', async (t) => {
  const { warnings } = load(t, {
    files: {
      'compose.yml': `name: myproject
services:
  web:
    build: ./web
    image: web
    container_name: web1
    network_mode: host
    dns: [1.1.1.1]
    extra_hosts: ["db:10.0.0.9"]
    expose: ["80"]
    hostname: web
    networks:
      n:
        ipv6_address: "fd00::5"
        link_local_ips: [169.254.0.5]
        mac_address: 02:42:ac:11:00:02
        priority: 10
    deploy:
      mode: global
      resources: {limits: {memory: 1G}}
  api:
    build: {context: ./api}
networks:
  n:
volumes: {data: {}}
configs: {c: {file: ./c}}
secrets: {s: {file: ./s}}
`,
    },
  });
  t.same(warnings, [
    'build is not supported by stack deploy, ignored: services.web.build, services.api.build',
    'ignored (not networking): name, services.web.image, services.web.container_name, services.web.hostname, services.web.deploy.mode, services.web.deploy.resources, volumes, configs, secrets',
    'ignored (not supported by swarmnet): services.web.network_mode, services.web.dns, services.web.extra_hosts, services.web.expose, services.web.networks.n.ipv6_address, services.web.networks.n.link_local_ips, services.web.networks.n.mac_address, services.web.networks.n.priority',
  ]);
});

/** Every key path of the table: `services.*.ports[].target`. */
function keyPaths(rule: Rule, prefix: string, out: Array<[string, Rule]>): Array<[string, Rule]> {
  if (prefix && !prefix.endsWith('*') && !prefix.endsWith('[]')) out.push([prefix, rule]);
  if (typeof rule === 'string' || 'refused' in rule) return out;
  for (const [k, r] of Object.entries(rule.keys ?? {})) keyPaths(r, prefix ? `${prefix}.${k}` : k, out);
  if (rule.entries) keyPaths(rule.entries, `${prefix}.*`, out);
  if (rule.items) keyPaths(rule.items, `${prefix}[]`, out);
  return out;
}

const STATUS: Record<string, string> = { used: 'used', ignored: 'ignored', unsupported: 'not supported', build: 'ignored' };

t.test('docs/stack.md has a row for every key, with what swarmnet does', async (t) => {
  const docs = readFileSync(fileURLToPath(new URL('../../../docs/stack.md', import.meta.url)), 'utf8');
  const rows = new Map<string, string>();
  for (const m of docs.matchAll(/^\| `([^`]+)` \| ([^|]+?) \|/gm)) rows.set(m[1]!, m[2]!.trim());
  const paths = keyPaths(COMPOSE_KEYS, '', []);
  t.ok(paths.length > 150, `${paths.length} keys`);
  for (const [path, rule] of paths) {
    const want = typeof rule === 'string' ? STATUS[rule] : 'refused' in rule ? 'refused' : 'used';
    t.equal(rows.get(path)?.replace(/\*/g, ''), want, path);
  }
  const known = new Set(paths.map(([p]) => p));
  for (const documented of rows.keys()) t.ok(known.has(documented), `${documented} is a key of the table`);
});
