/**
 * Debian's `prometheus` scrapes a running agent (a cluster of one made with `init`, an
 * encrypted overlay network, the routing mesh with a live and a dead task, DNS with an
 * upstream), and every PromQL expression of the Grafana dashboard (docs/grafana/
 * swarmnet.json) returns data from it: the dashboard shows nothing that does not exist.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology } from '../helpers/netns.js';
import { startAgent, startBackends } from '../helpers/procs.js';
import { startUpstreamDns, digAt } from '../helpers/dns.js';
import { startPrometheus, type PromSample } from '../helpers/prometheus.js';
import { tcpRequest, udpRequest, until } from '../helpers/net.js';
import { DIST } from '../helpers/procs.js';

const DASHBOARD = join(DIST, '..', 'docs', 'grafana', 'swarmnet.json');
const topo = createTopology(t, 1);
const h = topo.hosts[0]!;
await startUpstreamDns(t, topo.gateway);
const agent = await startAgent(t, {
  ip: h.ip,
  spawner: h.spawn,
  overlay: true,
  args: ['--advertise-addr', h.ip, '--metrics-addr', `${h.ip}:9323`, '--dns', `${h.ip}:53`, '--dns-upstream', `${topo.gateway}:53`, '--heartbeat', '1s'],
});
const prom = await startPrometheus(t, { listen: topo.gateway, port: 19090, targets: [`${h.ip}:9323`] });

interface Panel {
  title: string;
  targets?: Array<{ expr: string }>;
}

t.test('every expression of the dashboard returns data from a scraped agent', async (t) => {
  await agent.ok('init');
  await agent.ok('network', 'create', '--opt', 'encrypted', 'encnet');
  await startBackends(t, [`web1@${h.ip}:9401`], h.spawn);
  await agent.ok('service', 'create', '--name', 'web', '--publish', '30401:80');
  await agent.ok('task', 'add', '--service', 'web', '--addr', `${h.ip}:9401`, '--name', 'web.1');
  // A task's address serves its service's first port: UDP gets a service of its own.
  await agent.ok('service', 'create', '--name', 'echo', '--publish', '30402:80/udp');
  await agent.ok('task', 'add', '--service', 'echo', '--addr', `${h.ip}:9401`, '--name', 'echo.1');
  await agent.ok('task', 'add', '--service', 'web', '--addr', `${h.ip}:9409`, '--name', 'web.dead'); // nothing listens: errors, retries
  // In a cluster (after init) writes are applied asynchronously: wait until both ports answer.
  const probe = async () => [await tcpRequest(h.ip, 30401, 'first').catch((e: Error) => e.message), await udpRequest(h.ip, 30402, 'first', 1000).catch((e: Error) => e.message)];
  await until('the published ports answer', async () => (await probe()).every((r) => r.startsWith('web1 ')), 20000, async () => `${JSON.stringify(await probe())} ${await agent.ok('service', 'ps', 'web')} ${JSON.stringify((await agent.request('GET', '/v1/info')).text)}`);
  const dig = digAt(h.ip);
  // Traffic of every kind, twice, so rates have two scrapes to work on.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 8; i++) t.match(await tcpRequest(h.ip, 30401, `hi ${i}`), /^web1 /);
    t.match(await udpRequest(h.ip, 30402, 'ping'), /^web1 ping/);
    await dig.dig('web');
    await dig.dig('web', 'AAAA');
    t.equal(await dig.status(`nothing-${round}.example.invalid`), 'NXDOMAIN', 'forwarded to the upstream');
    t.same(await dig.short('example.test'), ['192.0.2.1'], 'answered by the upstream');
    await new Promise((r) => setTimeout(r, 2500));
  }
  await until('prometheus scraped the agent', async () => (await prom.targets()).some((x) => x.health === 'up'), 20000, async () => JSON.stringify(await prom.targets()));

  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title, expr: x.expr })));
  t.ok(exprs.length >= 20, `${exprs.length} expressions`);
  t.ok(exprs.some((x) => x.expr.includes('swarmnet_backend_connect_duration_seconds_bucket')), 'the dashboard has the connect-latency panel');
  // A quantile over a window without observations is NaN: a series, but no data to draw.
  const hasData = (expr: string, got: PromSample[]) => got.length > 0 && (!expr.startsWith('histogram_quantile') || got.some((s) => Number.isFinite(Number(s.value[1]))));
  for (const { panel, expr } of exprs) {
    let got = await prom.query(expr);
    // A histogram quantile or a rate needs two scrapes with the samples in them.
    if (!hasData(expr, got)) {
      await until(`data for ${expr}`, async () => hasData(expr, (got = await prom.query(expr))), 15000).catch(() => undefined);
    }
    t.ok(hasData(expr, got), `${panel}: ${expr} -> ${got.length} series${got[0] ? ` (${got[0].value[1]})` : ''}`);
  }
  const p99 = await prom.query('histogram_quantile(0.99, sum by (service, le) (rate(swarmnet_backend_connect_duration_seconds_bucket[5m])))');
  const web = Number(p99.find((s) => s.metric.service === 'web')?.value[1]);
  t.ok(web > 0 && web < 3, `connect p99 of service web: ${web} s, under the connect timeout (the dead task's refused connects included)`);
});

// Issue 14, item 1: what an operator must find, each queried from Prometheus.
const REQUIRED = [
  'swarmnet_service_connections_total', // per service rates
  'swarmnet_backend_connections_total', // per backend rates
  'swarmnet_backend_errors_total', // errors
  'swarmnet_service_retries_total', // retries, per service
  'swarmnet_backend_retries_total', // and per backend
  'swarmnet_backend_connect_duration_seconds_bucket', // connect latency histogram
  'swarmnet_dns_queries_total{type!="",rcode!=""}', // DNS by type and rcode
  'swarmnet_vxlan_bytes_total', // overlay bytes
  'swarmnet_vxlan_dropped_total{reason!=""}', // drops by reason
  'swarmnet_esp_dropped_total{reason="bad_icv"}', // crypto failures
  'swarmnet_esp_key_age_seconds', // key ages
  'swarmnet_control_watch_lag_seconds_bucket', // control-plane watch lag
  'swarmnet_node_up', // node liveness
  'swarmnet_node_heartbeat_age_seconds',
];

t.test("every metric issue 14 asks for is scraped, and every name follows Prometheus' conventions", async (t) => {
  for (const name of REQUIRED) t.ok((await prom.query(name)).length > 0, name);
  // https://prometheus.io/docs/practices/naming/: counters end in _total, a unit is a base
  // unit spelled out as the last word (seconds, bytes), gauges do not look like counters.
  // prom-client's process and Node.js metrics (collectDefaultMetrics) are its own names:
  // nodejs_active_handles_total and the like are gauges named like counters.
  const types = [...(await agent.metrics()).matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const).filter(([name]) => !/^swarmnet_(process|nodejs)_/.test(name));
  t.ok(types.length > 50, `${types.length} metrics`);
  for (const [name, type] of types) {
    const problems = [
      !/^swarmnet_[a-z][a-z0-9_]*[a-z0-9]$/.test(name) && 'not snake_case under swarmnet_',
      type === 'counter' && !name.endsWith('_total') && 'a counter without _total',
      type !== 'counter' && name.endsWith('_total') && `a ${type} named like a counter`,
      type === 'histogram' && !/_(seconds|bytes)$/.test(name) && 'a histogram without its unit',
      /_(ms|milliseconds|microseconds|kb|mb|minutes|hours)(_|$)/.test(name) && 'not a base unit',
    ].filter(Boolean);
    t.same(problems, [], `${name} (${type})`);
  }
});
