/**
 * The CNI plugin under a real runtime: Debian's podman (CNI backend) on two
 * namespace-hosts whose agents share a NATS cluster with the overlay on. Containers
 * are started with `podman run --network appnet --network-alias web ...`; podman calls
 * swarmnet-cni, which attaches them and registers their tasks. busybox httpd serves
 * each container's name; the containers' busybox wget, dig and test/fixtures/watch.ts in
 * the client's namespace, and the test's own HTTP client (published port) ask.
 *
 *   host1: web-b (web), client (probe); later fixed (probe, named by its list's config)
 *   host2: web-a (web, alias www); later doomed (web, killed without DEL)
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import t, { type Test, type TestOpts } from 'tap';
import type { BuiltPlugins } from '@tapjs/test';
import { createContainer, createTopology, type Host } from '../helpers/netns.js';
import { startNats } from '../helpers/nats.js';
import { killOnTeardown, startHostAgent, DIST, type AgentProc, type CliResult } from '../helpers/procs.js';
import { until } from '../helpers/net.js';
import { startUpstreamDns } from '../helpers/dns.js';
import { pluginDir, PLUGIN_MAIN } from '../helpers/cni.js';
import { IMAGE, startPodman, type Podman } from '../helpers/podman.js';

const WATCH = join(DIST, 'test/fixtures/watch.js');
const topo = createTopology(t, 2);
const [h1, h2] = topo.hosts as [Host, Host];
const nats = await startNats(t, topo.gateway, 4222);
// An upstream that answers NXDOMAIN at once: a name that left the cluster is forwarded there, and must not time out.
await startUpstreamDns(t, topo.gateway);
const agentArgs = ['--dns-upstream', `${topo.gateway}:53`];
const a1 = await startHostAgent(t, h1, { nats: nats.url, nodeId: 'cni1', overlay: true, args: agentArgs });
const a2 = await startHostAgent(t, h2, { nats: nats.url, nodeId: 'cni2', overlay: true, args: agentArgs });

await a1.ok('network', 'create', 'appnet');
const net = (JSON.parse(await a1.ok('network', 'inspect', 'appnet')) as Array<{ subnet: string; gateway: string }>)[0]!;
await a1.ok('service', 'create', '--name', 'web', '--network', 'appnet', '--publish', '30080:8080');
await a1.ok('service', 'create', '--name', 'probe', '--network', 'appnet');
const vip = (JSON.parse(await a1.ok('service', 'inspect', 'web')) as Array<{ networks: Array<{ vip: string }> }>)[0]!.networks[0]!.vip;

/**
 * The configuration lists of docs/cni.md's podman section, with this host's agent socket:
 * `appnet` names the service by the container's --network-alias; `probenet` (same overlay
 * network) names it in the configuration. probenet is added to host1 after the timed stop
 * and rm: podman runs every list's plugin (VERSION) on each command, a node start each.
 */
const appnet = (a: AgentProc) => ({ cniVersion: '1.0.0', name: 'appnet', plugins: [{ type: 'swarmnet-cni', socket: a.api, capabilities: { aliases: true } }] });
const probenet = (a: AgentProc) => ({ cniVersion: '1.0.0', name: 'probenet', plugins: [{ type: 'swarmnet-cni', network: 'appnet', service: 'probe', socket: a.api, capabilities: { aliases: true } }] });
const plugins = pluginDir(t);
const pm1 = await startPodman(t, h1, { pluginDirs: [plugins], networks: [appnet(a1)] });
const pm2 = await startPodman(t, h2, { pluginDirs: [plugins], networks: [appnet(a2)] });

/** busybox httpd answering its container's name; exits on SIGTERM, as `podman stop` asks. */
const webCmd = (name: string) => [IMAGE, 'sh', '-c', `echo ${name} > /www/index.html; httpd -f -p 8080 -h /www & trap "exit 0" TERM; wait`];
const idleCmd = [IMAGE, 'sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1 & wait; done'];

interface TaskJson {
  id: string;
  name: string;
  service: string;
  netns?: string;
  container?: { id: string; ifName: string };
  addresses: Array<{ ip: string; aliases?: string[] }>;
}
const tasks = async () => JSON.parse(await a1.ok('task', 'ls', '--format', 'json')) as TaskJson[];
const taskNamed = async (name: string) => (await tasks()).find((x) => x.name === name);

const run = (file: string, args: string[], o: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}) =>
  new Promise<CliResult>((resolve) => {
    const child = execFile(file, args, { timeout: o.timeoutMs ?? 10000, env: { ...process.env, ...o.env } }, (err, stdout, stderr) => {
      // Killed at the timeout: 124, as timeout(1) says, never mistaken for the command's own failure.
      resolve({ code: err ? (err.killed ? 124 : typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin!.on('error', () => undefined); // a command that reads nothing may exit first (EPIPE)
    child.stdin!.end(o.input ?? '');
  });
/** dig from inside a container's network namespace, at the overlay's DNS (the gateway). */
const digIn = async (sandbox: string, name: string) =>
  (await run('nsenter', [`--net=${sandbox}`, 'dig', `@${net.gateway}`, '+short', '+time=1', '+tries=1', name])).stdout
    .split('\n')
    .filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)) // answers only: a name gone is forwarded upstream, which fails
    .sort();
/** `n` GETs from inside the container itself (its resolv.conf, its wget): the bodies. */
const getFrom = async (pm: Podman, container: string, host: string, n: number) => {
  const r = await pm.exec(container, ['sh', '-c', `for i in $(seq ${n}); do timeout 3 wget -q -O - http://${host}:8080/ || echo FAILED; done`], 60000);
  return r.stdout.trim().split('\n');
};
const published = async (host: string) => {
  try {
    return (await (await fetch(`http://${host}:30080/`, { signal: AbortSignal.timeout(3000) })).text()).trim();
  } catch {
    return 'FAILED';
  }
};
/** Milliseconds from `t0` until `fn` holds (polled every 50 ms), or Infinity after `ms`. */
const elapsedUntil = async (t0: number, fn: () => Promise<boolean>, ms = 10000) => {
  while (Date.now() - t0 < ms) {
    if (await fn()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  return Infinity;
};

const webA = await pm2.run('web-a', ['--network', 'appnet', '--network-alias', 'web', '--network-alias', 'www', ...webCmd('web-a')]);
await pm1.run('web-b', ['--network', 'appnet', '--network-alias', 'web', ...webCmd('web-b')]);
await pm1.run('client', ['--network', 'appnet', '--network-alias', 'probe', ...idleCmd]);
const client = (await pm1.inspect('client')).NetworkSettings.SandboxKey;

t.test('podman run registers the task: the service by alias, the container name, the other aliases', async (t) => {
  const [a, b, c] = [await taskNamed('web-a'), await taskNamed('web-b'), await taskNamed('client')];
  t.same([a?.service, b?.service, c?.service].map(Boolean), [true, true, true], 'a task per container, named by podman (K8S_POD_NAME)');
  const svc = JSON.parse(await a1.ok('service', 'ls', '--format', 'json')) as Array<{ id: string; name: string }>;
  const nameOf = (id?: string) => svc.find((s) => s.id === id || s.name === id)?.name;
  t.same([nameOf(a!.service), nameOf(b!.service), nameOf(c!.service)], ['web', 'web', 'probe'], 'the --network-alias that is a service names it');
  t.same(a!.container, { id: webA, ifName: 'eth0', config: 'appnet' }, 'the attachment is the container id, CNI_IFNAME and the configuration');
  t.ok(a!.addresses[0]!.aliases?.includes('www'), 'the other --network-alias is a task alias');
  t.notOk(a!.addresses[0]!.aliases?.includes('web'), "the service's own name is not repeated as an alias");
});

t.test("the ADD result podman stored, field by field against the spec and the container's interface", async (t) => {
  const info = await pm2.inspect('web-a');
  const sandbox = info.NetworkSettings.SandboxKey;
  const result = pm2.storedResult('appnet', webA) as Record<string, unknown>;
  t.ok(result, 'libcni cached the result');
  const task = (await taskNamed('web-a'))!;
  const link = (JSON.parse(execFileSync('nsenter', [`--net=${sandbox}`, 'ip', '-j', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' })) as Array<{ address: string; addr_info: Array<{ family: string; local: string; prefixlen: number }> }>)[0]!;
  const v4 = link.addr_info.find((a) => a.family === 'inet')!;
  t.equal(v4.local, task.addresses[0]!.ip, "the container's eth0 has the task's address");
  t.equal(result.cniVersion, '1.0.0', 'cniVersion: the configuration list version');
  t.same(result.interfaces, [{ name: 'eth0', mac: link.address, sandbox }], 'interfaces: CNI_IFNAME, its real MAC, the netns path');
  t.same(result.ips, [{ address: `${v4.local}/${v4.prefixlen}`, gateway: net.gateway, interface: 0 }], "ips: the interface's address and prefix, the gateway, interfaces[0]");
  t.equal(`${v4.local}/${v4.prefixlen}`.split('/')[1], net.subnet.split('/')[1], "the network's prefix length");
  t.same(result.routes, [{ dst: '0.0.0.0/0', gw: net.gateway }], 'routes: the default route the agent installed');
  t.match(execFileSync('nsenter', [`--net=${sandbox}`, 'ip', 'route', 'show', 'default'], { encoding: 'utf8' }), `default via ${net.gateway} dev eth0`);
  t.same(result.dns, { nameservers: [net.gateway] }, "dns: the gateway, the overlay's resolver");
  t.match((await pm2.exec('web-a', ['cat', '/etc/resolv.conf'])).stdout, new RegExp(`^nameserver ${net.gateway.replace(/\./g, '\\.')}$`, 'm'), "podman put it in the container's resolv.conf");
  const seen = info.NetworkSettings.Networks?.appnet;
  t.same([seen?.IPAddress, seen?.IPPrefixLen, seen?.Gateway, seen?.MacAddress], [v4.local, v4.prefixlen, net.gateway, link.address], 'podman inspect shows the same attachment');
  // CHECK, as libcni sends it: the plugin's config with the list's name and version, and the result as prevResult.
  const check = await run(plugins + '/swarmnet-cni', [], {
    input: JSON.stringify({ cniVersion: '1.0.0', name: 'appnet', type: 'swarmnet-cni', socket: a2.api, capabilities: { aliases: true }, prevResult: result }),
    env: { CNI_COMMAND: 'CHECK', CNI_CONTAINERID: webA, CNI_NETNS: sandbox, CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-a', CNI_PATH: plugins },
  });
  t.same([check.code, check.stdout], [0, ''], `CHECK of the running container passes ${check.stdout}`);
});

t.test('from a container on host1: name, alias, task name and VIP reach the container on host2', async (t) => {
  const a = (await taskNamed('web-a'))!.addresses[0]!.ip;
  t.same(await digIn(client, 'www'), [a], 'the alias www -> web-a');
  t.same(await digIn(client, 'web'), [vip], 'the service name -> its VIP');
  t.same(await digIn(client, webA.slice(0, 12)), [a], "podman's own alias, the short container id -> web-a");
  t.same(await getFrom(pm1, 'client', 'www', 2), ['web-a', 'web-a'], 'wget www:8080 (host1 -> host2)');
  t.same(await getFrom(pm1, 'client', 'web-a', 1), ['web-a'], 'wget web-a:8080, the task name');
  const byName = await getFrom(pm1, 'client', 'web', 12);
  t.same([...new Set(byName)].sort(), ['web-a', 'web-b'], 'wget web:8080 balances over host2 and host1');
  const byVip = await getFrom(pm1, 'client', vip, 12);
  t.same([...new Set(byVip)].sort(), ['web-a', 'web-b'], 'wget VIP:8080 too');
  t.same(await getFrom(pm2, 'web-a', 'web-b', 1), ['web-b'], 'and host2 -> host1 by task name');
});

t.test('the published port on either host reaches the containers on both', async (t) => {
  for (const h of [h1, h2]) {
    await until(`${h.ip}:30080 serves`, async () => (await published(h.ip)) !== 'FAILED', 15000);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(await published(h.ip));
    t.same([...seen].sort(), ['web-a', 'web-b'], `${h.ip}:30080`);
  }
});

/**
 * Runs `command` (a podman stop or rm) while the client watches for 4 s (test/fixtures/watch.ts):
 * DNS (tasks.web and the container's other names) and the VIP, every 50 ms. Out of DNS: no
 * answer with the container's address asked after that time; out of rotation: every request
 * sent after it reached `stays`. Both timed from the command's start.
 */
async function leaves(t: Test<BuiltPlugins, TestOpts> & BuiltPlugins, command: () => Promise<void>, gone: { name: string; ip: string; aliases: string[] }, stays: string): Promise<void> {
  const watcher = spawn('nsenter', [`--net=${client}`, process.execPath, WATCH, net.gateway, ['tasks.web', ...gone.aliases].join(','), vip, '8080', '4000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  killOnTeardown(t, watcher);
  let out = '';
  watcher.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => watcher.once('exit', r));
  await until('the watcher is ready', async () => out.startsWith('ready\n'), 5000);
  const t0 = Date.now();
  await command();
  t.comment(`podman took ${Date.now() - t0} ms`);
  await exited;
  const lines = out.trim().split('\n').slice(1).map((l) => l.split(' ')).map(([kind, at, ...rest]) => ({ kind, at: Number(at) - t0, rest }));
  const last = (bad: (x: (typeof lines)[number]) => boolean) => Math.max(0, ...lines.filter(bad).map((x) => x.at));
  const dns = last((x) => x.kind === 'dns' && x.rest.includes(gone.ip));
  const rotation = last((x) => x.kind === 'vip' && x.rest[0] !== stays);
  const after = (kind: string, from: number) => lines.filter((x) => x.kind === kind && x.at > from).length;
  t.ok(lines.some((x) => x.kind === 'dns' && x.rest.includes(gone.ip)), 'the watcher saw it in DNS first');
  t.ok(dns <= 2000 && after('dns', dns) > 0, `out of DNS (tasks.web${gone.aliases.map((x) => ', ' + x).join('')}): last answered ${dns} ms after the command started, then ${after('dns', dns)} answers without it`);
  t.ok(rotation <= 2000 && after('vip', rotation) > 0, `out of the VIP's rotation: the ${after('vip', rotation)} requests sent from ${rotation} ms on all reached ${stays}`);
  t.equal(await taskNamed(gone.name), undefined, 'no task left');
}

t.test('podman stop takes the task out of DNS and rotation within 2 s; podman start brings it back', async (t) => {
  const before = (await taskNamed('web-a'))!;
  t.ok(pm2.storedResult('appnet', webA), 'attached');
  await leaves(t, () => pm2.stop('web-a'), { name: 'web-a', ip: before.addresses[0]!.ip, aliases: ['www'] }, 'web-b');
  t.equal(pm2.storedResult('appnet', webA), undefined, 'podman ran DEL (its cached result is gone)');
  t.notMatch(execFileSync('ip', ['-n', h2.ns, '-o', 'link'], { encoding: 'utf8' }), /swv/, 'no veth left on host2');
  await pm2.ok('start', 'web-a');
  const again = (await taskNamed('web-a'))!;
  t.ok(again, 'started again: ADD registered it anew');
  await until('web-a back in the rotation', async () => (await getFrom(pm1, 'client', vip, 8)).includes('web-a'), 10000);
  t.same((await digIn(client, 'www')), [again.addresses[0]!.ip], 'and in DNS');
});

t.test('podman rm -f takes the task out of DNS and rotation within 2 s', async (t) => {
  const before = (await taskNamed('web-b'))!;
  const id = before.container!.id;
  await leaves(t, () => pm1.rmf('web-b'), { name: 'web-b', ip: before.addresses[0]!.ip, aliases: ['web-b'] }, 'web-a');
  t.equal(pm1.storedResult('appnet', id), undefined, 'podman ran DEL');
  t.same(await getFrom(pm1, 'client', 'web', 4), ['web-a', 'web-a', 'web-a', 'web-a'], 'the service name reaches the remaining container');
});

t.test('a list that names the service in its configuration', async (t) => {
  pm1.network(probenet(a1));
  const id = await pm1.run('fixed', ['--network', 'probenet', ...idleCmd]);
  const task = (await taskNamed('fixed'))!;
  const svc = (JSON.parse(await a1.ok('service', 'inspect', 'probe')) as Array<{ id: string }>)[0]!;
  t.ok(task.service === svc.id || task.service === 'probe', 'a task of probe, without an alias');
  t.same(task.container, { id, ifName: 'eth0', config: 'probenet' });
  t.same(await digIn(client, 'fixed'), [task.addresses[0]!.ip], 'on the swarmnet network appnet: the client resolves it');
  await pm1.rmf('fixed');
  t.equal(await taskNamed('fixed'), undefined, 'rm -f removes it');
});

t.test('a bad configuration: the error JSON, a non-zero exit, nothing stored', async (t) => {
  const count = (await tasks()).length;
  const veths = () => execFileSync('ip', ['-n', h1.ns, '-o', 'link'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('swv')).length;
  const links = veths();
  pm1.network({ cniVersion: '1.0.0', name: 'nonet', plugins: [{ type: 'swarmnet-cni', network: 'no-such-net', service: 'web', socket: a1.api }] });
  pm1.network({ cniVersion: '0.4.0', name: 'oldnet', plugins: [{ type: 'swarmnet-cni', network: 'appnet', service: 'web', socket: a1.api }] });
  // An unsupported version never reaches ADD: libcni compares it with the plugin's VERSION reply when podman loads the list.
  for (const [label, network, alias, msg] of [
    ['unknown network', 'nonet', [], /plugin swarmnet-cni failed: unknown network: no-such-net/],
    ['missing service', 'appnet', ['--network-alias', 'nothing'], /plugin swarmnet-cni failed: no service/],
    ['unsupported cniVersion', 'oldnet', [], /plugin swarmnet-cni does not support config version \\?"0\.4\.0/],
  ] as const) {
    const r = await pm1.cmd(['run', '-d', '--name', 'bad', '--network', network, ...alias, ...idleCmd]);
    t.not(r.code, 0, `podman run on ${label} fails`);
    t.match(r.stderr, msg, `podman reports: ${r.stderr.trim().split('\n').pop()}`);
    t.equal((await pm1.ok('ps', '-q', '--filter', 'name=^bad$')).trim(), '', 'no container running');
    await pm1.ok('rm', '-f', 'bad');
  }
  // The plugin called directly, as a runtime does, for what podman never sends (malformed JSON).
  const ns = createContainer(t, 'cnibad');
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bad0123', CNI_NETNS: ns.path, CNI_IFNAME: 'eth0', CNI_PATH: plugins };
  const conf = (o: object) => JSON.stringify({ cniVersion: '1.0.0', name: 'appnet', type: 'swarmnet-cni', socket: a1.api, ...o });
  for (const [label, input, code] of [
    ['unknown network', conf({ network: 'no-such-net', service: 'web' }), 7],
    ['missing service', conf({}), 7],
    ['unsupported cniVersion', conf({ cniVersion: '0.4.0', service: 'web' }), 1],
    ['malformed JSON', '{"cniVersion": "1.0.0", "name": ', 6],
  ] as const) {
    const r = await run(process.execPath, [PLUGIN_MAIN], { input, env });
    t.ok(r.code !== 0 && r.code !== 124, `${label}: non-zero exit, in time (${r.code})`);
    let reply: { cniVersion?: string; code?: number; msg?: string } = {};
    try {
      reply = JSON.parse(r.stdout) as typeof reply;
    } catch {
      t.fail(`${label}: stdout is not JSON: ${r.stdout}`);
    }
    t.equal(reply.code, code, `${label}: code ${code} (${reply.msg})`);
    t.ok(typeof reply.cniVersion === 'string' && typeof reply.msg === 'string' && reply.msg !== '', `${label}: cniVersion and msg`);
  }
  t.equal((await tasks()).length, count, 'no task stored');
  t.equal(veths(), links, 'no veth left on the host');
  t.notMatch((await ns.exec('ip', ['-o', 'link'])).stdout, /eth0/, 'nothing attached to the namespace');
});

t.test('a container killed without DEL (runtime killed, netns gone) leaves the service within seconds', async (t) => {
  await pm2.run('doomed', ['--network', 'appnet', '--network-alias', 'web', ...webCmd('doomed')]);
  const task = (await taskNamed('doomed'))!;
  await until('doomed in DNS', async () => (await digIn(client, 'tasks.web')).includes(task.addresses[0]!.ip), 5000);
  const info = await pm2.inspect('doomed');
  // conmon first: with it gone nothing runs `podman container cleanup`, so no DEL.
  for (const pid of [info.State.ConmonPid, info.State.Pid]) process.kill(pid, 'SIGKILL');
  execFileSync('ip', ['netns', 'del', info.NetworkSettings.SandboxKey.split('/').pop()!]);
  const t0 = Date.now();
  const gone = await elapsedUntil(t0, async () => (await taskNamed('doomed')) === undefined);
  t.ok(gone <= 5000, `the agent removed the task after ${gone} ms`);
  t.notOk((await digIn(client, 'tasks.web')).includes(task.addresses[0]!.ip), 'out of DNS');
  t.notMatch(execFileSync('ip', ['-n', h2.ns, '-o', 'link'], { encoding: 'utf8' }), new RegExp(`swv${task.id.slice(0, 12)}`), 'its veth gone');
  // podman's own state of a container whose conmon was killed can refuse the first rm -f ("could not be stopped").
  const rm = async () => (await pm2.cmd(['rm', '-f', '-t', '0', 'doomed'])).code === 0;
  t.ok((await rm()) || (await rm()), 'podman rm -f removes it afterwards');
  // Podman 4.3 skips the DEL of a container whose netns is gone (libcni's cache stays); a runtime
  // that does send it, for an attachment the agent already dropped, gets a success.
  const del = await run(plugins + '/swarmnet-cni', [], {
    input: JSON.stringify({ cniVersion: '1.0.0', name: 'appnet', type: 'swarmnet-cni', socket: a2.api, prevResult: pm2.storedResult('appnet', info.Id) }),
    env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: info.Id, CNI_NETNS: info.NetworkSettings.SandboxKey, CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=doomed', CNI_PATH: plugins },
  });
  t.same([del.code, del.stdout], [0, ''], `DEL afterwards succeeds, printing nothing ${del.stdout}`);
});
