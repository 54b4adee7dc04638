/**
 * The packet helpers of the encrypted-overlay tests on a real two-host topology:
 * capture (libpcap on the bridge sees frames forwarded between the hosts), rawsend
 * (spoofed sources, replay of a captured packet) and esp.py's packets, sent by rawsend
 * and by scapy itself, captured and opened again.
 */
import type { ChildProcess } from 'node:child_process';
import t from 'tap';
import { createTopology, type Host } from '../helpers/netns.js';
import { killOnTeardown } from '../helpers/procs.js';
import { until } from '../helpers/net.js';
import { espPackets, ipv4Of, ipv4Packet, startCapture, topologyBridge, udpDatagrams, udpOf, udpPayloads } from '../helpers/capture.js';
import { buildUdp4, internetChecksum, ipv4HeaderChecksum, sendIpv4, sendUdp4 } from '../helpers/rawsend.js';
import { espDecrypt, espEncrypt, scapyMissing, type EspSa } from '../helpers/scapy.js';

const PORT = 4500;
const ICMP = 1;
const topo = createTopology(t, 2);
const [h1, h2] = topo.hosts as [Host, Host];

interface Received {
  from: string;
  port: number;
  data: Buffer;
}

/** A UDP socket on 0.0.0.0:`port` inside `h`, printing what it receives. */
async function receiver(h: Host, port: number): Promise<Received[]> {
  const script = `const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => console.log(JSON.stringify({ from: r.address, port: r.port, data: m.toString('hex') })));
s.bind(${port}, () => console.log('ready'));`;
  const child: ChildProcess = h.spawn(process.execPath, ['-e', script]);
  killOnTeardown(t, child);
  const got: Received[] = [];
  let buf = '';
  let ready = false;
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line === 'ready') ready = true;
      else {
        const r = JSON.parse(line) as { from: string; port: number; data: string };
        got.push({ from: r.from, port: r.port, data: Buffer.from(r.data, 'hex') });
      }
    }
  });
  await until(`receiver in ${h.ns}`, async () => ready, 10000);
  return got;
}

// In a hook rather than a top-level await: a failure here is then a failed test with
// its message in the TAP output, not a file that ends with 'no tests found'.
let inbox: Received[] = [];
t.before(async () => {
  inbox = await receiver(h2, PORT);
});

t.test('capture on the bridge sees ping between the hosts, both ways', async (t) => {
  const cap = startCapture(t, { iface: topologyBridge(), filter: 'icmp' });
  const ping = h1.spawn('ping', ['-c', '2', '-W', '2', h2.ip]);
  const code = await new Promise<number | null>((r) => ping.once('exit', r));
  t.equal(code, 0, 'ping h1 -> h2');
  const frames = await cap.stopAfter();
  const ips = frames.map(ipv4Of).filter((x) => x !== undefined);
  t.equal(ips.length, frames.length, 'every frame is IPv4');
  t.ok(ips.every((ip) => ip.proto === ICMP), 'the filter applied');
  t.equal(ips.filter((ip) => ip.src === h1.ip && ip.dst === h2.ip).length, 2, 'two echo requests h1 -> h2');
  t.equal(ips.filter((ip) => ip.src === h2.ip && ip.dst === h1.ip).length, 2, 'two echo replies h2 -> h1');
  t.same(cap.stop(), frames, 'stop is idempotent');
});

t.test('rawsend: a spoofed source, correct checksums, a captured packet replayed', async (t) => {
  const cap = startCapture(t, { iface: topologyBridge(), filter: `udp port ${PORT}` });
  const payload = Buffer.from('from h1, really from the root namespace');
  await sendUdp4({ src: h1.ip, dst: h2.ip, sport: 4501, dport: PORT, payload });
  await until('the datagram in h2', async () => inbox.length >= 1, 5000);
  t.same(inbox[0], { from: h1.ip, port: 4501, data: payload }, 'h2 received it from h1:4501');

  const [frame] = await cap.waitFor('the datagram', (f) => f.length >= 1);
  const u = udpOf(frame!)!;
  t.same([u.ip.src, u.ip.dst, u.sport, u.dport], [h1.ip, h2.ip, 4501, PORT], 'captured as sent');
  t.same(udpPayloads([frame!], PORT), [payload], 'udpPayloads');
  const packet = ipv4Packet(frame!)!;
  t.equal(packet.readUInt16BE(10), ipv4HeaderChecksum(packet), 'IP header checksum right');
  t.same(packet, buildUdp4({ src: h1.ip, dst: h2.ip, sport: 4501, dport: PORT, payload, id: u.ip.id }), 'on the wire byte for byte as built');
  const pseudo = Buffer.concat([packet.subarray(12, 20), Buffer.from([0, 17]), packet.subarray(24, 26)]);
  t.equal(internetChecksum(pseudo, packet.subarray(20)), 0, 'UDP checksum verifies');

  await sendIpv4(packet);
  await until('the replay in h2', async () => inbox.length >= 2, 5000);
  t.same(inbox[1], inbox[0], 'the replayed packet arrives again, same source');
  const frames = await cap.stopAfter();
  t.equal(udpDatagrams(frames, { src: h1.ip, dport: PORT }).length, 2, 'both on the wire');
  inbox.length = 0;
});

t.test('esp.py packets: sent by rawsend and by scapy, captured and opened again', { skip: scapyMissing() ?? false }, async (t) => {
  const sa: EspSa = { key: Buffer.alloc(16, 7), salt: Buffer.from('01020304', 'hex'), spi: 0x1234 };
  const frame = Buffer.concat([Buffer.from('02420a00010602420a0001050806', 'hex'), Buffer.alloc(28, 1)]);
  const cap = startCapture(t, { iface: topologyBridge(), filter: `udp dst port ${PORT}` });
  const base = { src: h1.ip, dst: h2.ip, vni: 4096, frame };
  const [viaRaw] = await espEncrypt(sa, [{ ...base, seq: 1n }]);
  await sendIpv4(viaRaw!);
  await espEncrypt(sa, [{ ...base, seq: (1n << 32n) + 2n }], { send: true });
  await until('both ESP packets in h2', async () => inbox.length >= 2, 10000);
  t.ok(inbox.every((r) => r.from === h1.ip && r.port === PORT), 'from h1:4500');
  const esp = espPackets(await cap.waitFor('two ESP packets', (f) => f.length >= 2), PORT);
  await cap.stopAfter(0);
  t.same(esp.map((e) => [e.spi, e.seq]), [[0x1234, 1], [0x1234, 2]], 'SPI and low sequence numbers');
  t.same(esp[0]!.packet, viaRaw, 'the rawsend one on the wire as esp.py built it');
  const opened = await espDecrypt(sa, esp.map((e) => e.packet), [0, 1]);
  t.same(opened.map((r) => r.ok && r.frame), [frame, frame], 'both open, the frame inside');
});
