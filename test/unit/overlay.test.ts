/** Pure parts of the overlay: MAC derivation, ARP proxy frames, and the view -> plan mapping. */
import t from 'tap';
import { arpReply, formatMac, macForIp, parseArpRequest } from '../../src/overlay/index.js';
import { overlayPlan, vipBackendsOf } from '../../src/agent/overlay-plan.js';
import type { Network, Node, Service, Task } from '../../src/control/schema.js';

t.test('MACs are derived from IPs: locally administered, unicast', async (t) => {
  for (const [ip, mac] of [
    ['10.0.1.2', '02:42:0a:00:01:02'],
    ['172.17.0.2', '02:42:ac:11:00:02'],
    ['255.255.255.255', '02:42:ff:ff:ff:ff'],
  ] as const) {
    t.equal(formatMac(macForIp(ip)), mac, ip);
    t.equal(macForIp(ip)[0]! & 0x01, 0, 'not a group address');
    t.equal(macForIp(ip)[0]! & 0x02, 2, 'locally administered');
  }
});

/** An ARP request as a Linux host sends it (RFC 826), Ethernet broadcast. */
function request(senderMac: string, senderIp: string, targetIp: string): Buffer {
  const b = Buffer.alloc(42);
  b.fill(0xff, 0, 6);
  Buffer.from(senderMac.split(':').map((x) => parseInt(x, 16))).copy(b, 6);
  b.writeUInt16BE(0x0806, 12);
  b.writeUInt16BE(1, 14);
  b.writeUInt16BE(0x0800, 16);
  b[18] = 6;
  b[19] = 4;
  b.writeUInt16BE(1, 20);
  Buffer.from(senderMac.split(':').map((x) => parseInt(x, 16))).copy(b, 22);
  Buffer.from(senderIp.split('.').map(Number)).copy(b, 28);
  Buffer.from(targetIp.split('.').map(Number)).copy(b, 38);
  return b;
}

t.test('ARP: requests parsed, replies built field by field', async (t) => {
  const req = parseArpRequest(request('02:42:0a:00:01:05', '10.0.1.5', '10.0.1.9'));
  t.ok(req);
  t.equal(req!.senderIp, '10.0.1.5');
  t.equal(req!.targetIp, '10.0.1.9');
  const reply = arpReply(req!, macForIp('10.0.1.9'));
  t.equal(reply.length, 42);
  t.equal(formatMac(reply.subarray(0, 6)), '02:42:0a:00:01:05', 'to the asker');
  t.equal(formatMac(reply.subarray(6, 12)), '02:42:0a:00:01:09', 'from the target MAC');
  t.equal(reply.readUInt16BE(20), 2, 'op reply');
  t.equal(formatMac(reply.subarray(22, 28)), '02:42:0a:00:01:09', 'sender hardware address');
  t.same([...reply.subarray(28, 32)], [10, 0, 1, 9], 'sender protocol address');
  t.equal(formatMac(reply.subarray(32, 38)), '02:42:0a:00:01:05', 'target hardware address');
  t.same([...reply.subarray(38, 42)], [10, 0, 1, 5], 'target protocol address');
});

t.test('ARP: anything but an Ethernet/IPv4 request is ignored', async (t) => {
  const good = request('02:42:0a:00:01:05', '10.0.1.5', '10.0.1.9');
  const cases: Array<[string, (b: Buffer) => Buffer]> = [
    ['short', (b) => b.subarray(0, 30)],
    ['IPv4, not ARP', (b) => (b.writeUInt16BE(0x0800, 12), b)],
    ['a reply', (b) => (b.writeUInt16BE(2, 20), b)],
    ['hardware type 6', (b) => (b.writeUInt16BE(6, 14), b)],
    ['protocol IPv6', (b) => (b.writeUInt16BE(0x86dd, 16), b)],
    ['hardware length 8', (b) => ((b[18] = 8), b)],
  ];
  for (const [name, mutate] of cases) t.equal(parseArpRequest(mutate(Buffer.from(good))), undefined, name);
});

const node = (id: string, addr: string, addresses?: Node['addresses']): Node => ({ id, addr, hostname: id, availability: 'active', labels: {}, status: 'ready', lastSeen: 0, ...(addresses && { addresses }) });
const network = (id: string, vni: number, subnet: string, encrypted = false): Network => ({ id, name: id, driver: 'overlay', vni, subnet, gateway: subnet.replace(/0\/24$/, '1'), encrypted, attachable: false, labels: {}, createdAt: 0 });
const service = (id: string, networks: Service['networks'], endpointMode: Service['endpointMode'] = 'vip'): Service => ({ id, name: id, endpointMode, ports: [], networks, lb: 'rr', proxyProtocol: 'none', labels: {}, createdAt: 0, updatedAt: 0 });
const task = (id: string, nodeId: string, addresses: Task['addresses'], netns?: string): Task => ({ id, name: id, service: 's', node: nodeId, addresses, weight: 1, state: 'running', createdAt: 0, ...(netns && { netns }) });

t.test('plan: networks with our address, VIPs, remotes for FDB/ARP, local containers', async (t) => {
  const view = {
    nodes: new Map([
      ['me', node('me', '192.0.2.1', [{ network: 'a', ip: '10.0.1.2' }])],
      ['peer', node('peer', '192.0.2.2', [{ network: 'a', ip: '10.0.1.3' }, { network: 'b', ip: '10.0.2.3' }])],
    ]),
    networks: new Map([
      ['a', network('a', 4096, '10.0.1.0/24')],
      ['b', network('b', 4097, '10.0.2.0/24')],
      ['sec', network('sec', 4098, '10.0.3.0/24', true)],
    ]),
    services: new Map([
      ['web', service('web', [{ network: 'a', vip: '10.0.1.200' }])],
      ['db', service('db', [{ network: 'a', vip: '10.0.1.100' }, { network: 'b', vip: '10.0.2.100' }])],
      ['rr', service('rr', [{ network: 'a' }], 'dnsrr')],
    ]),
    tasks: new Map([
      ['t1', task('t1', 'me', [{ network: 'a', ip: '10.0.1.10' }], '/run/netns/c1')],
      ['t2', task('t2', 'peer', [{ network: 'a', ip: '10.0.1.11' }])],
      ['t3', task('t3', 'ghost', [{ network: 'a', ip: '10.0.1.12' }])],
      ['t4', task('t4', 'me', [{ network: 'a', ip: '10.0.1.13' }])],
    ]),
    keys: new Map(),
  };
  const { plan, missing, skipped } = overlayPlan(view, { self: 'me', epoch: '0123456789abcdef', mtu: 1450 });
  t.same(plan.networks, [{ id: 'a', name: 'a', vni: 4096, subnet: '10.0.1.0/24', gateway: '10.0.1.1', nodeIp: '10.0.1.2', vips: ['10.0.1.100', '10.0.1.200'], mtu: 1450 }], 'only networks we have an address on; VIPs sorted, none for dnsrr');
  t.same(missing.map((n) => n.id), ['b'], 'an address to claim on b');
  t.same(skipped.map((s) => s.network.id), ['sec'], 'an encrypted network without its key ring is not carried (never in clear text)');
  t.same(
    plan.remotes.map((r) => `${r.vni} ${r.ip} ${r.nodeAddr}`).sort(),
    ['4096 10.0.1.11 192.0.2.2', '4096 10.0.1.3 192.0.2.2', '4097 10.0.2.3 192.0.2.2'],
    "peer's own addresses and tasks; not ours, not tasks of unknown nodes",
  );
  t.same(plan.peers, ['192.0.2.2'], 'VXLAN accepted from the other nodes only');
  t.same(plan.containers, [{ taskId: 't1', netns: '/run/netns/c1', network: 'a', ip: '10.0.1.10' }], 'local tasks with a namespace only');
});

t.test('VIP backends: tasks with an address on that network', async (t) => {
  const tasks = [task('x', 'n', [{ network: 'a', ip: '10.0.1.5' }]), task('y', 'n', [{ network: 'b', ip: '10.0.2.5' }]), task('z', 'n', [{ network: 'b', ip: '10.0.2.6' }, { network: 'a', ip: '10.0.1.6' }])];
  t.same(vipBackendsOf(tasks, 'a').map((b) => `${b.task.id} ${b.ip}`), ['x 10.0.1.5', 'z 10.0.1.6']);
});
