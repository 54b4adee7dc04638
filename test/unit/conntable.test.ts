import t from 'tap';
import { ConnTable, type ConnEntry } from '../../src/mesh/conntable.js';

function entry(table: ConnTable, key: string, idle: number, last: number, expired: string[]): ConnEntry {
  const e: ConnEntry = {
    key,
    proto: 'udp',
    client: key,
    local: 'l',
    service: 's',
    backend: undefined,
    state: 'UDP',
    created: 0,
    last,
    idleTimeoutMs: idle,
    bytesIn: 0,
    bytesOut: 0,
    expire: () => {
      expired.push(key);
      table.remove(e);
    },
  };
  table.add(e);
  return e;
}

t.test('idle flows expire; active ones stay', async (t) => {
  const table = new ConnTable(60_000);
  t.teardown(() => table.close());
  const expired: string[] = [];
  entry(table, 'a', 1000, 0, expired);
  const b = entry(table, 'b', 1000, 0, expired);
  entry(table, 'c', 5000, 0, expired);
  b.last = 900;
  table.sweep(1500);
  t.same(expired, ['a']);
  t.equal(table.size, 2);
  table.sweep(1900);
  t.same(expired, ['a', 'b']);
  t.equal(table.clock, 1900, 'sweep advances the coarse clock');
  t.same(table.list().map((e) => e.client), ['c']);
  t.equal(ConnTable.key('tcp', '1.2.3.4', 5, '6.7.8.9', 10), 'tcp 1.2.3.4:5 6.7.8.9:10');
});

t.test('a flow touched since the previous sweep is active, however late this sweep runs', async (t) => {
  const table = new ConnTable(60_000);
  t.teardown(() => table.close());
  const expired: string[] = [];
  table.sweep(1000);
  // Touched after the sweep at 1000: it stores that clock.
  const busy = entry(table, 'busy', 300, table.clock, expired);
  entry(table, 'idle', 300, 500, expired);
  // The event loop was stalled: the next sweep comes 2 s later.
  table.sweep(3000);
  t.same(expired, ['idle'], 'only the flow untouched since the previous sweep expires');
  table.sweep(3400);
  t.same(expired, ['idle', 'busy'], 'untouched for a whole sweep past its timeout, it expires');
  t.equal(busy.last, 1000);
});
