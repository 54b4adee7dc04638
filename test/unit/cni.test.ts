/**
 * The CNI plugin's pure parts: the environment, CNI_ARGS and the network configuration
 * parsed (with the error code each refusal gets), the ADD result built from an
 * attachment, the VERSION and error replies, agent errors as CNI codes, and a whole
 * invocation with a stub agent. Then the agent side: tasks of CNI attachments in the
 * control plane, and the sweep that removes tasks of dead containers.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { addResult, CniError, errorReply, fromApi, invoke, parseArgs, parseConfig, parseEnv, usableAliases, versionOf, versionReply } from '../../src/cni/index.js';
import type { ApiClient, Attachment } from '../../src/api/index.js';
import { ApiError } from '../../src/util/errors.js';
import { ContainerReaper } from '../../src/agent/reaper.js';
import type { Task } from '../../src/control/index.js';
import { plane } from '../helpers/plane.js';

const SOCK = '/run/swarmnet.sock';
/** The CNI error code `fn` throws, or 'ok'. */
const codeOf = (fn: () => unknown): number | 'ok' => {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof CniError) return err.code;
    throw err;
  }
};

t.test('parseEnv: what each command needs, and the code of each refusal', async (t) => {
  const add = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/c1', CNI_IFNAME: 'eth0' };
  const cases: Array<[string, Record<string, string | undefined>, number | 'ok']> = [
    ['ADD with all', add, 'ok'],
    ['no CNI_COMMAND', { ...add, CNI_COMMAND: undefined }, 4],
    ['empty CNI_COMMAND', { ...add, CNI_COMMAND: '' }, 4],
    ['unknown command', { ...add, CNI_COMMAND: 'add' }, 4],
    ['ADD without CNI_NETNS', { ...add, CNI_NETNS: undefined }, 4],
    ['ADD without CNI_CONTAINERID', { ...add, CNI_CONTAINERID: '' }, 4],
    ['ADD without CNI_IFNAME', { ...add, CNI_IFNAME: undefined }, 4],
    ['a relative CNI_NETNS', { ...add, CNI_NETNS: 'c1' }, 4],
    ['container id with a space', { ...add, CNI_CONTAINERID: 'a b' }, 4],
    ['container id starting with _', { ...add, CNI_CONTAINERID: '_a' }, 4],
    ['container id with . _ -', { ...add, CNI_CONTAINERID: 'a.b_c-d' }, 'ok'],
    ['ifname .', { ...add, CNI_IFNAME: '.' }, 4],
    ['ifname ..', { ...add, CNI_IFNAME: '..' }, 4],
    ['ifname ...', { ...add, CNI_IFNAME: '...' }, 'ok'],
    ['ifname with :', { ...add, CNI_IFNAME: 'eth0:1' }, 4],
    ['ifname of 15', { ...add, CNI_IFNAME: 'abcdefghijklmno' }, 'ok'],
    ['ifname of 16', { ...add, CNI_IFNAME: 'abcdefghijklmnop' }, 4],
    ['DEL without CNI_NETNS', { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' }, 'ok'],
    ['DEL without CNI_IFNAME', { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1' }, 4],
    ['CHECK without CNI_NETNS', { CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' }, 4],
    ['VERSION alone', { CNI_COMMAND: 'VERSION' }, 'ok'],
    ['GC alone', { CNI_COMMAND: 'GC' }, 'ok'],
    ['STATUS alone', { CNI_COMMAND: 'STATUS' }, 'ok'],
    ['bad CNI_ARGS', { ...add, CNI_ARGS: 'A=1;junk' }, 4],
  ];
  for (const [what, env, want] of cases) t.equal(codeOf(() => parseEnv(env)), want, what);
  const e = parseEnv({ ...add, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-1;SWARMNET_SERVICE=web' });
  t.same(e, { command: 'ADD', containerId: 'c1', netns: '/run/netns/c1', ifName: 'eth0', args: { IgnoreUnknown: '1', K8S_POD_NAME: 'web-1', SWARMNET_SERVICE: 'web' } });
  t.throws(() => parseEnv({ CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' }), { code: 4, message: /CNI_CONTAINERID,CNI_NETNS/ }, 'the message names the missing variables');
});

t.test('parseArgs: K=V pairs', async (t) => {
  t.same(parseArgs(''), {});
  t.same(parseArgs('A=1;B=;C=x=y;'), { A: '1', B: '', C: 'x=y' }, 'empty values, = in values, a trailing ;');
  t.equal(codeOf(() => parseArgs('=1')), 4, 'no key');
  t.equal(codeOf(() => parseArgs('A')), 4, 'no =');
});

t.test('parseConfig: keys, defaults, and the code of each refusal', async (t) => {
  const base = { cniVersion: '1.0.0', name: 'appnet', type: 'swarmnet-cni' };
  const conf = parseConfig(JSON.stringify(base), 'ADD', SOCK);
  t.same(conf, { cniVersion: '1.0.0', name: 'appnet', type: 'swarmnet-cni', network: 'appnet', socket: SOCK, aliases: [] }, 'defaults: network = name, the default socket');
  const full = parseConfig(
    JSON.stringify({
      ...base,
      cniVersion: '1.1.0',
      network: 'overlay1',
      service: 'web',
      socket: 'unix:///tmp/a.sock',
      capabilities: { aliases: true },
      runtimeConfig: { aliases: { appnet: ['web', 'www'], other: ['x'] }, portMappings: [] },
      args: { cni: { SWARMNET_SERVICE: 'api' } },
      dns: { nameservers: ['1.1.1.1'], search: ['svc'], options: ['ndots:1'], domain: 'local' },
      prevResult: { cniVersion: '1.1.0', interfaces: [] },
      somethingElse: { kept: 'ignored' },
    }),
    'ADD',
    SOCK,
  );
  t.same(full, {
    cniVersion: '1.1.0',
    name: 'appnet',
    type: 'swarmnet-cni',
    network: 'overlay1',
    socket: '/tmp/a.sock',
    aliases: ['web', 'www'],
    service: 'web',
    argsService: 'api',
    dns: { domain: 'local', search: ['svc'], options: ['ndots:1'] },
    prevResult: { cniVersion: '1.1.0', interfaces: [] },
  }, 'every key; the aliases of this network only; unknown keys left alone');
  const cases: Array<[string, string, string, number | 'ok']> = [
    ['malformed JSON', '{"cniVersion":', 'ADD', 6],
    ['empty', '', 'ADD', 6],
    ['an array', '[]', 'ADD', 6],
    ['null', 'null', 'ADD', 6],
    ['no cniVersion', JSON.stringify({ name: 'a', type: 't' }), 'ADD', 1],
    ['cniVersion 0.4.0', JSON.stringify({ ...base, cniVersion: '0.4.0' }), 'ADD', 1],
    ['cniVersion 1.2.0', JSON.stringify({ ...base, cniVersion: '1.2.0' }), 'ADD', 1],
    ['cniVersion a number', JSON.stringify({ ...base, cniVersion: 1 }), 'ADD', 1],
    ['GC with 1.0.0', JSON.stringify({ ...base, 'cni.dev/valid-attachments': [] }), 'GC', 1],
    ['STATUS with 1.0.0', JSON.stringify(base), 'STATUS', 1],
    ['STATUS with 1.1.0', JSON.stringify({ ...base, cniVersion: '1.1.0' }), 'STATUS', 'ok'],
    ['GC without the list', JSON.stringify({ ...base, cniVersion: '1.1.0' }), 'GC', 7],
    ['GC with a bad list', JSON.stringify({ ...base, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a' }] }), 'GC', 7],
    ['GC with an empty list', JSON.stringify({ ...base, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] }), 'GC', 'ok'],
    ['no name', JSON.stringify({ cniVersion: '1.0.0', type: 't' }), 'ADD', 7],
    ['a name with /', JSON.stringify({ ...base, name: 'a/b' }), 'ADD', 7],
    ['no type', JSON.stringify({ cniVersion: '1.0.0', name: 'a' }), 'ADD', 7],
    ['network not a string', JSON.stringify({ ...base, network: 5 }), 'ADD', 7],
    ['service empty', JSON.stringify({ ...base, service: '' }), 'ADD', 7],
    ['socket relative', JSON.stringify({ ...base, socket: 'x.sock' }), 'ADD', 7],
    ['socket tcp', JSON.stringify({ ...base, socket: 'tcp://1.2.3.4:2377' }), 'ADD', 7],
    ['ipam', JSON.stringify({ ...base, ipam: { type: 'host-local' } }), 'ADD', 2],
    ['aliases not a map', JSON.stringify({ ...base, runtimeConfig: { aliases: ['web'] } }), 'ADD', 7],
    ["this network's aliases not a list", JSON.stringify({ ...base, runtimeConfig: { aliases: { appnet: 'web' } } }), 'ADD', 7],
    ['args.cni.SWARMNET_SERVICE not a string', JSON.stringify({ ...base, args: { cni: { SWARMNET_SERVICE: 1 } } }), 'ADD', 7],
    ['runtimeConfig without aliases', JSON.stringify({ ...base, runtimeConfig: { portMappings: [] } }), 'ADD', 'ok'],
  ];
  for (const [what, text, command, want] of cases) t.equal(codeOf(() => parseConfig(text, command as 'ADD', SOCK)), want, what);
  t.same(parseConfig(JSON.stringify({ ...base, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0', extra: 1 }] }), 'GC', SOCK).validAttachments, [{ containerID: 'a', ifname: 'eth0' }]);
  t.equal(versionOf('{"cniVersion":"0.4.0"}'), '0.4.0');
  t.equal(versionOf('{"cniVersion":7}'), undefined);
  t.equal(versionOf('nonsense'), undefined);
});

t.test('usableAliases: DNS labels, deduplicated in any case', async (t) => {
  t.same(usableAliases(['web', 'WWW', 'www', 'my.app', 'a_b', '-x']), { usable: ['web', 'WWW', 'a_b'], dropped: ['my.app', '-x'] });
});

const attachment: Attachment = { netns: '/run/netns/c1', ifName: 'eth0', mac: '02:42:0a:00:00:05', mtu: 1450, address: '10.0.0.5/24', gateway: '10.0.0.1', defaultRoute: true };

t.test('addResult: the spec shape from the attachment', async (t) => {
  t.same(addResult({ cniVersion: '1.0.0' }, attachment), {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'eth0', mac: '02:42:0a:00:00:05', sandbox: '/run/netns/c1' }],
    ips: [{ address: '10.0.0.5/24', gateway: '10.0.0.1', interface: 0 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }],
    dns: { nameservers: ['10.0.0.1'] },
  }, '1.0.0: no mtu');
  t.same(addResult({ cniVersion: '1.1.0' }, attachment).interfaces, [{ name: 'eth0', mac: '02:42:0a:00:00:05', mtu: 1450, sandbox: '/run/netns/c1' }], '1.1.0: with mtu');
  t.notOk('routes' in addResult({ cniVersion: '1.0.0' }, { ...attachment, defaultRoute: false }), 'no routes when the namespace kept its own default route');
  t.same(addResult({ cniVersion: '1.0.0', dns: { search: ['svc.local'], options: ['ndots:2'] } }, attachment).dns, { search: ['svc.local'], options: ['ndots:2'], nameservers: ['10.0.0.1'] }, "the configuration's search and options");
  const prevResult = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'lo0', sandbox: '/run/netns/c1' }],
    ips: [{ address: '192.0.2.5/24', interface: 0 }],
    routes: [{ dst: '192.0.2.0/24' }],
    dns: { nameservers: ['192.0.2.53', '10.0.0.1'], domain: 'example' },
  };
  t.same(addResult({ cniVersion: '1.0.0', prevResult }, attachment), {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'lo0', sandbox: '/run/netns/c1' }, { name: 'eth0', mac: '02:42:0a:00:00:05', sandbox: '/run/netns/c1' }],
    ips: [{ address: '192.0.2.5/24', interface: 0 }, { address: '10.0.0.5/24', gateway: '10.0.0.1', interface: 1 }],
    routes: [{ dst: '192.0.2.0/24' }, { dst: '0.0.0.0/0', gw: '10.0.0.1' }],
    dns: { nameservers: ['10.0.0.1', '192.0.2.53'], domain: 'example' },
  }, 'a prevResult gets ours appended (index 1), the gateway first among nameservers');
});

t.test('versionReply, errorReply', async (t) => {
  t.same(versionReply('1.1.0'), { cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] });
  t.same(versionReply('1.0.0'), { cniVersion: '1.0.0', supportedVersions: ['1.0.0', '1.1.0'] }, 'the version asked in');
  t.same(versionReply(undefined), { cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] }, 'none asked: the newest');
  t.same(errorReply(new CniError(7, 'unknown network: x', 'details here'), '1.0.0', 104), { cniVersion: '1.0.0', code: 7, msg: 'unknown network: x', details: 'details here' });
  t.same(errorReply(new CniError(4, 'no env'), undefined, 104), { cniVersion: '1.1.0', code: 4, msg: 'no env' }, 'no details: none printed; no version: the newest');
  t.same(errorReply(new TypeError('boom'), '1.0.0', 104), { cniVersion: '1.0.0', code: 104, msg: 'internal error', details: 'boom' });
});

t.test('fromApi: agent errors as CNI codes', async (t) => {
  const cases: Array<[string, ApiError, string, number]> = [
    ['unreachable', new ApiError('cannot reach', 'EUNREACHABLE', 0), 'ADD', 11],
    ['unreachable on DEL', new ApiError('cannot reach', 'EUNREACHABLE', 0), 'DEL', 11],
    ['unreachable on STATUS', new ApiError('cannot reach', 'EUNREACHABLE', 0), 'STATUS', 50],
    ['socket permission', new ApiError('denied', 'EACCES', 0), 'ADD', 101],
    ['store down', new ApiError('nats', 'ESTORE', 500), 'ADD', 11],
    ['a concurrent write', new ApiError('tasks/x changed', 'EREVISION', 409), 'DEL', 11],
    ['attach failed', new ApiError('netns: cannot attach', 'EINVALID', 400, 'netns'), 'ADD', 102],
    ['bad service', new ApiError('service: service x not found', 'EINVALID', 400, 'service'), 'ADD', 7],
    ['not found', new ApiError('network x not found', 'ENOTFOUND', 404), 'ADD', 7],
    ['conflict', new ApiError('alias taken', 'ECONFLICT', 409, 'aliases[0]'), 'ADD', 100],
    ['no addresses left', new ApiError('exhausted', 'EEXHAUSTED', 409), 'ADD', 100],
    ['anything else', new ApiError('boom', 'EINTERNAL', 500), 'ADD', 104],
  ];
  for (const [what, err, command, want] of cases) t.equal(fromApi(err, command as 'ADD').code, want, what);
});

t.test('invoke: a whole invocation against a stub agent', async (t) => {
  const calls: string[] = [];
  const task = { id: 't1', name: 'web.1', service: 's1', node: 'n1', addresses: [{ network: 'n1', ip: '10.0.0.5' }], weight: 1, state: 'running', createdAt: 0, netns: '/proc/self/ns/net' };
  const api = {
    networks: { inspect: async (r: string) => (r === 'appnet' ? { id: 'net1', name: 'appnet' } : Promise.reject(new ApiError(`network ${r} not found`, 'ENOTFOUND', 404))) },
    services: { list: async () => [{ name: 'web', networks: [{ network: 'net1' }] }] },
    tasks: {
      add: async (spec: Record<string, unknown>) => {
        calls.push(`add ${JSON.stringify(spec)}`);
        if (spec.name === 'taken') throw new ApiError('name: task taken already exists', 'ECONFLICT', 409, 'name');
        return { ...task, attachment: { ...attachment, netns: '/proc/self/ns/net' } };
      },
    },
    containers: { rm: async (id: string, ifName: string) => (calls.push(`rm ${id} ${ifName}`), []) },
    info: async () => ({}),
  } as unknown as ApiClient;
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAME=taken' };
  const conf = { cniVersion: '1.0.0', name: 'appnet', type: 'swarmnet-cni', runtimeConfig: { aliases: { appnet: ['web', 'www', 'bad.alias'] } } };
  const out = await invoke({ env, stdin: JSON.stringify(conf), defaultSocket: SOCK, client: () => api });
  t.equal(out.exitCode, 0, out.stdout);
  t.same(JSON.parse(out.stdout).interfaces, [{ name: 'eth0', mac: attachment.mac, sandbox: '/proc/self/ns/net' }]);
  t.same(calls, [
    'add {"service":"web","network":"net1","netns":"/proc/self/ns/net","container":{"id":"c1","ifName":"eth0","config":"appnet"},"aliases":["www"],"name":"taken"}',
    'add {"service":"web","network":"net1","netns":"/proc/self/ns/net","container":{"id":"c1","ifName":"eth0","config":"appnet"},"aliases":["www"]}',
  ], 'service from the alias; its name not an alias; the pod name taken: added again without it');
  t.match(out.stderr.join('\n'), /bad\.alias/, 'an unusable alias is reported on stderr');
  const del = await invoke({ env: { ...env, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, stdin: JSON.stringify(conf), defaultSocket: SOCK, client: () => api });
  t.same([del.exitCode, del.stdout], [0, ''], 'DEL: no output');
  t.equal(calls.at(-1), 'rm c1 eth0');
  const unknown = await invoke({ env, stdin: JSON.stringify({ ...conf, network: 'nonet' }), defaultSocket: SOCK, client: () => api });
  t.equal(unknown.exitCode, 1);
  t.same(JSON.parse(unknown.stdout), { cniVersion: '1.0.0', code: 7, msg: 'unknown network: nonet', details: JSON.parse(unknown.stdout).details });
  const io = await invoke({ env, stdin: new Error('EIO'), defaultSocket: SOCK, client: () => api });
  t.equal(JSON.parse(io.stdout).code, 5, 'stdin unreadable: code 5');
  const ver = await invoke({ env: { CNI_COMMAND: 'VERSION' }, stdin: '', defaultSocket: SOCK });
  t.same([ver.exitCode, JSON.parse(ver.stdout)], [0, { cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] }]);
});

t.test('control plane: tasks of CNI attachments', async (t) => {
  const { p } = await plane(t);
  await p.networks.create({ name: 'appnet' });
  await p.services.create({ name: 'web', networks: ['appnet'] });
  await p.services.create({ name: 'api', networks: ['appnet'] });
  const spec = { service: 'web', network: 'appnet', netns: '/proc/self/ns/net', container: { id: 'c1', ifName: 'eth0' } };
  const first = await p.tasks.add(spec);
  t.same(first.container, { id: 'c1', ifName: 'eth0' }, 'stored with the task');
  const again = await p.tasks.add(spec);
  t.equal(again.id, first.id, 'the same (container, interface): the same task');
  t.equal((await p.tasks.list()).length, 1);
  const second = await p.tasks.add({ ...spec, container: { id: 'c1', ifName: 'eth1' } });
  t.not(second.id, first.id, 'another interface of the container: another task');
  await t.rejects(p.tasks.add({ ...spec, service: 'api' }), { code: 'ECONFLICT', field: 'container' }, 'the same attachment for another service');
  await t.rejects(p.tasks.add({ ...spec, netns: '/proc/self/ns/uts' }), { code: 'ECONFLICT', field: 'container' }, 'the same attachment in another namespace');
  await t.rejects(p.tasks.add({ service: 'web', network: 'appnet', container: { id: 'c2', ifName: 'eth0' } }), { code: 'EINVALID', field: 'container' }, 'a container without its namespace');
  await t.rejects(p.tasks.add({ ...spec, container: { id: 'c3', ifName: 'a/b' } }), { code: 'EINVALID' }, 'a bad interface name');
  await t.rejects(p.tasks.add({ ...spec, container: { id: '-c3', ifName: 'eth0' } }), { code: 'EINVALID' }, 'a bad container id');
  t.same((await p.tasks.byContainer('c1')).map((x) => x.id).sort(), [first.id, second.id].sort(), 'by container');
  t.same((await p.tasks.byContainer('c1', 'eth1')).map((x) => x.id), [second.id], 'by container and interface');
  t.same(await p.tasks.byContainer('nope'), []);
});

t.test('the sweep removes tasks whose namespace is gone or replaced', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-reaper-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = (n: string) => join(dir, n);
  for (const n of ['a', 'b', 'c']) writeFileSync(path(n), '');
  const task = (id: string, netns: string | undefined, node = 'me'): Task => ({ id, name: id, service: 's', node, addresses: [{ network: 'n', ip: '10.0.0.2' }], ...(netns && { netns }), weight: 1, state: 'running', createdAt: 0 });
  const tasks = new Map<string, Task>([
    ['a', task('a', path('a'))],
    ['b', task('b', path('b'))],
    ['c', task('c', path('c'), 'other-node')],
    ['d', task('d', undefined)],
  ]);
  const removed: string[] = [];
  const detached: string[] = [];
  const reaper = new ContainerReaper({
    view: { tasks } as never,
    plane: { tasks: { remove: async (id: string) => (removed.push(id), tasks.get(id)!) } } as never,
    overlay: { detach: async (id: string) => void detached.push(id) } as never,
    nodeId: 'me',
    log: { info: () => undefined, warn: () => undefined } as never,
  });
  await reaper.sweep();
  t.same(removed, [], 'all there: nothing removed');
  rmSync(path('a'));
  rmSync(path('c'));
  await reaper.sweep();
  t.same(removed, ['a'], "a's namespace gone: removed (c is another node's)");
  t.same(detached, ['a'], 'and detached');
  tasks.delete('a');
  writeFileSync(path('b2'), 'another file');
  renameSync(path('b2'), path('b')); // made while b lived: another inode
  await reaper.sweep();
  t.same(removed, ['a', 'b'], 'the path now names something else: removed');
  t.same(reaper.counters, { reaped: 2, failures: 0 });
});
