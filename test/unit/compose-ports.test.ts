/** `ports:` in the short and the long syntax, their errors, and a published port used twice in a stack. */
import t from 'tap';
import type { PortSpec } from '../../src/api/index.js';
import { load, loadError, service } from '../fixtures/compose/files.js';

const ports = (items: string) => `services:\n  web:\n    ports:\n${items}`;
const tcp = (target: number, published?: number, mode: PortSpec['mode'] = 'ingress'): PortSpec => ({ protocol: 'tcp', target, ...(published && { published }), mode });
const udp = (target: number, published?: number): PortSpec => ({ protocol: 'udp', target, ...(published && { published }), mode: 'ingress' });

t.test('short syntax', async (t) => {
  const cases: Array<[string, PortSpec[], string?]> = [
    ['80', [tcp(80)], 'target only: the agent picks the published port'],
    ['"80"', [tcp(80)]],
    ['"8080:80"', [tcp(80, 8080)]],
    ['"8080:80/udp"', [udp(80, 8080)]],
    ['"53:53/UDP"', [udp(53, 53)], 'protocol case as docker'],
    ['"8080:80/tcp"', [tcp(80, 8080)]],
    ['"8080-8081:80-81"', [tcp(80, 8080), tcp(81, 8081)], 'a range: one port each'],
    ['"80-82"', [tcp(80), tcp(81), tcp(82)]],
    ['"9000-9001:9000-9001/udp"', [udp(9000, 9000), udp(9001, 9001)]],
    ['"0.0.0.0:8080:80"', [tcp(80, 8080)], 'any address: no note'],
    ['":80"', [tcp(80)]],
  ];
  for (const [item, want, why] of cases) {
    const { spec, warnings } = load(t, { files: { 'compose.yml': ports(`      - ${item}\n`) } });
    t.same(service(spec, 'web').spec.ports, want, why ?? item);
    t.same(warnings, [], `${item}: no warning`);
  }
});

t.test('a host IP is ignored with a note', async (t) => {
  const { spec, warnings } = load(t, { files: { 'compose.yml': ports('      - "127.0.0.1:8080:80"\n      - "[::1]:9090:90"\n      - "127.0.0.1::70"\n      - {target: 60, published: 6060, host_ip: 10.0.0.1}\n') } });
  t.same(service(spec, 'web').spec.ports, [tcp(80, 8080), tcp(90, 9090), tcp(70), tcp(60, 6060)]);
  t.same(warnings, ['ignored (not supported by swarmnet): services.web.ports[0] (host IP 127.0.0.1), services.web.ports[1] (host IP ::1), services.web.ports[2] (host IP 127.0.0.1), services.web.ports[3] (host IP 10.0.0.1)']);
});

t.test('long syntax', async (t) => {
  const cases: Array<[string, PortSpec[]]> = [
    ['{target: 80}', [tcp(80)]],
    ['{target: 80, published: 8080}', [tcp(80, 8080)]],
    ['{target: "80", published: "8080"}', [tcp(80, 8080)]],
    ['{target: 53, published: 53, protocol: udp}', [udp(53, 53)]],
    ['{target: 80, published: 8080, mode: host}', [tcp(80, 8080, 'host')]],
    ['{target: 80, published: 8080, protocol: tcp, mode: ingress, name: web, app_protocol: http, x-note: kept out}', [tcp(80, 8080)]],
  ];
  for (const [item, want] of cases) t.same(service(load(t, { files: { 'compose.yml': ports(`      - ${item}\n`) } }).spec, 'web').spec.ports, want, item);
  const { warnings } = load(t, { files: { 'compose.yml': ports('      - {target: 80, name: web, app_protocol: http}\n') } });
  t.same(warnings, ['ignored (not supported by swarmnet): services.web.ports[0].name, services.web.ports[0].app_protocol']);
});

t.test('errors at the item', async (t) => {
  const cases: Array<[string, string]> = [
    ['"70000:80"', 'published port 70000 is out of range (1-65535)'],
    ['"8080:0"', 'target port 0 is out of range (1-65535)'],
    ['{target: 80, published: 70000}', 'published port 70000 is out of range (1-65535)'],
    ['{target: 99999}', 'target port 99999 is out of range (1-65535)'],
    ['"80/sctp"', 'protocol sctp is not supported (tcp or udp)'],
    ['{target: 80, protocol: sctp}', 'protocol sctp is not supported (tcp or udp)'],
    ['"80/icmp"', 'protocol "icmp" is not one of tcp, udp'],
    ['{target: 80, mode: global}', 'mode "global" is not one of ingress, host'],
    ['"http"', 'target port "http" is not a number'],
    ['"8080:80:80:80"', '"8080:80:80:80" is not a port ([[IP:]PUBLISHED:]TARGET[/tcp|udp]): 8080:80 is not an IP address'],
    ['"a.b.c.d:80:80"', '"a.b.c.d:80:80" is not a port ([[IP:]PUBLISHED:]TARGET[/tcp|udp]): a.b.c.d is not an IP address'],
    ['"8080-8082:80-81"', '"8080-8082:80-81": the published range and the target range must have the same length'],
    ['"8080-8081:80"', '"8080-8081:80": the published range and the target range must have the same length'],
    ['"81-80"', 'target port range 81-80 is backwards'],
    ['"1000-2000"', 'target port range 1000-2000 has 1001 ports (a service has at most 64)'],
    ['{published: 80}', 'target is required'],
    ['{target: 80, published: "8080-8081"}', 'published port range 8080-8081 is not supported: one port per item (or the short syntax "8080-8081:80-81")'],
    ['{target: [80]}', 'target must be a port number'],
    ['80.5', 'target port "80.5" is not a number'],
    ['[80]', 'must be [[IP:]PUBLISHED:]TARGET[/tcp|udp] or a mapping (target:, published:...)'],
  ];
  for (const [item, problem] of cases) t.equal(loadError(t, ports(`      - "80"\n      - ${item}\n`)), `compose.yml: services.web.ports[1]: ${problem}`, item);
  t.equal(loadError(t, 'services:\n  web:\n    ports: "80:80"\n'), 'compose.yml: services.web.ports: must be a list');
  t.equal(loadError(t, ports('      - {target: 80, hostip: x}\n')), 'compose.yml: services.web.ports[0].hostip: unknown key (not in the compose file format)');
});

t.test('a published port used twice in the stack: an error at the second', async (t) => {
  t.equal(
    loadError(t, 'services:\n  web:\n    ports: ["8080:80"]\n  api:\n    ports: ["81", {target: 81, published: 8080}]\n'),
    'compose.yml: services.api.ports[1]: published port 8080/tcp is already used by services.web.ports[0]',
  );
  t.equal(loadError(t, ports('      - "8080:80"\n      - "8079-8080:78-79/tcp"\n')), 'compose.yml: services.web.ports[1]: published port 8080/tcp is already used by services.web.ports[0]');
  t.equal(loadError(t, ports('      - "8080:80"\n      - "8080:81/tcp"\n')), 'compose.yml: services.web.ports[1]: published port 8080/tcp is already used by services.web.ports[0]');
  const { spec } = load(t, { files: { 'compose.yml': 'services:\n  web:\n    ports: ["53:53/tcp", "53:53/udp", "80", "80"]\n  api:\n    ports: ["80"]\n' } });
  t.same(service(spec, 'web').spec.ports, [tcp(53, 53), udp(53, 53), tcp(80)], 'tcp and udp are distinct; identical items are one (compose unicity); auto ports never clash');
  t.same(service(spec, 'web').portSources.map((s) => s.path), ['services.web.ports[0]', 'services.web.ports[1]', 'services.web.ports[3]']);
});

t.test('a range shares its item as the source of each port', async (t) => {
  const { spec } = load(t, { files: { 'compose.yml': ports('      - "8000:80"\n      - "9000-9002:90-92"\n') } });
  t.same(service(spec, 'web').portSources.map((s) => s.path), ['services.web.ports[0]', 'services.web.ports[1]', 'services.web.ports[1]', 'services.web.ports[1]']);
});
