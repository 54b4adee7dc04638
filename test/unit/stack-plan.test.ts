/**
 * The stack planner (src/stack/plan.ts planStack) and the re-deploy diff
 * (src/stack/diff.ts serviceDiff), pure: StackSpecs and the agent's current state are
 * built here as plain objects, nothing runs. What is refused carries the StackSpec field
 * the CLI maps back to the compose file, so each refusal is checked by its field too.
 */
import t from 'tap';
import type { Network, Service, ServiceSpec, Task } from '../../src/api/index.js';
import { PlanError, planStack, STACK_LABEL, type Current, type StackNetwork, type StackService, type StackSpec } from '../../src/stack/index.js';
import { serviceDiff } from '../../src/stack/diff.js';

const STACK = 'shop';
const src = (path: string) => ({ file: 'compose.yml', path });
const owned = (stack = STACK) => ({ [STACK_LABEL]: stack });

// --- the agent's current state -------------------------------------------------------

function net(name: string, subnet: string, o: Partial<Network> = {}): Network {
  const base = subnet.split('/')[0]!.split('.').map(Number);
  const gateway = `${base[0]}.${base[1]}.${base[2]}.${base[3]! + 1}`;
  return { id: `id-${name}`, name, driver: 'overlay', vni: 4096, subnet, gateway, encrypted: false, attachable: false, labels: {}, createdAt: 0, ...o };
}

function svc(name: string, o: Partial<Service> = {}): Service {
  return { id: `id-${name}`, name, endpointMode: 'vip', ports: [], networks: [], lb: 'rr', proxyProtocol: 'none', labels: owned(), createdAt: 0, updatedAt: 0, ...o };
}

function task(name: string, service: string, addresses: Task['addresses']): Task {
  return { id: `id-${name}`, name, service, node: 'n1', addresses, weight: 1, state: 'running', createdAt: 0 };
}

const state = (o: Partial<Current> = {}): Current => ({ networks: [], services: [], tasks: [], ...o });

// --- the stack as the compose loader would give it ---------------------------------

type Attach = { target: string; aliases?: string[]; ipv4Address?: string };

function stackService(key: string, o: Partial<Omit<ServiceSpec, 'networks'>> & { networks?: Attach[] } = {}): StackService {
  const spec = { name: `${STACK}_${key}`, ports: [], networks: [{ target: `${STACK}_default`, aliases: [key] }], labels: owned(), ...o };
  return {
    key,
    spec,
    source: src(`services.${key}`),
    portSources: spec.ports.map((_, i) => src(`services.${key}.ports[${i}]`)),
    networkSources: spec.networks.map((_, i) => src(`services.${key}.networks[${i}]`)),
    sources: {},
  };
}

function stackNetwork(key: string, o: { subnet?: string; encrypted?: boolean; external?: boolean; name?: string } = {}): StackNetwork {
  const name = o.name ?? (o.external ? key : `${STACK}_${key}`);
  if (o.external) return { key, name, external: true, source: src(`networks.${key}`), sources: {} };
  const spec = { name, labels: owned(), ...(o.subnet && { subnet: o.subnet }), ...(o.encrypted && { encrypted: true }) };
  return { key, name, external: false, spec, source: src(`networks.${key}`), sources: {} };
}

const stack = (services: StackService[], networks: StackNetwork[] = [stackNetwork('default')]): StackSpec => ({ name: STACK, networks, services });

/** The PlanError planStack throws, or a failed assertion when it does not throw one. */
function refusal(t: { fail: (message: string) => unknown }, fn: () => unknown): PlanError | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlanError) return err;
    t.fail(`not a PlanError: ${String(err)}`);
    return undefined;
  }
  t.fail('not refused');
  return undefined;
}

// A deployed `shop_web` on the stack's default network (an existing network), published
// 8080->80 and an auto-assigned 30005->443, with a VIP and its compose alias.
const dflt = net(`${STACK}_default`, '10.20.0.0/24', { labels: owned() });
const deployedWeb = svc(`${STACK}_web`, {
  ports: [
    { protocol: 'tcp', target: 80, published: 8080, mode: 'ingress' },
    { protocol: 'tcp', target: 443, published: 30005, mode: 'ingress' },
  ],
  networks: [{ network: dflt.id, vip: '10.20.0.2', aliases: ['web'] }],
});
const webFile = (o: Parameters<typeof stackService>[1] = {}) => stackService('web', { ports: [{ target: 80, published: 8080 }, { target: 443 }], ...o });
const deployed = (o: Partial<Current> = {}) => state({ networks: [dflt], services: [deployedWeb], ...o });

t.test('an unchanged service is not written', async (t) => {
  const plan = planStack(stack([webFile()]), deployed(), { prune: false });
  t.same(plan.unchanged, [`${STACK}_web`]);
  t.same(plan.updateServices, []);
  t.same(plan.createServices, []);
  t.same(plan.createNetworks, [], 'the existing network is used, not created');
  t.same(plan.warnings, []);
  // Spelled differently but the same: defaults written out, alias in another case, labels in another order.
  const spelled = webFile({
    endpointMode: 'vip',
    lb: 'rr',
    proxyProtocol: 'none',
    ports: [{ target: 443, protocol: 'tcp', mode: 'ingress' }, { target: 80, published: 8080, protocol: 'tcp' }],
    networks: [{ target: `${STACK}_default`, aliases: ['WEB', `${STACK}_web`] }],
  });
  t.equal(serviceDiff(deployedWeb, spelled.spec, (ref) => (ref === dflt.name ? dflt.id : undefined)), undefined, 'defaults, port order, alias case and own name make no difference');
});

t.test('a changed field is the only field of the update', async (t) => {
  const hc = { interval: 5000, timeout: 2000, retries: 3 };
  const back = net(`${STACK}_back`, '10.21.0.0/24', { labels: owned() });
  const netId = (ref: string) => [dflt, back].find((n) => n.name === ref || n.id === ref)?.id;
  const cases: Array<[string, Parameters<typeof stackService>[1], Record<string, unknown>, Partial<Service>?]> = [
    ['endpoint mode', { endpointMode: 'dnsrr' }, { endpointMode: 'dnsrr' }],
    ['scheduler', { lb: 'lc' }, { lb: 'lc' }],
    ['PROXY protocol', { proxyProtocol: 'v2' }, { proxyProtocol: 'v2' }],
    ['health check added', { healthCheck: hc }, { healthCheck: hc }],
    ['health check changed', { healthCheck: { ...hc, retries: 5 } }, { healthCheck: { ...hc, retries: 5 } }, { healthCheck: hc }],
    ['health check removed', {}, { healthCheck: null }, { healthCheck: hc }],
    ['a published port', { ports: [{ target: 80, published: 8081 }, { target: 443 }] }, { ports: [{ target: 80, published: 8081 }, { target: 443 }] }],
    ['a port protocol', { ports: [{ target: 80, published: 8080, protocol: 'udp' }, { target: 443 }] }, { ports: [{ target: 80, published: 8080, protocol: 'udp' }, { target: 443 }] }],
    ['a port mode', { ports: [{ target: 80, published: 8080, mode: 'host' }, { target: 443 }] }, { ports: [{ target: 80, published: 8080, mode: 'host' }, { target: 443 }] }],
    ['a port removed', { ports: [{ target: 80, published: 8080 }] }, { ports: [{ target: 80, published: 8080 }] }],
    ['an explicit port made auto (a fresh one, as the agent does)', { ports: [{ target: 80 }, { target: 443 }] }, { ports: [{ target: 80 }, { target: 443 }] }],
    ['an alias', { networks: [{ target: dflt.name, aliases: ['web', 'www'] }] }, { networks: [{ target: dflt.name, aliases: ['web', 'www'] }] }],
    ['a fixed VIP', { networks: [{ target: dflt.name, aliases: ['web'], ipv4Address: '10.20.0.50' }] }, { networks: [{ target: dflt.name, aliases: ['web'], ipv4Address: '10.20.0.50' }] }],
    ['another network', { networks: [{ target: dflt.name, aliases: ['web'] }, { target: back.name, aliases: ['web'] }] }, { networks: [{ target: dflt.name, aliases: ['web'] }, { target: back.name, aliases: ['web'] }] }],
    ['a label', { labels: { ...owned(), tier: 'front' } }, { labels: { ...owned(), tier: 'front' } }],
  ];
  for (const [what, change, want, before] of cases) {
    const cur = { ...deployedWeb, ...before };
    t.strictSame(serviceDiff(cur, webFile(change).spec, netId), want, what);
    const plan = planStack(stack([webFile(change)], [stackNetwork('default'), stackNetwork('back')]), deployed({ networks: [dflt, back], services: [cur] }), { prune: false });
    t.strictSame(plan.updateServices, [{ index: 0, name: `${STACK}_web`, update: want }], `${what}: planned as one update`);
    t.same(plan.unchanged, [], `${what}: not unchanged`);
  }
  t.equal(serviceDiff(deployedWeb, webFile({ networks: [{ target: dflt.name, aliases: ['web'], ipv4Address: '10.20.0.2' }] }).spec, netId), undefined, 'the VIP it has, now fixed: no change');
});

t.test('an auto-published port matches the port assigned before', async (t) => {
  const plan = planStack(stack([webFile({ ports: [{ target: 443 }, { target: 80, published: 8080 }] })]), deployed(), { prune: false });
  t.same(plan.unchanged, [`${STACK}_web`], '443 -> 30005 (auto range) is the same port');
  const explicit = svc(`${STACK}_web`, { ...deployedWeb, ports: [{ protocol: 'tcp', target: 443, published: 8443, mode: 'ingress' }] });
  t.same(serviceDiff(explicit, { name: explicit.name, ports: [{ target: 443 }], networks: [{ target: dflt.name, aliases: ['web'] }], labels: owned() }, () => dflt.id), { ports: [{ target: 443 }] }, 'a port published explicitly (8443) is not what "auto" keeps');
  t.same(serviceDiff(deployedWeb, webFile({ ports: [{ target: 80, published: 8080 }, { target: 443, protocol: 'udp' }] }).spec, () => dflt.id), { ports: [{ target: 80, published: 8080 }, { target: 443, protocol: 'udp' }] }, 'auto, but another protocol');
});

t.test('a port moving between two services of the stack: the freeing update first; a swap is refused', async (t) => {
  const a = svc(`${STACK}_a`, { ports: [{ protocol: 'tcp', target: 80, published: 8080, mode: 'ingress' }] });
  const b = svc(`${STACK}_b`, { ports: [{ protocol: 'tcp', target: 80, published: 9090, mode: 'ingress' }] });
  const cur = state({ networks: [dflt], services: [a, b] });
  // b (first in the file) takes 8080, which a gives up for 8081.
  const moved = planStack(stack([stackService('b', { ports: [{ target: 80, published: 8080 }] }), stackService('a', { ports: [{ target: 80, published: 8081 }] })]), cur, { prune: false });
  t.same(
    moved.updateServices.map((u) => u.name),
    [`${STACK}_a`, `${STACK}_b`],
    'a frees 8080 before b claims it',
  );
  t.same(moved.updateServices.map((u) => u.index), [1, 0], 'indices still name the file order');
  const inOrder = planStack(stack([stackService('a', { ports: [{ target: 80, published: 8081 }] }), stackService('b', { ports: [{ target: 80, published: 8080 }] })]), cur, { prune: false });
  t.same(inOrder.updateServices.map((u) => u.name), [`${STACK}_a`, `${STACK}_b`], 'already in a good order: kept');

  const err = refusal(t, () => planStack(stack([stackService('a', { ports: [{ target: 80, published: 9090 }] }), stackService('b', { ports: [{ target: 80, published: 8080 }] })]), cur, { prune: false }));
  t.match(err?.field, /^services\[[01]\]\.ports$/, 'a swap names a port list');
  t.match(err?.problem, /swap between shop_a and shop_b/);
});

t.test('a port held outside the stack is refused at its field', async (t) => {
  const other = svc('lone', { labels: {}, ports: [{ protocol: 'udp', target: 53, published: 5353, mode: 'ingress' }] });
  const file = stack([stackService('web'), stackService('dns', { ports: [{ target: 53, published: 5353 }, { target: 53, published: 5353, protocol: 'udp' }] })]);
  const err = refusal(t, () => planStack(file, state({ networks: [dflt], services: [other] }), { prune: false }));
  t.equal(err?.field, 'services[1].ports[1].published');
  t.match(err?.problem, /5353\/udp is already published by service lone/);
  t.ok(planStack(stack([stackService('dns', { ports: [{ target: 53, published: 5353 }] })]), state({ networks: [dflt], services: [other] }), { prune: false }), 'the same number over tcp is free');
});

t.test('services gone from the file: removed with --prune, else kept with a warning', async (t) => {
  const gone = svc(`${STACK}_old`, { ports: [{ protocol: 'tcp', target: 80, published: 7070, mode: 'ingress' }] });
  const foreign = svc('other_old', { labels: owned('other') });
  const cur = deployed({ services: [deployedWeb, gone, foreign] });
  const kept = planStack(stack([webFile()]), cur, { prune: false });
  t.same(kept.removeServices, []);
  t.same(kept.warnings, [`not in the file (kept; --prune removes them): ${STACK}_old`], 'only this stack\'s left-over is named');
  const pruned = planStack(stack([webFile()]), cur, { prune: true });
  t.same(pruned.removeServices.map((s) => s.name), [`${STACK}_old`], 'only this stack\'s service');
  t.same(pruned.warnings, []);

  const claim = stack([webFile(), stackService('new', { ports: [{ target: 80, published: 7070 }] })]);
  t.equal(refusal(t, () => planStack(claim, cur, { prune: false }))?.field, 'services[1].ports[0].published', 'a kept left-over still holds its port');
  t.same(planStack(claim, cur, { prune: true }).createServices.map((c) => c.spec.name), [`${STACK}_new`], 'a pruned one gives it up');
});

t.test('networks: external, existing, new, overlapping', async (t) => {
  const withExt = (ext: StackNetwork) => stack([stackService('web', { networks: [{ target: ext.name, aliases: ['web'] }] })], [ext]);
  const missing = refusal(t, () => planStack(withExt(stackNetwork('shared', { external: true })), state(), { prune: false }));
  t.equal(missing?.field, 'networks[0]');
  t.match(missing?.problem, /external network shared not found/);
  const shared = net('shared', '10.30.0.0/24');
  const found = planStack(withExt(stackNetwork('shared', { external: true })), state({ networks: [shared] }), { prune: false });
  t.same(found.createNetworks, [], 'an external network is never created');
  t.same(found.createServices[0]?.spec.networks, [{ target: 'shared', aliases: ['web'] }]);

  const cur = state({ networks: [dflt] });
  const same = planStack(stack([stackService('web')], [stackNetwork('default', { subnet: '10.20.0.0/24' })]), cur, { prune: false });
  t.same(same.warnings, [], 'an existing network as the file says: no warning');
  for (const [what, n] of [
    ['another subnet', stackNetwork('default', { subnet: '10.99.0.0/24' })],
    ['encrypted', stackNetwork('default', { encrypted: true })],
  ] as const) {
    const plan = planStack(stack([stackService('web')], [n]), cur, { prune: false });
    t.same(plan.createNetworks, [], `${what}: not re-created`);
    t.match(plan.warnings, [/network shop_default exists with other settings; it is used as it is/], `${what}: a warning`);
  }

  const overlap = refusal(t, () => planStack(stack([stackService('web', { networks: [{ target: `${STACK}_a` }, { target: `${STACK}_b` }] })], [stackNetwork('a', { subnet: '10.40.0.0/24' }), stackNetwork('b', { subnet: '10.20.0.128/25' })]), cur, { prune: false }));
  t.equal(overlap?.field, 'networks[1].subnet');
  t.match(overlap?.problem, /10\.20\.0\.128\/25 overlaps network shop_default \(10\.20\.0\.0\/24\)/);
  const inStack = refusal(t, () => planStack(stack([stackService('web', { networks: [{ target: `${STACK}_a` }, { target: `${STACK}_b` }] })], [stackNetwork('a', { subnet: '10.40.0.0/16' }), stackNetwork('b', { subnet: '10.40.7.0/24' })]), state(), { prune: false }));
  t.equal(inStack?.field, 'networks[1].subnet', 'two new networks of the stack overlap');
  t.match(inStack?.problem, /overlaps network shop_a/);

  const twice = [stackNetwork('a', { name: 'one' }), stackNetwork('b', { name: 'one' })];
  const named = refusal(t, () => planStack(stack([stackService('web', { networks: [{ target: 'one' }] })], twice), state(), { prune: false }));
  t.equal(named?.field, 'networks[1].name', 'two keys, one network name: it would be created twice');
  t.match(named?.problem, /also the name of networks\.a/);
  const ext = [stackNetwork('a', { external: true, name: 'one' }), stackNetwork('b', { external: true, name: 'one' })];
  t.same(planStack(stack([stackService('web', { networks: [{ target: 'one' }] })], ext), state({ networks: [net('one', '10.31.0.0/24')] }), { prune: false }).createNetworks, [], 'two keys for one external network: nothing to create, fine');
});

t.test('new networks: those with a subnet are created before those the agent allocates one for', async (t) => {
  const nets = [stackNetwork('auto'), stackNetwork('fixed', { subnet: '10.0.1.0/24' }), stackNetwork('auto2'), stackNetwork('fixed2', { subnet: '10.0.2.0/24' })];
  const plan = planStack(stack([stackService('web', { networks: nets.map((n) => ({ target: n.name })) })], nets), state(), { prune: false });
  t.same(
    plan.createNetworks.map((c) => [c.index, c.spec.name]),
    [
      [1, `${STACK}_fixed`],
      [3, `${STACK}_fixed2`],
      [0, `${STACK}_auto`],
      [2, `${STACK}_auto2`],
    ],
  );
});

t.test('ipv4Address: in the subnet, a host address, free, vip mode, a known subnet', async (t) => {
  const other = svc('lone', { labels: {}, networks: [{ network: dflt.id, vip: '10.20.0.9' }] });
  const held = task('lone.1', other.id, [{ network: dflt.id, ip: '10.20.0.10' }]);
  const cur = state({ networks: [dflt], services: [other], tasks: [held] });
  const at = (ip: string, o: Parameters<typeof stackService>[1] = {}) => stack([stackService('web'), stackService('api', { networks: [{ target: dflt.name, aliases: ['api'], ipv4Address: ip }], ...o })]);
  const cases: Array<[string, StackSpec, RegExp]> = [
    ['outside the subnet', at('10.21.0.5'), /10\.21\.0\.5 is not in the network's subnet 10\.20\.0\.0\/24/],
    ['the gateway', at('10.20.0.1'), /10\.20\.0\.1 is the network, broadcast or gateway address/],
    ['the network address', at('10.20.0.0'), /network, broadcast or gateway/],
    ['the broadcast address', at('10.20.0.255'), /network, broadcast or gateway/],
    ['a VIP of another service', at('10.20.0.9'), /10\.20\.0\.9 is already used by lone/],
    ['a task address', at('10.20.0.10'), /10\.20\.0\.10 is already used by lone\.1/],
    ['in dnsrr mode', at('10.20.0.50', { endpointMode: 'dnsrr' }), /dnsrr service has no virtual IP/],
  ];
  for (const [what, file, problem] of cases) {
    const err = refusal(t, () => planStack(file, cur, { prune: false }));
    t.equal(err?.field, 'services[1].networks[0].ipv4Address', `${what}: the field`);
    t.match(err?.problem, problem, what);
  }
  t.same(planStack(at('10.20.0.50'), cur, { prune: false }).createServices[1]?.spec.networks, [{ target: dflt.name, aliases: ['api'], ipv4Address: '10.20.0.50' }], 'a free host address');

  const twice = stack([stackService('web', { networks: [{ target: dflt.name, ipv4Address: '10.20.0.50' }] }), stackService('api', { networks: [{ target: dflt.name, ipv4Address: '10.20.0.50' }] })]);
  const err = refusal(t, () => planStack(twice, cur, { prune: false }));
  t.equal(err?.field, 'services[1].networks[0].ipv4Address', 'two services of the stack ask one address: the second');
  t.match(err?.problem, /already used by shop_web/);

  const ownVip = svc(`${STACK}_api`, { networks: [{ network: dflt.id, vip: '10.20.0.60', aliases: ['api'] }] });
  t.same(planStack(at('10.20.0.60'), state({ networks: [dflt], services: [ownVip] }), { prune: false }).unchanged, [`${STACK}_api`], 'its own VIP, now fixed: fine, and no change');

  const unknown = stack([stackService('api', { networks: [{ target: `${STACK}_new`, ipv4Address: '10.0.9.10' }] })], [stackNetwork('new')]);
  const noSubnet = refusal(t, () => planStack(unknown, state(), { prune: false }));
  t.equal(noSubnet?.field, 'services[0].networks[0].ipv4Address', 'a network the agent gives a subnet: the address cannot be checked');
  t.match(noSubnet?.problem, /needs the network's subnet/);
  const known = stack([stackService('api', { networks: [{ target: `${STACK}_new`, ipv4Address: '10.0.9.1' }] })], [stackNetwork('new', { subnet: '10.0.9.0/24' })]);
  t.match(refusal(t, () => planStack(known, state(), { prune: false }))?.problem, /gateway/, "a new network's subnet from the file: checked, gateway included");
});

t.test('aliases: a clash outside the stack or inside it is refused', async (t) => {
  const lone = svc('cache', { labels: {}, networks: [{ network: dflt.id, vip: '10.20.0.9', aliases: ['redis'] }] });
  const cur = state({ networks: [dflt], services: [lone] });
  const withAliases = (aliases: string[]) => stack([stackService('web'), stackService('api', { networks: [{ target: dflt.name, aliases }] })]);
  const byName = refusal(t, () => planStack(withAliases(['api', 'cache']), cur, { prune: false }));
  t.equal(byName?.field, 'services[1].networks[0].aliases[1]');
  t.match(byName?.problem, /alias cache clashes with service cache on network shop_default/);
  const byAlias = refusal(t, () => planStack(withAliases(['REDIS']), cur, { prune: false }));
  t.equal(byAlias?.field, 'services[1].networks[0].aliases[0]');
  t.match(byAlias?.problem, /alias REDIS clashes with an alias of service cache/);

  const inStack = refusal(t, () => planStack(withAliases(['api', 'web']), state({ networks: [dflt] }), { prune: false }));
  t.equal(inStack?.field, 'services[1].networks[0].aliases[1]', 'two new services of the stack: the second is refused');
  t.match(inStack?.problem, /alias web clashes with an alias of service shop_web/);
  const nameVsAlias = refusal(t, () => planStack(stack([stackService('web', { networks: [{ target: dflt.name, aliases: ['shop_api'] }] }), stackService('api')]), state({ networks: [dflt] }), { prune: false }));
  t.equal(nameVsAlias?.field, 'services[1].name', "a later service's name that an earlier one has as an alias");

  const elsewhere = net('elsewhere', '10.22.0.0/24');
  const far = svc('far', { labels: {}, networks: [{ network: elsewhere.id, vip: '10.22.0.2', aliases: ['web'] }] });
  t.ok(planStack(stack([stackService('web')]), state({ networks: [dflt, elsewhere], services: [far] }), { prune: false }), 'the same alias on another network is no clash');
  t.same(planStack(stack([webFile()]), deployed(), { prune: false }).unchanged, [`${STACK}_web`], 'a re-deploy does not clash with itself');
});

t.test('a service name taken by another stack or by a service outside any stack', async (t) => {
  const cases: Array<[string, Service, RegExp]> = [
    ['another stack', svc(`${STACK}_web`, { labels: owned('other') }), /service shop_web belongs to stack other/],
    ['no stack', svc(`${STACK}_web`, { labels: {} }), /service shop_web exists and is not part of a stack/],
  ];
  for (const [what, taken, problem] of cases) {
    const err = refusal(t, () => planStack(stack([stackService('db'), webFile()]), state({ networks: [dflt], services: [taken] }), { prune: false }));
    t.equal(err?.field, 'services[1].name', what);
    t.match(err?.problem, problem, what);
  }
});

t.test('a plan error keeps the StackSpec field apart from the problem', async (t) => {
  const err = refusal(t, () => planStack(stack([stackService('web', { lb: 'fastest' as ServiceSpec['lb'] })]), state({ networks: [dflt] }), { prune: false }));
  t.equal(err?.field, 'services[0].lb', "the agent's schema, at the service's field");
  t.equal(err?.code, 'EPLAN');
  t.equal(err?.message, `${err?.field}: ${err?.problem}`);
  const dup = refusal(t, () => planStack(stack([stackService('web', { ports: [{ target: 80, published: 8080 }, { target: 81, published: 8080 }] })]), state({ networks: [dflt] }), { prune: false }));
  t.equal(dup?.field, 'services[0].ports[1].published', 'a port given twice in one service, as the agent refuses it');
});
