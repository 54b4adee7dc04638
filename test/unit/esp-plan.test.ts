/** Encrypted networks in the overlay plan (agent/overlay-plan.ts) and in `network inspect` (agent/api.ts). */
import t from 'tap';
import { overlayPlan } from '../../src/agent/overlay-plan.js';
import { encryptionView } from '../../src/agent/api.js';
import { encryptedMtu } from '../../src/overlay/index.js';
import type { KeyRing, Network, Node } from '../../src/control/schema.js';

const node = (id: string, addr: string, o: Partial<Node> = {}): Node => ({ id, addr, hostname: id, availability: 'active', labels: {}, status: 'ready', lastSeen: 0, ...o });
const network = (id: string, vni: number, subnet: string, o: Partial<Network> = {}): Network => ({ id, name: id, driver: 'overlay', vni, subnet, gateway: subnet.replace(/0\/24$/, '1'), encrypted: false, attachable: false, labels: {}, createdAt: 0, ...o });
const k1 = Buffer.alloc(32, 1);
const k2 = Buffer.alloc(32, 2);
const ring = (id: string, o: Partial<KeyRing> = {}): KeyRing => ({
  network: id,
  cipher: 'aes-256-gcm',
  keys: [
    { gen: 4, key: k1.toString('base64'), createdAt: 1_000 },
    { gen: 5, key: k2.toString('base64'), createdAt: 61_000 },
  ],
  primary: 4,
  ...o,
});

const EPOCH = '0123456789abcdef';

function view() {
  return {
    nodes: new Map([
      ['me', node('me', '192.0.2.1', { espEpoch: EPOCH, addresses: [{ network: 'clr', ip: '10.0.1.2' }, { network: 'sec', ip: '10.0.2.2' }, { network: 'raw', ip: '10.0.3.2' }] })],
      ['peer', node('peer', '192.0.2.2', { espEpoch: 'aaaaaaaaaaaaaaaa', addresses: [{ network: 'sec', ip: '10.0.2.3' }] })],
      ['old', node('old', '192.0.2.3', { addresses: [{ network: 'sec', ip: '10.0.2.4' }] })], // no overlay running (no epoch)
      ['gone', node('gone', '192.0.2.4', { status: 'removed', espEpoch: 'bbbbbbbbbbbbbbbb' })],
      // A dead node's record stays `ready` in the store: the one heard from last wins.
      ['rejoined-old', node('rejoined-old', '192.0.2.5', { lastSeen: 1000, espEpoch: 'cccccccccccccccc' })],
      ['rejoined-new', node('rejoined-new', '192.0.2.5', { lastSeen: 2000, espEpoch: 'dddddddddddddddd' })],
    ]),
    networks: new Map([
      ['clr', network('clr', 4096, '10.0.1.0/24')],
      ['sec', network('sec', 4097, '10.0.2.0/24', { encrypted: true, cipher: 'aes-256-gcm' })],
      ['raw', network('raw', 4098, '10.0.3.0/24', { encrypted: true })],
    ]),
    services: new Map(),
    tasks: new Map(),
    keys: new Map([['sec', ring('sec')]]),
  };
}

t.test('an encrypted network with its ring: lower MTU, keys decoded; a clear one keeps the overlay MTU', async (t) => {
  const { plan, skipped, missing } = overlayPlan(view(), { self: 'me', epoch: EPOCH, mtu: 1450 });
  const byId = new Map(plan.networks.map((n) => [n.id, n]));
  t.equal(byId.get('clr')!.mtu, 1450);
  t.equal(byId.get('clr')!.encryption, undefined, 'clear: no encryption');
  const sec = byId.get('sec')!;
  t.equal(sec.mtu, encryptedMtu(1450));
  t.equal(sec.mtu, 1408, '1450 - ESP overhead, rounded to 4');
  t.equal(sec.encryption!.cipher, 'aes-256-gcm');
  t.equal(sec.encryption!.primary, 4);
  t.same(sec.encryption!.keys.map((k) => k.gen), [4, 5], 'every key of the ring (receivers accept all)');
  t.ok(sec.encryption!.keys[0]!.key.equals(k1) && sec.encryption!.keys[1]!.key.equals(k2), 'keys as bytes');
  t.same(missing, []);
  t.same(
    skipped.map((s) => [s.network.id, s.reason]),
    [['raw', 'encrypted network: no key ring yet; not carried until it is there']],
    'an encrypted network without its ring is never carried (not in clear either)',
  );
  t.notOk(byId.has('raw'));
  t.same(overlayPlan(view(), { self: 'me', epoch: EPOCH, mtu: 9000 }).plan.networks.find((n) => n.id === 'sec')!.mtu, encryptedMtu(9000), 'follows --overlay-mtu');
});

t.test('epochs: ours, and the other nodes\' by underlay address', async (t) => {
  const { plan } = overlayPlan(view(), { self: 'me', epoch: EPOCH, mtu: 1450 });
  t.equal(plan.epoch, EPOCH);
  t.same(plan.epochs, { '192.0.2.2': 'aaaaaaaaaaaaaaaa', '192.0.2.5': 'dddddddddddddddd' }, 'not ours, none for a node without overlay or a removed one; the record heard from last wins an address');
  t.same(
    plan.remotes.filter((r) => r.vni === 4097).map((r) => `${r.ip} ${r.nodeAddr}`).sort(),
    ['10.0.2.3 192.0.2.2', '10.0.2.4 192.0.2.3'],
    'remotes of the encrypted network (SAs are made with those that have an epoch)',
  );
  t.notOk(plan.remotes.some((r) => r.vni === 4098), 'nothing of a network not carried');
});

t.test('a ring with a key of the wrong length is not carried', async (t) => {
  const v = view();
  v.keys.set('sec', ring('sec', { keys: [{ gen: 4, key: Buffer.alloc(16).toString('base64'), createdAt: 0 }] }));
  const { plan, skipped } = overlayPlan(v, { self: 'me', epoch: EPOCH, mtu: 1450 });
  t.notOk(plan.networks.some((n) => n.id === 'sec'));
  t.match(skipped.find((s) => s.network.id === 'sec')?.reason, /malformed/);
});

t.test('inspect: generations, ages and the SAs of this node; never a key', async (t) => {
  const net = network('sec', 4097, '10.0.2.0/24', { encrypted: true, cipher: 'aes-256-gcm' });
  const sas = [
    { network: 'sec', gen: 4, dir: 'out' as const, spi: 9000, peer: '192.0.2.2', seq: '18446744073709551615' },
    { network: 'sec', gen: 5, dir: 'in' as const, spi: 8001, peer: '192.0.2.2', seq: '0' },
    { network: 'sec', gen: 4, dir: 'in' as const, spi: 8000, peer: '192.0.2.2', seq: '12' },
  ];
  const v = encryptionView(net, ring('sec'), sas, 121_000);
  t.same(v, {
    cipher: 'aes-256-gcm',
    primary: 4,
    keys: [
      { gen: 4, createdAt: 1_000, ageSeconds: 120, primary: true },
      { gen: 5, createdAt: 61_000, ageSeconds: 60, primary: false },
    ],
    sas: [sas[2], sas[1], sas[0]],
  });
  t.notMatch(JSON.stringify(v), /"key"|AQEBAQ|AgICAg/, 'no key material');
  t.same(encryptionView(network('x', 1, '10.0.0.0/24', { encrypted: true }), undefined, [], 0), { cipher: 'aes-128-gcm', keys: [], sas: [] }, 'no ring yet');
});
