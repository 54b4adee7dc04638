/**
 * Micro-benchmarks (benny) of the data-path pieces, each suite against a named peer:
 * schedulers against plain round robin, the connection table against a bare Map.
 */
import b from 'benny';
import { Backend, createScheduler } from '../src/mesh/index.js';
import { ConnTable, type ConnEntry } from '../src/mesh/conntable.js';
import { SCHEDULERS } from '../src/control/constants.js';

export async function microBench(): Promise<void> {
  const backends = Array.from({ length: 16 }, (_, i) => new Backend({ id: `task${i}`, name: `t${i}`, host: '10.0.0.1', port: 80, weight: 1 + (i % 3), node: 'n', eligible: true }));
  const flows = Array.from({ length: 4096 }, (_, i) => ({ srcIp: `10.1.${i >> 8}.${i & 255}`, srcPort: 30000 + i }));
  const usable = () => true;
  await b.suite(
    'scheduler pick(), 16 backends (peer: rr)',
    ...SCHEDULERS.map((name) => {
      const s = createScheduler(name);
      s.rebuild(backends);
      let i = 0;
      return b.add(name, () => {
        s.pick(flows[i++ & 4095]!, usable);
      });
    }),
    b.cycle(),
    b.complete(),
  );

  const table = new ConnTable(3_600_000);
  const plain = new Map<string, ConnEntry>();
  const entry = (key: string): ConnEntry => ({ key, proto: 'tcp', client: key, local: 'l', service: 's', backend: undefined, state: 'ESTABLISHED', created: 0, last: 0, idleTimeoutMs: 1000, bytesIn: 0, bytesOut: 0, expire() {} });
  let n = 0;
  await b.suite(
    'connection table add+touch+remove (peer: bare Map)',
    b.add('bare Map', () => {
      const e = entry(ConnTable.key('tcp', '10.0.0.1', n++ & 65535, '10.0.0.2', 80));
      plain.set(e.key, e);
      e.last = 1;
      plain.delete(e.key);
    }),
    b.add('ConnTable', () => {
      const e = entry(ConnTable.key('tcp', '10.0.0.1', n++ & 65535, '10.0.0.2', 80));
      table.add(e);
      e.last = table.clock;
      table.remove(e);
    }),
    b.cycle(),
    b.complete(),
  );
  table.close();
}
