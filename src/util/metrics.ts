/**
 * Collectors that read plain numbers at scrape time. The data paths (JS and C) bump
 * their own counters and never touch prom-client; a collector resets its metric and
 * sets it from a `read()` of those numbers, so a series whose source went away (a
 * removed task, a stopped engine) disappears at the next scrape: label sets stay bounded.
 */
import { Counter, Gauge, type Metric, type Registry } from 'prom-client';

/** One series: its labels and its value. */
export type Sample = readonly [labels: Record<string, string>, value: number];

/** The value of a metric without labels (`[]` when it has no source now). */
export function one(n: number): Sample[] {
  return [[{}, n]];
}

/** One series per key of `values`, the key as the value of `label`: `by('reason', { short: 1 })`. */
export function by(label: string, values: Record<string, number>): Sample[] {
  return Object.entries(values).map(([key, n]) => [{ [label]: key }, n]);
}

/** Counters and gauges read from `read()` at scrape time, registered on `registry`. */
export interface ReadMetrics {
  counter(name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>): void;
  gauge(name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>): void;
}

export function readMetrics(registry: Registry): ReadMetrics {
  const make = (Kind: typeof Counter | typeof Gauge) => (name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>) => {
    const collect = function (this: Counter | Gauge) {
      this.reset();
      for (const [labels, n] of read()) (this instanceof Counter ? this.inc(labels, n) : this.set(labels, n));
    };
    new Kind({ name, help, labelNames, registers: [registry], collect });
  };
  return { counter: make(Counter), gauge: make(Gauge) };
}

/** One series of a histogram counted elsewhere: per bucket (not cumulative), the last past the highest bound. */
export interface BucketCounts {
  labels: Record<string, string>;
  /** `buckets.length + 1` counts: counts[i] observations <= buckets[i] and > buckets[i-1]; the last, > every bound. */
  counts: ArrayLike<number>;
  /** The sum of the observations, in the histogram's unit. */
  sum: number;
}

/** The bucket of `value` in BucketCounts.counts for ascending `bounds`: the first bound >= value, or bounds.length past them all. */
export function bucketOf(bounds: readonly number[], value: number): number {
  let i = 0;
  while (i < bounds.length && value > bounds[i]!) i++;
  return i;
}

export interface BucketHistogramOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
  /** Upper bounds, ascending (the `le` labels); +Inf is added. */
  buckets: readonly number[];
  read: () => Iterable<BucketCounts>;
}

/**
 * A histogram whose observations were counted into buckets elsewhere (the native relay
 * counts in C): prom-client's Histogram only takes single observations, so this is a
 * metric of its own that the registry renders through `get()`, as the exposition format
 * wants it: `_bucket{le}` cumulative up to `le="+Inf"`, then `_sum` and `_count`
 * (https://prometheus.io/docs/instrumenting/exposition_formats/#histograms-and-summaries).
 */
export function registerBucketHistogram(registry: Registry, o: BucketHistogramOptions): void {
  for (let i = 1; i < o.buckets.length; i++) if (!(o.buckets[i]! > o.buckets[i - 1]!)) throw new RangeError(`${o.name}: buckets must ascend`);
  if (o.labelNames.includes('le')) throw new RangeError(`${o.name}: le is the bucket label`);
  const le = [...o.buckets.map(String), '+Inf'];
  const metric = {
    name: o.name,
    help: o.help,
    type: 'histogram',
    aggregator: 'sum',
    collect: undefined,
    reset() {},
    async get() {
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
      for (const s of o.read()) {
        let cum = 0;
        le.forEach((bound, i) => {
          cum += s.counts[i] ?? 0;
          values.push({ metricName: `${o.name}_bucket`, labels: { ...s.labels, le: bound }, value: cum });
        });
        values.push({ metricName: `${o.name}_sum`, labels: s.labels, value: s.sum });
        values.push({ metricName: `${o.name}_count`, labels: s.labels, value: cum });
      }
      return { name: o.name, help: o.help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  // The registry renders any metric by its get() (prom-client's registry.js); its types
  // only name the four built-in classes, hence the cast.
  registry.registerMetric(metric as unknown as Metric);
}
