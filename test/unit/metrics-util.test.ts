/**
 * The scrape-time collectors of src/util/metrics.ts, rendered by a real prom-client
 * registry: counters and gauges follow their source (a series whose source went away is
 * gone), and a histogram counted elsewhere is exposed as the text format wants it.
 */
import t from 'tap';
import { Registry } from 'prom-client';
import { bucketOf, one, readMetrics, registerBucketHistogram, type BucketCounts, type Sample } from '../../src/util/metrics.js';

t.test('counters and gauges are read at scrape time and drop series whose source is gone', async (t) => {
  const registry = new Registry();
  const m = readMetrics(registry);
  let rows: Sample[] = [
    [{ kind: 'a' }, 3],
    [{ kind: 'b' }, 4],
  ];
  let level = 7;
  m.counter('x_things_total', 'things', ['kind'], () => rows);
  m.gauge('x_level', 'level', [], () => one(level));
  let text = await registry.metrics();
  t.match(text, /^x_things_total\{kind="a"\} 3$/m);
  t.match(text, /^x_things_total\{kind="b"\} 4$/m);
  t.match(text, /# TYPE x_things_total counter/);
  t.match(text, /^x_level 7$/m);
  rows = [[{ kind: 'a' }, 5]];
  level = 2;
  text = await registry.metrics();
  t.match(text, /^x_things_total\{kind="a"\} 5$/m);
  t.notMatch(text, /kind="b"/, 'the removed source has no series');
  t.match(text, /^x_level 2$/m);
});

t.test('a histogram counted elsewhere: cumulative buckets, +Inf, sum and count', async (t) => {
  const registry = new Registry();
  let series: BucketCounts[] = [
    { labels: { task: 'a' }, counts: [2, 0, 3, 1], sum: 4.5 },
    { labels: { task: 'b' }, counts: [0, 0, 0, 0], sum: 0 },
  ];
  registerBucketHistogram(registry, { name: 'x_wait_seconds', help: 'wait', labelNames: ['task'], buckets: [0.1, 1, 10], read: () => series });
  let text = await registry.metrics();
  t.match(text, /# TYPE x_wait_seconds histogram/);
  const lines = (task: string) => text.split('\n').filter((l) => l.includes(`task="${task}"`));
  t.same(lines('a'), [
    'x_wait_seconds_bucket{task="a",le="0.1"} 2',
    'x_wait_seconds_bucket{task="a",le="1"} 2',
    'x_wait_seconds_bucket{task="a",le="10"} 5',
    'x_wait_seconds_bucket{task="a",le="+Inf"} 6',
    'x_wait_seconds_sum{task="a"} 4.5',
    'x_wait_seconds_count{task="a"} 6',
  ]);
  t.equal(lines('b').length, 6, 'a series without observations still has every bucket');
  series = [series[0]!];
  text = await registry.metrics();
  t.same(lines('b'), [], 'a series whose source is gone disappears');
  t.equal((await registry.getMetricsAsJSON()).find((x) => x.name === 'x_wait_seconds')?.values.length, 6, 'JSON too');
});

t.test('bounds must ascend and le is reserved', async (t) => {
  const registry = new Registry();
  t.throws(() => registerBucketHistogram(registry, { name: 'x_a', help: 'a', labelNames: [], buckets: [1, 1], read: () => [] }), RangeError);
  t.throws(() => registerBucketHistogram(registry, { name: 'x_b', help: 'b', labelNames: ['le'], buckets: [1], read: () => [] }), RangeError);
});

t.test('bucketOf: a value goes to the first bound at or above it, past them all to the last bucket', async (t) => {
  const bounds = [0.001, 0.01, 0.1];
  t.equal(bucketOf(bounds, 0), 0);
  t.equal(bucketOf(bounds, 0.001), 0, 'on a bound: that bound (le)');
  t.equal(bucketOf(bounds, 0.0011), 1);
  t.equal(bucketOf(bounds, 0.1), 2);
  t.equal(bucketOf(bounds, 5), 3, 'above every bound');
});
