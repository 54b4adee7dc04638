/**
 * ESP of encrypted networks against an independent implementation (test/fixtures/esp.py:
 * its own HKDF, scapy's SecurityAssociation):
 *   - deriveSa (src/overlay/esp.ts) derives the SAs esp.py derives;
 *   - esp.py seals and opens its own packets (the fixture is sane);
 *   - a reference sealer written here from the wire format (node:crypto AES-GCM) is opened
 *     by scapy, and scapy's packets by the reference opener: the wire format as described
 *     in the engine's docs is the one scapy speaks, independently of the C engine.
 */
import t from 'tap';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { deriveSa, type Cipher, type SaEnds } from '../../src/overlay/index.js';
import { deriveSaPy, espDecrypt, espEncrypt, scapyMissing, type Decrypted, type EspSa } from '../helpers/scapy.js';
import { buildUdp4 } from '../helpers/rawsend.js';

const skip = scapyMissing() ?? false;

const ESP_PORT = 4500; // RFC 3948
const VXLAN_PORT = 4789; // RFC 7348
const IPPROTO_UDP = 17;
const IV_BYTES = 8;
const ICV_BYTES = 16;
const VXLAN_FLAG_I = 0x08;
const TWO32 = 1n << 32n;

const cases: Array<{ cipher: Cipher; ringKey: string; ends: SaEnds }> = [
  { cipher: 'aes-128-gcm', ringKey: '00'.repeat(32), ends: { vni: 4096, gen: 0, sender: '10.213.20.1', receiver: '10.213.20.2', senderEpoch: '0000000000000000', receiverEpoch: '0000000000000001' } },
  { cipher: 'aes-256-gcm', ringKey: 'a5'.repeat(32), ends: { vni: 4096, gen: 1, sender: '10.213.20.1', receiver: '10.213.20.2', senderEpoch: '0123456789abcdef', receiverEpoch: 'fedcba9876543210' } },
  { cipher: 'aes-128-gcm', ringKey: '0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0', ends: { vni: 16777215, gen: 4294967295, sender: '255.255.255.254', receiver: '1.2.3.4', senderEpoch: 'ffffffffffffffff', receiverEpoch: '8000000000000000' } },
  { cipher: 'aes-256-gcm', ringKey: '0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0', ends: { vni: 4097, gen: 7, sender: '1.2.3.4', receiver: '255.255.255.254', senderEpoch: '8000000000000000', receiverEpoch: 'ffffffffffffffff' } },
];

t.test('deriveSa derives the SAs esp.py derives (its own HKDF-SHA256)', { skip }, async (t) => {
  const spis = new Set<number>();
  for (const c of cases) {
    const ikm = Buffer.from(c.ringKey, 'hex');
    const py = await deriveSaPy({ ringKey: ikm, cipher: c.cipher, ...c.ends });
    const out = deriveSa(ikm, c.cipher, c.ends, 'out');
    const name = `${c.cipher} vni ${c.ends.vni} gen ${c.ends.gen} ${c.ends.sender} -> ${c.ends.receiver}`;
    t.equal(out.key.toString('hex'), py.key.toString('hex'), `${name}: key`);
    t.equal(out.key.length, c.cipher === 'aes-128-gcm' ? 16 : 32, `${name}: key length`);
    t.equal(out.salt.toString('hex'), py.salt.toString('hex'), `${name}: salt`);
    t.equal(out.spi, py.spi, `${name}: spi`);
    t.equal(out.peer, c.ends.receiver, `${name}: outbound peer is the receiver`);
    const inb = deriveSa(ikm, c.cipher, c.ends, 'in');
    t.same([inb.key, inb.salt, inb.spi, inb.peer], [out.key, out.salt, out.spi, c.ends.sender], `${name}: the receiver derives the same SA`);
    spis.add(out.spi);
  }
  t.equal(spis.size, cases.length, 'every case has its own SPI');
});

/** An inner Ethernet/IPv4/UDP frame with `payloadLen` bytes of payload. */
function innerFrame(payloadLen: number): Buffer {
  const udp = buildUdp4({ src: '10.0.1.5', dst: '10.0.1.6', sport: 40000, dport: 53, payload: Buffer.alloc(payloadLen, 0x61) });
  const eth = Buffer.from('02420a00010602420a0001050800', 'hex');
  return Buffer.concat([eth, udp]);
}

/**
 * The reference sealer, from the wire format alone:
 *   IPv4 | UDP 4500 -> 4500 (checksum 0) | SPI | seq low 32 | IV = seq (64, BE)
 *   | AES-GCM(salt | IV; AAD = SPI | seq high 32 | seq low 32) of
 *     [ UDP 4789 -> 4789 (checksum 0) | VXLAN (I, VNI) | frame | 1, 2, 3.. | pad length | 17 ]
 *   | ICV (16)
 */
function seal(sa: EspSa, cipher: Cipher, o: { seq: bigint; src: string; dst: string; vni: number; frame: Buffer }): Buffer {
  const vxlan = Buffer.alloc(8);
  vxlan[0] = VXLAN_FLAG_I;
  vxlan.writeUIntBE(o.vni, 4, 3);
  const innerLen = 8 + vxlan.length + o.frame.length;
  const innerUdp = Buffer.alloc(8);
  innerUdp.writeUInt16BE(VXLAN_PORT, 0);
  innerUdp.writeUInt16BE(VXLAN_PORT, 2);
  innerUdp.writeUInt16BE(innerLen, 4);
  const padLen = (4 - ((innerLen + 2) % 4)) % 4; // RFC 4303 2.4: payload + trailer to 4 bytes
  const trailer = Buffer.from([...Array.from({ length: padLen }, (_, i) => i + 1), padLen, IPPROTO_UDP]);
  const head = Buffer.alloc(8 + IV_BYTES);
  head.writeUInt32BE(sa.spi, 0);
  head.writeUInt32BE(Number(o.seq % TWO32), 4);
  head.writeBigUInt64BE(o.seq, 8);
  const aad = Buffer.alloc(12);
  aad.writeUInt32BE(sa.spi, 0);
  aad.writeUInt32BE(Number(o.seq / TWO32), 4);
  aad.writeUInt32BE(Number(o.seq % TWO32), 8);
  const c = createCipheriv(cipher, sa.key, Buffer.concat([sa.salt, head.subarray(8)]), { authTagLength: ICV_BYTES });
  c.setAAD(aad);
  const body = Buffer.concat([c.update(Buffer.concat([innerUdp, vxlan, o.frame, trailer])), c.final(), c.getAuthTag()]);
  return buildUdp4({ src: o.src, dst: o.dst, sport: ESP_PORT, dport: ESP_PORT, payload: Buffer.concat([head, body]), udpChecksum: 'zero', id: 0 });
}

/** The reference opener: the inner UDP datagram (and the trailer) of an ESP-in-UDP packet. */
function open(sa: EspSa, cipher: Cipher, packet: Buffer, esn: number): { inner: Buffer; padding: Buffer; nextHeader: number; spi: number; seq: number; udpLen: number; udpChecksum: number } {
  const ihl = (packet[0]! & 0x0f) * 4;
  const udp = packet.subarray(ihl);
  const esp = udp.subarray(8, udp.readUInt16BE(4));
  const spi = esp.readUInt32BE(0);
  const seq = esp.readUInt32BE(4);
  const aad = Buffer.alloc(12);
  aad.writeUInt32BE(spi, 0);
  aad.writeUInt32BE(esn, 4);
  aad.writeUInt32BE(seq, 8);
  const d = createDecipheriv(cipher, sa.key, Buffer.concat([sa.salt, esp.subarray(8, 16)]), { authTagLength: ICV_BYTES });
  d.setAAD(aad);
  d.setAuthTag(esp.subarray(esp.length - ICV_BYTES));
  const plain = Buffer.concat([d.update(esp.subarray(16, esp.length - ICV_BYTES)), d.final()]);
  const padLen = plain[plain.length - 2]!;
  const end = plain.length - 2 - padLen;
  return { inner: plain.subarray(0, end), padding: plain.subarray(end, plain.length - 2), nextHeader: plain[plain.length - 1]!, spi, seq, udpLen: udp.readUInt16BE(4), udpChecksum: udp.readUInt16BE(6) };
}

function saOf(c: (typeof cases)[number]): EspSa {
  const sa = deriveSa(Buffer.from(c.ringKey, 'hex'), c.cipher, c.ends, 'out');
  return { key: sa.key, salt: sa.salt, spi: sa.spi };
}

t.test('esp.py round trip: its packets open with the right ESN only', { skip }, async (t) => {
  const c = cases[1]!;
  const sa = saOf(c);
  const frame = innerFrame(100);
  const seqs = [1n, TWO32 - 1n, TWO32, 5n * TWO32 + 7n];
  const packets = await espEncrypt(
    sa,
    seqs.map((seq) => ({ seq, src: c.ends.sender, dst: c.ends.receiver, vni: c.ends.vni, frame })),
  );
  const ok = await espDecrypt(sa, packets, seqs.map((s) => Number(s / TWO32)));
  for (const [i, r] of ok.entries()) {
    t.ok(r.ok, `seq ${seqs[i]} opens: ${r.ok ? '' : r.message}`);
    const d = r as Decrypted;
    t.equal(d.seq, Number(seqs[i]! % TWO32), 'low 32 bits on the wire');
    t.equal(d.vni, c.ends.vni);
    t.same(d.frame, frame, 'the frame comes back');
  }
  const wrongEsn = await espDecrypt(sa, packets, seqs.map((s) => Number(s / TWO32) + 1));
  t.same(wrongEsn.map((r) => (r.ok ? 'ok' : r.error)), seqs.map(() => 'integrity'), 'another ESN fails the ICV check (it is in the AAD)');
  const other = { ...sa, key: Buffer.alloc(sa.key.length, 1) };
  t.same((await espDecrypt(other, packets.slice(0, 1)))[0]!.ok, false, 'another key fails');
  const spi = (await espDecrypt({ ...sa, spi: sa.spi + 1 }, packets.slice(0, 1)))[0]!;
  t.equal(spi.ok ? 'ok' : spi.error, 'spi', 'another SA\'s SPI is refused');
});

t.test('the wire format as written here is the one scapy speaks', { skip }, async (t) => {
  for (const c of cases.slice(0, 2)) {
    const sa = saOf(c);
    // Frame lengths for every amount of padding (0-3), sequence numbers on both sides of 2^32.
    const sealed = [0, 1, 2, 3].map((k) => ({ seq: k % 2 ? 3n * TWO32 + BigInt(k) : BigInt(k + 1), frame: innerFrame(60 + k) }));
    const packets = sealed.map((s) => seal(sa, c.cipher, { ...s, src: c.ends.sender, dst: c.ends.receiver, vni: c.ends.vni }));
    const got = await espDecrypt(sa, packets, sealed.map((s) => Number(s.seq / TWO32)));
    const pads = new Set<number>();
    for (const [i, r] of got.entries()) {
      const name = `${c.cipher} seq ${sealed[i]!.seq}`;
      if (!r.ok) {
        t.fail(`${name}: scapy could not open it: ${r.error} ${r.message}`);
        continue;
      }
      t.same(r.outer, { src: c.ends.sender, dst: c.ends.receiver, sport: ESP_PORT, dport: ESP_PORT, udpChecksum: 0 }, `${name}: outer`);
      t.equal(r.iv.readBigUInt64BE(0), sealed[i]!.seq, `${name}: IV is the sequence number`);
      t.same(r.innerUdp, { sport: VXLAN_PORT, dport: VXLAN_PORT, length: 16 + sealed[i]!.frame.length, checksum: 0 }, `${name}: inner UDP`);
      t.equal(r.vni, c.ends.vni, `${name}: VNI`);
      t.equal(r.vxlanFlags, VXLAN_FLAG_I, `${name}: VXLAN flags`);
      t.same(r.frame, sealed[i]!.frame, `${name}: frame`);
      t.equal(r.etherType, 0x0800, `${name}: inner IPv4`);
      t.same(r.ip?.src, '10.0.1.5', `${name}: inner source`);
      t.equal(r.nextHeader, IPPROTO_UDP, `${name}: next header`);
      t.same([...r.padding], Array.from({ length: r.padLen }, (_, j) => j + 1), `${name}: padding 1, 2, ..`);
      t.equal((r.inner.length + r.padLen + 2) % 4, 0, `${name}: aligned to 4 bytes`);
      pads.add(r.padLen);
    }
    t.same([...pads].sort(), [0, 1, 2, 3], `${c.cipher}: every padding length was exercised`);

    // And scapy's packets (random IVs) open with the reference opener.
    const scapyPackets = await espEncrypt(sa, sealed.map((s) => ({ ...s, src: c.ends.sender, dst: c.ends.receiver, vni: c.ends.vni })));
    for (const [i, p] of scapyPackets.entries()) {
      const s = sealed[i]!;
      const o = open(sa, c.cipher, p, Number(s.seq / TWO32));
      const name = `${c.cipher} scapy seq ${s.seq}`;
      t.equal(o.spi, sa.spi, `${name}: SPI`);
      t.equal(o.seq, Number(s.seq % TWO32), `${name}: seq`);
      t.equal(o.udpLen, p.length - 20, `${name}: UDP length`);
      t.equal(o.udpChecksum, 0, `${name}: UDP checksum 0`);
      t.equal(o.nextHeader, IPPROTO_UDP, `${name}: next header`);
      t.same(o.inner.subarray(16), s.frame, `${name}: frame`);
      t.equal(o.inner.readUInt16BE(2), VXLAN_PORT, `${name}: inner UDP to 4789`);
      t.equal(o.inner.readUIntBE(12, 3), c.ends.vni, `${name}: VNI`);
    }
  }
});
