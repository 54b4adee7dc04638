/**
 * The routing mesh with real sockets: a real agent process, real backend processes,
 * clients connecting to the published port. One agent serves every scheduler.
 */
import t from 'tap';
import { loopbackNet, startAgent, startBackends } from '../helpers/procs.js';
import { countBy, openConn, tcpRequest } from '../helpers/net.js';

const ip = loopbackNet();
const backendIp = ip(2);
const names = ['b1', 'b2', 'b3'];

const agent = await startAgent(t, { ip: ip(1) });
await startBackends(t, names.map((n, i) => `${n}@${backendIp}:${9001 + i}`));

async function service(name: string, port: number, lb: string, weights = [1, 1, 1], extra: string[] = []) {
  const r = await agent.cli('service', 'create', '--name', name, '--publish', `${port}:80`, '--lb', lb, ...extra);
  t.equal(r.code, 0, `create ${name}: ${r.stderr}`);
  for (const [i, n] of names.entries()) {
    const a = await agent.cli('task', 'add', '--service', name, '--addr', `${backendIp}:${9001 + i}`, '--weight', String(weights[i]), '--name', `${name}-${n}`);
    t.equal(a.code, 0, a.stderr);
  }
}

const who = (reply: string) => reply.split(' ')[0]!;

async function sequential(port: number, n: number, localAddress?: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(who(await tcpRequest(agent.ingress, port, 'hi', localAddress ? { localAddress } : {})));
  return out;
}

t.test('rr: equal split', async (t) => {
  await service('rr', 20001, 'rr');
  const c = countBy(await sequential(20001, 60));
  t.same([c.get('b1'), c.get('b2'), c.get('b3')], [20, 20, 20]);
});

t.test('wrr: split follows weights 3:2:1', async (t) => {
  await service('wrr', 20002, 'wrr', [3, 2, 1]);
  const c = countBy(await sequential(20002, 60));
  t.same([c.get('b1'), c.get('b2'), c.get('b3')], [30, 20, 10]);
});

t.test('lc and wlc: long-lived connections spread by active count (and weight)', async (t) => {
  for (const [lb, port, weights, expect] of [
    ['lc', 20003, [1, 1, 1], [3, 3, 3]],
    ['wlc', 20004, [2, 1, 1], [4, 2, 2]],
  ] as const) {
    await service(lb, port, lb, [...weights]);
    const conns = [];
    for (let i = 0; i < expect.reduce((a, b) => a + b, 0); i++) {
      const c = await openConn(agent.ingress, port);
      conns.push({ c, who: who(await c.ask('hi')) });
    }
    const c = countBy(conns.map((x) => x.who));
    t.same([c.get('b1'), c.get('b2'), c.get('b3')], [...expect], `${lb} split`);
    const listed = await agent.cli('conn', 'ls', '--service', lb, '--format', 'json');
    const flows = JSON.parse(listed.stdout) as Array<{ state: string; proto: string }>;
    t.equal(flows.filter((f) => f.state === 'ESTABLISHED' && f.proto === 'tcp').length, conns.length, 'conn ls shows every open flow');
    for (const x of conns) x.c.close();
  }
});

t.test('sh and mh: a client address always reaches the same task; clients spread', async (t) => {
  for (const [lb, port] of [['sh', 20005], ['mh', 20006]] as const) {
    await service(lb, port, lb);
    const chosen = new Set<string>();
    for (let h = 10; h < 40; h++) {
      const picks = new Set(await sequential(port, 3, ip(h)));
      t.equal(picks.size, 1, `${lb}: client ${ip(h)} sticks to one task`);
      chosen.add([...picks][0]!);
    }
    t.equal(chosen.size, 3, `${lb}: 30 clients use all 3 tasks`);
  }
});

t.test('PROXY protocol v1 and v2 carry the client address to the task', async (t) => {
  await service('pp1', 20007, 'rr', [1, 1, 1], ['--proxy-protocol', 'v1']);
  await service('pp2', 20008, 'rr', [1, 1, 1], ['--proxy-protocol', 'v2']);
  const r1 = await tcpRequest(agent.ingress, 20007, 'hi', { localAddress: ip(77) });
  t.match(r1, new RegExp(`^b\\d v1 ${ip(77).replace(/\./g, '\\.')}:\\d+$`));
  const r2 = await tcpRequest(agent.ingress, 20008, 'hi', { localAddress: ip(78) });
  t.match(r2, new RegExp(`^b\\d v2 ${ip(78).replace(/\./g, '\\.')}:\\d+$`));
  const plain = await tcpRequest(agent.ingress, 20001, 'hi', { localAddress: ip(79) });
  t.match(plain, /^b\d [\d.]+:\d+$/);
  t.notOk(plain.includes(ip(79)), 'without PROXY the task sees the mesh, not the client');
});

t.test('metrics count connections per service and per backend', async (t) => {
  const text = await agent.metrics();
  t.match(text, /swarmnet_service_connections_total\{service="rr"\} 61/);
  t.match(text, /swarmnet_backend_connections_total\{service="wrr",protocol="tcp",port="20002",backend="[\d.]+:9001",task="wrr-b1"\} 30/);
  t.match(text, /swarmnet_backend_bytes_sent_total\{service="rr"/);
});
