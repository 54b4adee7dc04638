/**
 * swarmnet_backend_connect_duration_seconds on both TCP data paths: the native relay
 * (connects timed in C, counted per thread-shared backend with relaxed atomics) and the
 * JS relay (--no-native-relay). Real agents, real backends, real clients: every connect
 * (established or refused) is counted once on its task, the buckets are cumulative up to
 * +Inf = _count, and a removed task's series are gone.
 */
import t from 'tap';
import { loopbackNet, metricValue, startAgent, startBackends } from '../helpers/procs.js';
import { tcpRequest } from '../helpers/net.js';
import { CONNECT_BUCKETS_S } from '../../src/mesh/constants.js';

const NAME = 'swarmnet_backend_connect_duration_seconds';
const ip = loopbackNet();
const bip = ip(2);
await startBackends(t, [`h1@${bip}:9611`]);

interface Series {
  buckets: Array<[string, number]>;
  sum: number;
  count: number;
}

/** The histogram's lines for one task: buckets in the order served, sum and count. */
function histogram(text: string, task: string): Series | undefined {
  const mine = text.split('\n').filter((l) => l.startsWith(NAME) && l.includes(`task="${task}"`));
  if (!mine.length) return undefined;
  const buckets = mine.filter((l) => l.startsWith(`${NAME}_bucket{`)).map((l): [string, number] => [/le="([^"]+)"/.exec(l)![1]!, Number(l.split(' ').pop())]);
  const value = (suffix: string) => Number(mine.find((l) => l.startsWith(`${NAME}_${suffix}{`))!.split(' ').pop());
  return { buckets, sum: value('sum'), count: value('count') };
}

const paths = [
  { path: 'native relay', host: ip(1), args: [] as string[], port: 24601 },
  { path: 'JS relay (--no-native-relay)', host: ip(3), args: ['--no-native-relay'], port: 24602 },
];

for (const p of paths) {
  t.test(`connects are timed per backend on the ${p.path}`, async (t) => {
    const agent = await startAgent(t, { ip: p.host, args: p.args });
    await agent.ok('service', 'create', '--name', 'lat', '--publish', `${p.port}:80`);
    await agent.ok('task', 'add', '--service', 'lat', '--addr', `${bip}:9611`, '--name', 'lat.live');
    await agent.ok('task', 'add', '--service', 'lat', '--addr', `${bip}:9619`, '--name', 'lat.dead'); // nothing listens: refused
    const n = 20;
    for (let i = 0; i < n; i++) t.match(await tcpRequest(agent.ingress, p.port, `q${i}`), /^h1 /);
    const text = await agent.metrics();
    const threads = metricValue(text, 'swarmnet_relay_thread_connections_total', 'thread="0"');
    t.equal(threads !== undefined, p.args.length === 0, 'the path under test is the one serving');

    const live = histogram(text, 'lat.live');
    const dead = histogram(text, 'lat.dead');
    if (!live || !dead) return t.fail(`no histogram for both tasks:\n${text.split('\n').filter((l) => l.startsWith(NAME)).join('\n')}`);
    t.same(live.buckets.map(([le]) => le), [...CONNECT_BUCKETS_S.map(String), '+Inf'], 'every bound, then +Inf');
    for (const s of [live, dead]) {
      t.ok(s.buckets.every(([, v], i) => i === 0 || v >= s.buckets[i - 1]![1]), `cumulative: ${s.buckets.map(([, v]) => v).join(' ')}`);
      t.equal(s.buckets.at(-1)![1], s.count, '+Inf is the count');
      t.ok(s.sum > 0 && s.sum < s.count * 3, `sum ${s.sum} s over ${s.count} connects (each under the 3 s connect timeout)`);
    }
    const labels = `service="lat",protocol="tcp",port="${p.port}",backend="${bip}:9611",task="lat.live"`;
    t.equal(live.count, metricValue(text, 'swarmnet_backend_connections_total', labels), 'one established connect per flow sent to the live task');
    const deadErrors = text.split('\n').filter((l) => l.startsWith('swarmnet_backend_errors_total{') && l.includes('task="lat.dead"'));
    const refused = deadErrors.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    t.ok(dead.count >= 1, `the dead task's refused connects are timed too (${dead.count})`);
    t.equal(dead.count, refused, `one per failed connect: ${deadErrors.join('; ')}`);
    t.equal(metricValue(text, 'swarmnet_backend_retries_total', labels.replace('9611', '9619').replace('lat.live', 'lat.dead')), refused, 'each refused flow moved to the live task, a retry counted on the dead one');
    t.equal(metricValue(text, 'swarmnet_backend_retries_total', labels), 0, 'none moved away from the live task');
    t.equal(live.buckets.at(-2)![1], live.count, 'no loopback connect took over 5 s');

    await agent.ok('task', 'rm', 'lat.dead');
    t.equal(histogram(await agent.metrics(), 'lat.dead'), undefined, "a removed task's series are gone");
  });
}
