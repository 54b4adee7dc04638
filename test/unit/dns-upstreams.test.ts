import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseUpstreams, systemUpstreams } from '../../src/dns/upstreams.js';

const table: Array<[string, unknown]> = [
  ['10.0.0.1', [{ host: '10.0.0.1', port: 53 }]],
  ['10.0.0.1:5353, 10.0.0.2', [{ host: '10.0.0.1', port: 5353 }, { host: '10.0.0.2', port: 53 }]],
  ['10.0.0.1:0', undefined],
  ['10.0.0.1:70000', undefined],
  ['dns.example', undefined],
  ['10.0.0.256', undefined],
];

t.test('--dns-upstream parsing', async (t) => {
  for (const [text, want] of table) t.same(parseUpstreams(text), want, text);
});

t.test('resolv.conf: IPv4 nameservers, never the agent itself', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-resolv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'resolv.conf');
  writeFileSync(file, '# comment\nsearch example\nnameserver 10.1.1.1\nnameserver ::1\nnameserver 127.0.0.11\noptions ndots:0\n');
  t.same(systemUpstreams({ host: '127.0.0.11', port: 53 }, file), [{ host: '10.1.1.1', port: 53 }]);
  t.same(systemUpstreams({ host: '127.0.0.11', port: 5353 }, file), [{ host: '10.1.1.1', port: 53 }, { host: '127.0.0.11', port: 53 }], 'another port is not us');
  t.same(systemUpstreams({ host: '127.0.0.11', port: 53 }, join(dir, 'missing')), []);
});
