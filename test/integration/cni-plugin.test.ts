/**
 * The swarmnet CNI plugin driven as a runtime drives it: the executable found in a
 * plugin directory, CNI_* environment, the configuration on stdin, run inside a
 * namespace-host whose agent (overlay on) it talks to; network namespaces made here are
 * the containers. ADD results checked field by field against the CNI spec (section 5),
 * CHECK, DEL (idempotent), VERSION, GC, STATUS, bad configurations, and containers whose
 * namespace disappears without a DEL.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { createContainer, createTopology, type Container } from '../helpers/netns.js';
import { startNats } from '../helpers/nats.js';
import { metricValue, startHostAgent, type AgentProc } from '../helpers/procs.js';
import { until } from '../helpers/net.js';
import { pluginDir, runPlugin, type PluginRun } from '../helpers/cni.js';
import type { TaskView } from '../../src/api/index.js';

process.setMaxListeners(32); // one exit hook per namespace made here (helpers/cleanup.ts)

const topo = createTopology(t, 1);
const h1 = topo.hosts[0]!;
const nats = await startNats(t, topo.gateway, 4222);
const agentOpts = { nats: nats.url, nodeId: 'cni-node', overlay: true, args: ['--dns-upstream', '127.0.0.1:1'] };
let a1: AgentProc = await startHostAgent(t, h1, agentOpts);
const root = t;
const dir = pluginDir(t);

await a1.ok('network', 'create', '--subnet', '10.77.0.0/24', 'appnet');
await a1.ok('network', 'create', 'othernet');
await a1.ok('service', 'create', '--name', 'web', '--network', 'appnet');
await a1.ok('service', 'create', '--name', 'api', '--network', 'appnet');
await a1.ok('service', 'create', '--name', 'elsewhere', '--network', 'othernet');
const net = (JSON.parse(await a1.ok('network', 'inspect', 'appnet')) as Array<{ subnet: string; gateway: string }>)[0]!;

const tasks = async () => JSON.parse(await a1.ok('task', 'ls', '--format', 'json')) as TaskView[];
const taskOf = async (containerId: string) => (await tasks()).find((x) => x.container?.id === containerId);
const serviceId = async (name: string) => (JSON.parse(await a1.ok('service', 'inspect', name)) as Array<{ id: string }>)[0]!.id;

const config = (o: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'appnet', type: 'swarmnet-cni', socket: a1.api, capabilities: { aliases: true }, ...o });
interface Call {
  command: string;
  id?: string;
  netns?: string;
  ifName?: string;
  args?: string;
  config?: unknown;
}
/** One invocation; undefined fields are left out of the environment, as a runtime that does not set them. */
const cni = (c: Call): Promise<PluginRun> => {
  const env: Record<string, string> = { CNI_COMMAND: c.command };
  if (c.id !== undefined) env.CNI_CONTAINERID = c.id;
  if (c.netns !== undefined) env.CNI_NETNS = c.netns;
  if (c.ifName !== undefined) env.CNI_IFNAME = c.ifName;
  if (c.args !== undefined) env.CNI_ARGS = c.args;
  return runPlugin({ dir, env, config: c.config ?? config(), ns: h1.ns });
};
const add = (c: Container, id: string, o: { ifName?: string; args?: string; config?: unknown } = {}) => cni({ command: 'ADD', id, netns: c.path, ifName: o.ifName ?? 'eth0', ...(o.args !== undefined && { args: o.args }), ...(o.config !== undefined && { config: o.config }) });
const del = (c: { path: string } | undefined, id: string, ifName = 'eth0', conf?: unknown) => cni({ command: 'DEL', id, ifName, ...(c && { netns: c.path }), ...(conf !== undefined && { config: conf }) });

/** The interface as `ip -j` in the namespace shows it. */
const linkIn = (c: Container, dev: string) => {
  const out = execFileSync('ip', ['-n', c.ns, '-j', 'addr', 'show', 'dev', dev], { encoding: 'utf8' });
  return (JSON.parse(out) as Array<{ ifindex: number; address: string; mtu: number; addr_info: Array<{ local: string; prefixlen: number }> }>)[0]!;
};
const linksIn = (c: Container) => execFileSync('ip', ['-n', c.ns, '-o', 'link', 'show'], { encoding: 'utf8' });
/** The IPv4 answers (a name unknown to the cluster is forwarded, and fails, upstream: none). */
const dig = async (from: Container, name: string) => (await from.exec('dig', ['+short', '+time=3', '+tries=1', `@${net.gateway}`, name])).stdout.trim().split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)).sort();

const c1 = createContainer(t, 'k1');
const c2 = createContainer(t, 'k2');

t.test('ADD attaches the namespace and prints the spec result, field by field', async (t) => {
  const r = await add(c1, 'ctr-one', { ifName: 'net0', args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod-one;K8S_POD_INFRA_CONTAINER_ID=ctr-one', config: config({ runtimeConfig: { aliases: { appnet: ['web', 'www'] } } }) });
  t.equal(r.code, 0, r.stdout + r.stderr);
  const res = r.json as { cniVersion: string; interfaces: Array<Record<string, unknown>>; ips: Array<Record<string, unknown>>; routes: Array<Record<string, unknown>>; dns: { nameservers: string[] } };
  const task = (await taskOf('ctr-one'))!;
  const ip = task.addresses[0]!.ip;
  const link = linkIn(c1, 'net0');
  t.same(Object.keys(res).sort(), ['cniVersion', 'dns', 'interfaces', 'ips', 'routes'], 'the keys of an ADD result');
  t.equal(res.cniVersion, '1.0.0', 'cniVersion: the one supplied');
  t.equal(res.interfaces.length, 1, 'one interface');
  t.same(Object.keys(res.interfaces[0]!).sort(), ['mac', 'name', 'sandbox'], 'interface keys (no mtu before 1.1.0)');
  t.equal(res.interfaces[0]!.name, 'net0', 'interface name = CNI_IFNAME');
  t.equal(res.interfaces[0]!.mac, link.address, "mac = the interface's own, as ip -j link shows it in the namespace");
  t.equal(res.interfaces[0]!.sandbox, c1.path, 'sandbox = CNI_NETNS');
  t.equal(res.ips.length, 1, 'one address');
  t.same(Object.keys(res.ips[0]!).sort(), ['address', 'gateway', 'interface'], 'ip keys');
  const real = link.addr_info.find((a) => a.local === ip)!;
  t.equal(res.ips[0]!.address, `${real.local}/${real.prefixlen}`, "address = the task's IP with the interface's prefix");
  t.equal(real.prefixlen, 24, "the prefix is the network's (/24)");
  t.equal(res.ips[0]!.gateway, net.gateway, "gateway = the network's gateway");
  t.equal(res.ips[0]!.interface, 0, 'interface = the index of ours in interfaces');
  t.same(res.routes, [{ dst: '0.0.0.0/0', gw: net.gateway }], 'the default route the attach installed');
  t.match(execFileSync('ip', ['-n', c1.ns, 'route', 'show', 'default'], { encoding: 'utf8' }), `default via ${net.gateway} dev net0`, 'and it is there');
  t.same(res.dns, { nameservers: [net.gateway] }, 'dns: the gateway');
  t.equal(task.name, 'pod-one', 'task name: K8S_POD_NAME');
  t.equal(task.service, await serviceId('web'), 'service: the first alias naming a service');
  t.same(task.addresses[0]!.aliases, ['www'], "aliases: the container's, less the service's own name");
  t.same(task.container, { id: 'ctr-one', ifName: 'net0', config: 'appnet' }, 'the CNI attachment recorded, with the configuration that made it');
  t.equal(task.netns, c1.path);
  t.same(await dig(c1, 'www'), [ip], 'the alias resolves to the task on the network');
  t.same(await dig(c1, 'tasks.web'), [ip], 'tasks.web too');
  t.equal(r.stderr, '', 'nothing on stderr');
});

t.test('ADD with 1.1.0 reports the MTU; repeated ADD returns the same attachment', async (t) => {
  const r = await add(c2, 'ctr-two', { config: config({ cniVersion: '1.1.0', runtimeConfig: { aliases: { appnet: ['api', 'api-two'], othernet: ['ignored'] } } }) });
  t.equal(r.code, 0, r.stdout + r.stderr);
  const res = r.json as { cniVersion: string; interfaces: Array<{ name: string; mac: string; mtu: number; sandbox: string }> };
  t.equal(res.cniVersion, '1.1.0');
  const link = linkIn(c2, 'eth0');
  t.same(res.interfaces[0], { name: 'eth0', mac: link.address, mtu: link.mtu, sandbox: c2.path }, 'interface with mtu (1.1.0)');
  t.equal(link.mtu, 1450, 'the overlay MTU');
  const task = (await taskOf('ctr-two'))!;
  t.equal(task.service, await serviceId('api'), 'service from the alias api');
  t.match(task.name, /^api\.\d+$/, 'no K8S_POD_NAME: the default task name');
  t.same(task.addresses[0]!.aliases, ['api-two'], "only this network's aliases");
  const again = await add(c2, 'ctr-two', { config: config({ cniVersion: '1.1.0', runtimeConfig: { aliases: { appnet: ['api', 'api-two'] } } }) });
  t.equal(again.code, 0, again.stdout);
  t.same(again.json, r.json, 'the same result');
  t.equal((await tasks()).filter((x) => x.container?.id === 'ctr-two').length, 1, 'one task per (container, interface)');
});

t.test('ADD: the container name taken, a namespace with its own default route', async (t) => {
  const c = createContainer(t, 'k3');
  execFileSync('ip', ['-n', c.ns, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
  execFileSync('ip', ['-n', c.ns, 'addr', 'add', '192.0.2.2/24', 'dev', 'd0']);
  execFileSync('ip', ['-n', c.ns, 'link', 'set', 'd0', 'up']);
  execFileSync('ip', ['-n', c.ns, 'link', 'set', 'd1', 'up']);
  execFileSync('ip', ['-n', c.ns, 'route', 'add', 'default', 'via', '192.0.2.1']);
  const r = await add(c, 'ctr-three', { args: 'K8S_POD_NAME=pod-one', config: config({ service: 'web' }) });
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.notOk('routes' in r.json!, 'no routes: the namespace kept its own default route');
  t.match(execFileSync('ip', ['-n', c.ns, 'route', 'show', 'default'], { encoding: 'utf8' }), 'via 192.0.2.1', 'untouched');
  const task = (await taskOf('ctr-three'))!;
  t.match(task.name, /^web\.\d+$/, 'pod-one is taken: the default name');
  t.equal(task.service, await serviceId('web'), 'service from the configuration');
  t.equal((await del(c, 'ctr-three')).code, 0);
});

t.test('CNI_ARGS SWARMNET_SERVICE wins over the configuration and the aliases', async (t) => {
  const c = createContainer(t, 'k4');
  const r = await add(c, 'ctr-four', { args: 'SWARMNET_SERVICE=api', config: config({ service: 'web', runtimeConfig: { aliases: { appnet: ['four', 'api'] } } }) });
  t.equal(r.code, 0, r.stdout + r.stderr);
  const task = (await taskOf('ctr-four'))!;
  t.equal(task.service, await serviceId('api'));
  t.same(task.addresses[0]!.aliases, ['four'], 'the aliases less the service name');
  t.equal((await del(c, 'ctr-four')).code, 0);
});

t.test('CHECK: the attachment as in prevResult; unknown container; interface gone', async (t) => {
  const first = await add(c1, 'ctr-one', { ifName: 'net0', config: config({ runtimeConfig: { aliases: { appnet: ['web', 'www'] } } }) });
  const prevResult = first.json;
  const ok = await cni({ command: 'CHECK', id: 'ctr-one', netns: c1.path, ifName: 'net0', config: config({ prevResult }) });
  t.equal(ok.code, 0, ok.stdout + ok.stderr);
  t.equal(ok.stdout, '', 'CHECK prints nothing on success');
  const noPrev = await cni({ command: 'CHECK', id: 'ctr-one', netns: c1.path, ifName: 'net0' });
  t.equal(noPrev.code, 0, 'without prevResult: the agent side only');
  const unknown = await cni({ command: 'CHECK', id: 'ctr-nope', netns: c1.path, ifName: 'net0', config: config({ prevResult }) });
  t.not(unknown.code, 0);
  t.equal(unknown.json?.code, 3, 'unknown container: code 3');
  const wrongMac = structuredClone(prevResult) as { interfaces: Array<{ mac: string }> };
  wrongMac.interfaces[0]!.mac = '02:00:00:00:00:01';
  const mac = await cni({ command: 'CHECK', id: 'ctr-one', netns: c1.path, ifName: 'net0', config: config({ prevResult: wrongMac }) });
  t.equal(mac.json?.code, 103, 'a MAC other than prevResult: code 103');
  const wrongNs = await cni({ command: 'CHECK', id: 'ctr-one', netns: c2.path, ifName: 'net0', config: config({ prevResult }) });
  t.equal(wrongNs.json?.code, 103, 'another namespace: code 103');
  // Taken away behind the plugin's back: CHECK says so.
  const c = createContainer(t, 'k5');
  const r = await add(c, 'ctr-five', { config: config({ service: 'web' }) });
  execFileSync('ip', ['-n', c.ns, 'link', 'del', 'eth0']);
  const gone = await cni({ command: 'CHECK', id: 'ctr-five', netns: c.path, ifName: 'eth0', config: config({ prevResult: r.json }) });
  t.equal(gone.json?.code, 103, 'interface deleted: code 103');
  t.match(gone.json?.msg, /eth0/);
  t.equal((await del(c, 'ctr-five')).code, 0);
});

t.test('VERSION, STATUS (1.1.0)', async (t) => {
  const v = await cni({ command: 'VERSION', config: { cniVersion: '1.1.0' } });
  t.equal(v.code, 0);
  t.same(JSON.parse(v.stdout), { cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] });
  const v0 = await cni({ command: 'VERSION', config: { cniVersion: '1.0.0' } });
  t.same(v0.json, { cniVersion: '1.0.0', supportedVersions: ['1.0.0', '1.1.0'] }, 'cniVersion: the one on input');
  const s = await cni({ command: 'STATUS', config: config({ cniVersion: '1.1.0' }) });
  t.equal(s.code, 0, s.stdout);
  t.equal(s.stdout, '', 'STATUS: no output when ready');
  const down = await cni({ command: 'STATUS', config: config({ cniVersion: '1.1.0', socket: '/run/no-such-swarmnet.sock' }) });
  t.not(down.code, 0);
  t.equal(down.json?.code, 50, 'agent unreachable: code 50');
  const old = await cni({ command: 'STATUS', config: config() });
  t.equal(old.json?.code, 1, 'STATUS with 1.0.0: code 1');
});

t.test('GC removes the attachments of this network not in the valid list', async (t) => {
  const c = createContainer(t, 'k6');
  t.equal((await add(c, 'ctr-six', { config: config({ service: 'web' }) })).code, 0);
  const before = (await tasks()).length;
  const valid = [
    { containerID: 'ctr-one', ifname: 'net0' },
    { containerID: 'ctr-two', ifname: 'eth0' },
  ];
  const noList = await cni({ command: 'GC', config: config({ cniVersion: '1.1.0' }) });
  t.equal(noList.json?.code, 7, 'GC without cni.dev/valid-attachments: code 7');
  t.equal((await tasks()).length, before, 'and nothing removed');
  const old = await cni({ command: 'GC', config: config({ 'cni.dev/valid-attachments': valid }) });
  t.equal(old.json?.code, 1, 'GC with 1.0.0: code 1');
  const other = await cni({ command: 'GC', config: config({ cniVersion: '1.1.0', name: 'othernet', 'cni.dev/valid-attachments': [] }) });
  t.equal(other.code, 0, "another network's GC");
  t.equal((await tasks()).length, before, "leaves this network's attachments");
  const sibling = await cni({ command: 'GC', config: config({ cniVersion: '1.1.0', name: 'appnet-web', network: 'appnet', 'cni.dev/valid-attachments': [] }) });
  t.equal(sibling.code, 0, 'the GC of another configuration on the same swarmnet network');
  t.equal((await tasks()).length, before, 'leaves the attachments this configuration made (its list cannot name them)');
  const gc = await cni({ command: 'GC', config: config({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid }) });
  t.equal(gc.code, 0, gc.stdout + gc.stderr);
  t.equal(gc.stdout, '', 'GC prints nothing on success');
  t.notOk(await taskOf('ctr-six'), 'the stale attachment removed');
  t.ok(await taskOf('ctr-one'), 'valid ones kept');
  t.ok(await taskOf('ctr-two'));
  t.notMatch(linksIn(c), /eth0/, 'its interface detached');
});

t.test('DEL: twice, unknown container, no CNI_NETNS, netns already gone', async (t) => {
  const c = createContainer(t, 'k7');
  const r = await add(c, 'ctr-seven', { config: config({ service: 'web', runtimeConfig: { aliases: { appnet: ['seven'] } } }) });
  t.equal(r.code, 0);
  const seven = (await taskOf('ctr-seven'))!.addresses[0]!.ip;
  t.same(await dig(c1, 'seven'), [seven]);
  t.ok((await dig(c1, 'tasks.web')).includes(seven));
  const d1 = await cni({ command: 'DEL', id: 'ctr-seven', netns: c.path, ifName: 'eth0', config: config({ prevResult: r.json }) });
  t.equal(d1.code, 0, d1.stdout + d1.stderr);
  t.equal(d1.stdout, '', 'DEL prints nothing');
  t.notOk(await taskOf('ctr-seven'), 'task removed');
  t.notMatch(linksIn(c), /eth0/, 'interface detached before DEL returned');
  t.same(await dig(c1, 'seven'), [], 'its alias out of DNS');
  t.notOk((await dig(c1, 'tasks.web')).includes(seven), 'and out of tasks.web');
  t.ok((await dig(c1, 'tasks.web')).length > 0, '(which still answers with the others)');
  t.equal((await del(c, 'ctr-seven')).code, 0, 'DEL again: success');
  t.equal((await del(c, 'ctr-never-added')).code, 0, 'DEL of an unknown container: success');
  t.equal((await del(undefined, 'ctr-seven')).code, 0, 'DEL without CNI_NETNS: success');
  // The namespace deleted first, then DEL.
  const g = createContainer(t, 'k8');
  t.equal((await add(g, 'ctr-eight', { config: config({ service: 'web' }) })).code, 0);
  execFileSync('ip', ['netns', 'del', g.ns]);
  const d2 = await del(g, 'ctr-eight');
  t.equal(d2.code, 0, `DEL with the namespace gone: ${d2.stdout}`);
  t.notOk(await taskOf('ctr-eight'), 'task gone');
});

t.test('DEL while the agent is down asks to retry; after its restart it removes the task', async (t) => {
  const c = createContainer(t, 'k9');
  const first = await add(c, 'ctr-nine', { config: config({ service: 'web' }) });
  t.equal(first.code, 0);
  await a1.stop();
  const down = await del(c, 'ctr-nine');
  t.not(down.code, 0);
  t.equal(down.json?.code, 11, 'agent unreachable: code 11 (try again later)');
  t.equal(down.json?.cniVersion, '1.0.0');
  a1 = await startHostAgent(root, h1, { ...agentOpts, dataDir: a1.dataDir });
  t.match(linksIn(c), /eth0/, 'the interface stayed meanwhile');
  const again = await add(c, 'ctr-nine', { config: config({ service: 'web' }) });
  t.equal(again.code, 0, `ADD repeated after the restart: ${again.stdout}`);
  t.same(again.json, first.json, 'the same attachment, adopted, not made twice');
  const d = await cni({ command: 'DEL', id: 'ctr-nine', netns: c.path, ifName: 'eth0', config: config() });
  t.equal(d.code, 0, d.stdout + d.stderr);
  t.notOk(await taskOf('ctr-nine'), 'task removed by the restarted agent');
  t.notMatch(linksIn(c), /eth0/, 'and detached');
});

t.test('bad configurations: error JSON on stdout, non-zero exit, nothing stored', async (t) => {
  const c = createContainer(t, 'kb');
  const base = { command: 'ADD', id: 'ctr-bad', netns: c.path, ifName: 'eth0' };
  const cases: Array<[string, Partial<Call>, number, RegExp?]> = [
    ['unknown network', { config: config({ network: 'nonet', service: 'web' }) }, 7, /unknown network: nonet/],
    ['unknown network (the name)', { config: config({ name: 'nonet', service: 'web' }) }, 7, /unknown network/],
    ['no service at all', { config: config() }, 7, /^no service/],
    ['no alias names a service', { config: config({ runtimeConfig: { aliases: { appnet: ['nothing', 'nada'] } } }) }, 7, /^no service/],
    ['a service that does not exist', { config: config({ service: 'nosuch' }) }, 7, /nosuch/],
    ['a service not on the network', { config: config({ service: 'elsewhere' }) }, 7, /not attached/],
    ['unsupported cniVersion 0.4.0', { config: config({ cniVersion: '0.4.0', service: 'web' }) }, 1],
    ['unsupported cniVersion 2.0.0', { config: config({ cniVersion: '2.0.0', service: 'web' }) }, 1],
    ['no cniVersion', { config: { name: 'appnet', type: 'swarmnet-cni', socket: a1.api, service: 'web' } }, 1],
    ['malformed JSON', { config: '{"cniVersion": "1.0.0", "name": ' }, 6],
    ['empty stdin', { config: '' }, 6],
    ['not an object', { config: '[1, 2]' }, 6],
    ['no name', { config: { cniVersion: '1.0.0', type: 'swarmnet-cni', socket: a1.api, service: 'web' } }, 7],
    ['a relative socket', { config: config({ socket: 'api.sock', service: 'web' }) }, 7],
    ['ipam (swarmnet allocates itself)', { config: config({ service: 'web', ipam: { type: 'host-local' } }) }, 2, /ipam/],
    ['no CNI_COMMAND', { command: '', config: config({ service: 'web' }) }, 4, /CNI_COMMAND/],
    ['unknown CNI_COMMAND', { command: 'FROB', config: config({ service: 'web' }) }, 4, /FROB/],
    ['no CNI_CONTAINERID', { id: undefined, config: config({ service: 'web' }) }, 4, /CNI_CONTAINERID/],
    ['no CNI_NETNS', { netns: undefined, config: config({ service: 'web' }) }, 4, /CNI_NETNS/],
    ['no CNI_IFNAME', { ifName: undefined, config: config({ service: 'web' }) }, 4, /CNI_IFNAME/],
    ['CNI_IFNAME with a slash', { ifName: 'a/b', config: config({ service: 'web' }) }, 4, /CNI_IFNAME/],
    ['CNI_IFNAME of 16 characters', { ifName: 'abcdefghijklmnop', config: config({ service: 'web' }) }, 4, /CNI_IFNAME/],
    ['CNI_CONTAINERID starting with -', { id: '-x', config: config({ service: 'web' }) }, 4, /CNI_CONTAINERID/],
    ['CNI_ARGS not K=V', { args: 'nonsense', config: config({ service: 'web' }) }, 4, /CNI_ARGS/],
    ['a namespace that does not exist', { netns: '/run/netns/sn-no-such-ns', config: config({ service: 'web' }) }, 3],
    ['an alias that is another service\'s name', { args: 'SWARMNET_SERVICE=api', config: config({ runtimeConfig: { aliases: { appnet: ['web'] } } }) }, 100, /web/],
    ['an interface name the namespace already has', { ifName: 'lo', config: config({ service: 'web' }) }, 102, /attach/],
    ['the agent not there', { config: config({ service: 'web', socket: '/run/no-such-swarmnet.sock' }) }, 11],
  ];
  const before = await tasks();
  for (const [what, call, code, msg] of cases) {
    const env = { ...base, ...call } as Call;
    if ('id' in call && call.id === undefined) delete env.id;
    if ('netns' in call && call.netns === undefined) delete env.netns;
    if ('ifName' in call && call.ifName === undefined) delete env.ifName;
    const r = await cni(env);
    t.not(r.code, 0, `${what}: non-zero exit`);
    const e = r.json as { cniVersion?: unknown; code?: unknown; msg?: unknown; details?: unknown } | undefined;
    t.ok(e, `${what}: JSON on stdout (${r.stdout})`);
    t.equal(e?.code, code, `${what}: code ${code} (${String(e?.msg)})`);
    t.type(e?.msg, 'string', `${what}: msg`);
    t.type(e?.cniVersion, 'string', `${what}: cniVersion`);
    t.ok(Object.keys(e ?? {}).every((k) => ['cniVersion', 'code', 'msg', 'details'].includes(k)), `${what}: only the spec's keys`);
    if (msg) t.match(e?.msg, msg, `${what}: says why`);
  }
  t.same((await tasks()).map((x) => x.id).sort(), before.map((x) => x.id).sort(), 'nothing stored');
  t.notMatch(linksIn(c), /eth0/, 'nothing attached');
});

t.test('a container whose namespace is deleted without DEL leaves the service within seconds', async (t) => {
  const c = createContainer(t, 'kd');
  t.equal((await add(c, 'ctr-dead', { config: config({ service: 'web', runtimeConfig: { aliases: { appnet: ['doomed'] } } }) })).code, 0);
  const task = (await taskOf('ctr-dead'))!;
  t.same(await dig(c1, 'doomed'), [task.addresses[0]!.ip], 'in DNS while alive');
  const reaped = metricValue(await a1.metrics(), 'swarmnet_container_tasks_reaped_total') ?? 0;
  const start = Date.now();
  execFileSync('ip', ['netns', 'del', c.ns]);
  await until('task removed', async () => !(await taskOf('ctr-dead')), 5000);
  const took = Date.now() - start;
  t.ok(took < 3000, `the task left within ${took} ms (sweep every 1 s)`);
  await until('out of DNS', async () => !(await dig(c1, 'tasks.web')).includes(task.addresses[0]!.ip), 3000);
  t.same(await dig(c1, 'doomed'), [], 'its alias too');
  t.notOk((await tasks()).some((x) => x.name === task.name), 'not a task of web any more');
  t.equal(metricValue(await a1.metrics(), 'swarmnet_container_tasks_reaped_total'), reaped + 1, 'counted');
  t.equal((await del(c, 'ctr-dead')).code, 0, "the runtime's late DEL: success");
});

t.test('cleanup: DEL of what is left', async (t) => {
  for (const [c, id, ifName] of [
    [c1, 'ctr-one', 'net0'],
    [c2, 'ctr-two', 'eth0'],
  ] as const) t.equal((await del(c, id, ifName)).code, 0);
  t.same((await tasks()).filter((x) => x.container), [], 'no CNI task left');
});
