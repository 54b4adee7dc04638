/**
 * Encrypted overlay networks between two namespace-hosts (issue 10): traffic, names,
 * VIPs and the routing mesh on an encrypted network; a libpcap capture of the underlay
 * holding nothing in clear; interop with an independent ESP implementation (scapy)
 * both ways; forged, replayed and random ESP dropped and counted; key rotation under
 * an iperf3 load; a restarted agent (new epoch) carrying traffic again.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import t from 'tap';
import { NatsStore } from '../../src/control/store/nats.js';
import { macForIp, formatMac, encryptedMtu, OVERLAY_MTU } from '../../src/overlay/index.js';
import { startCapture, topologyBridge, espPackets, ipv4Packet, udpDatagrams } from '../helpers/capture.js';
import { sendIpv4 } from '../helpers/rawsend.js';
import { deriveSaPy, espDecrypt, espEncrypt, scapyMissing, type EspSa } from '../helpers/scapy.js';
import { createContainer, createTopology, type Container } from '../helpers/netns.js';
import { startNats } from '../helpers/nats.js';
import { metricValue, startHostAgent, startBackends, DIST, type AgentProc } from '../helpers/procs.js';
import { sleep, until } from '../helpers/net.js';
import { join } from 'node:path';

const CLIENT = join(DIST, 'test/fixtures/client.js');
const topo = createTopology(t, 2);
const [h1, h2] = topo.hosts as [(typeof topo.hosts)[0], (typeof topo.hosts)[0]];
const nats = await startNats(t, topo.gateway, 4222);
const agentArgs = ['--dns-upstream', '127.0.0.1:1'];
const a1 = await startHostAgent(t, h1, { nats: nats.url, nodeId: 'esp1', overlay: true, args: agentArgs });
let a2: AgentProc = await startHostAgent(t, h2, { nats: nats.url, nodeId: 'esp2', overlay: true, args: agentArgs });
const [c1, c2, c3, c4] = [createContainer(t, 'x1'), createContainer(t, 'x2'), createContainer(t, 'x3'), createContainer(t, 'x4')];
await startBackends(t, ['one@0.0.0.0:7000'], c1.spawn);
await startBackends(t, ['two@0.0.0.0:7000'], c2.spawn);
await startBackends(t, ['three@0.0.0.0:7000'], c3.spawn);
await startBackends(t, ['four@0.0.0.0:7000'], c4.spawn);

await a1.ok('network', 'create', '--opt', 'encrypted', 'sec');
await a1.ok('network', 'create', 'clr');
await a1.ok('service', 'create', '--name', 'vault', '--network', 'sec', '--publish', '31100:7000');
await a1.ok('service', 'create', '--name', 'plain', '--network', 'clr');
await a1.ok('task', 'add', '--service', 'vault', '--network', 'sec', '--netns', c1.path, '--name', 'one');
await a2.ok('task', 'add', '--service', 'vault', '--network', 'sec', '--netns', c2.path, '--name', 'two');
await a1.ok('task', 'add', '--service', 'plain', '--network', 'clr', '--netns', c3.path, '--name', 'three');
await a2.ok('task', 'add', '--service', 'plain', '--network', 'clr', '--netns', c4.path, '--name', 'four');

type NetJson = { id: string; vni: number; encrypted: boolean; cipher?: string; encryption?: { cipher: string; keys: Array<{ gen: number; primary: boolean }> } };
const inspectNet = async (a: AgentProc, name: string) => (JSON.parse(await a.ok('network', 'inspect', name)) as NetJson[])[0]!;
const sec = await inspectNet(a1, 'sec');
const clr = await inspectNet(a1, 'clr');
const tasks = JSON.parse(await a1.ok('task', 'ls', '--format', 'json')) as Array<{ name: string; addresses: Array<{ ip: string }> }>;
const ipOf = (name: string) => tasks.find((x) => x.name === name)!.addresses[0]!.ip;
const vip = (JSON.parse(await a1.ok('service', 'inspect', 'vault')) as Array<{ networks: Array<{ vip: string }> }>)[0]!.networks[0]!.vip;

const ask = (c: Container, host: string, port: number, n: number, proto = 'tcp') => c.exec(process.execPath, [CLIENT, host, String(port), String(n), proto]);
const names = (out: string) => [...new Set(out.trim().split('\n').map((l) => l.split(' ')[0]))].sort();
const reach = (c: Container, ip: string) => until(`${c.ns} reaches ${ip}`, async () => (await c.exec('ping', ['-c', '1', '-W', '1', ip])).code === 0, 20000);

/** A counter of an agent's /metrics (0 when absent). */
const metric = async (a: AgentProc, name: string, labels = '') => metricValue(await a.metrics(), name, labels) ?? 0;

const DROP = 'swarmnet_esp_dropped_total';
const dropped = async (a: AgentProc, reason: string) => metric(a, DROP, `reason="${reason}"`);

/** A TCP sink in `c` on `port` that prints the byte count when the sender closes. */
function tcpSink(c: Container, port: number) {
  const child = c.spawn(process.execPath, ['-e', `require('net').createServer((s) => { let n = 0; s.on('data', (d) => (n += d.length)); s.on('end', () => { console.log(n); process.exit(0); }); }).listen(${port}, () => console.log('ready'))`]);
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = once(child, 'exit');
  return {
    ready: until('sink ready', async () => out.includes('ready'), 10000),
    received: async () => {
      await exited;
      return Number(out.trim().split('\n').pop());
    },
  };
}

/** Sends `block` `times` over TCP from `c` to host:port. */
function tcpSend(c: Container, host: string, port: number, block: Buffer, times: number) {
  return c.exec(process.execPath, ['-e', `const b = Buffer.from('${block.toString('base64')}', 'base64'); const s = require('net').connect(${port}, '${host}', () => { for (let i = 0; i < ${times}; i++) s.write(b); s.end(); });`], 60000);
}

t.test('an encrypted network carries ping, TCP, UDP, names, the VIP and the routing mesh', async (t) => {
  t.equal(sec.encrypted, true, 'network inspect: encrypted');
  await reach(c1, ipOf('two'));
  t.equal((await c2.exec('ping', ['-c', '2', '-W', '2', ipOf('one')])).code, 0, 'ping host2 -> host1');
  t.match((await ask(c1, ipOf('two'), 7000, 1)).stdout, /^two /, 'TCP host1 -> host2');
  t.match((await ask(c2, ipOf('one'), 7000, 1, 'udp')).stdout, /^one hello/, 'UDP host2 -> host1');
  t.same((await c1.exec('dig', ['+short', '+time=2', '+tries=1', 'vault'])).stdout.trim().split('\n'), [vip], 'vault -> its VIP');
  await until('VIP up', async () => (await ask(c1, vip, 7000, 1)).code === 0, 15000);
  t.same(names((await ask(c1, 'vault', 7000, 8)).stdout), ['one', 'two'], 'the VIP balances over a local and a remote task');
  const mesh = await new Promise<string>((resolve) => execFile(process.execPath, [CLIENT, h2.ip, '31100', '8', 'tcp'], { timeout: 20000 }, (_e, stdout) => resolve(stdout)));
  t.same(names(mesh), ['one', 'two'], 'a published port on host2 reaches both tasks through the mesh');
  const mtu = Number(/mtu (\d+)/.exec((await c1.exec('ip', ['link', 'show', 'eth0'])).stdout)?.[1]);
  t.equal(mtu, encryptedMtu(OVERLAY_MTU), `the container's MTU is lowered for ESP (${encryptedMtu(OVERLAY_MTU)})`);
  const clear = Number(/mtu (\d+)/.exec((await c3.exec('ip', ['link', 'show', 'eth0'])).stdout)?.[1]);
  t.equal(clear, OVERLAY_MTU, 'a clear network keeps 1450');
  // A full-size frame crosses: 1408 - 28 bytes of ICMP payload with DF set.
  t.equal((await c1.exec('ping', ['-c', '1', '-W', '2', '-M', 'do', '-s', String(mtu - 28), ipOf('two')])).code, 0, 'a full-MTU packet crosses unfragmented');
});

t.test('the underlay carries nothing of the encrypted network in clear (libpcap capture)', async (t) => {
  const block = randomBytes(1024);
  const needles = [0, 128, 256, 384, 512, 640, 768, 896].map((o) => block.subarray(o, o + 12));
  const cap = startCapture(t, { iface: topologyBridge(), filter: 'udp' });
  const sink = tcpSink(c2, 7300);
  await sink.ready;
  const sent = await tcpSend(c1, ipOf('two'), 7300, block, 4096);
  t.equal(sent.code, 0, 'a 4 MiB transfer on the encrypted network');
  t.equal(await sink.received(), 4096 * 1024, 'all of it arrived');
  t.match((await ask(c3, ipOf('four'), 7000, 1)).stdout, /^four /, 'the clear network beside it works');
  const frames = await cap.stopAfter(300);
  const vxlanOf = (vni: number) =>
    udpDatagrams(frames, { port: 4789 }).filter((d) => d.payload.length >= 8 && ((d.payload[4]! << 16) | (d.payload[5]! << 8) | d.payload[6]!) === vni);
  t.equal(vxlanOf(sec.vni).length, 0, `no VXLAN of VNI ${sec.vni} in clear`);
  t.ok(vxlanOf(clr.vni).length > 0, `the clear network's VXLAN (VNI ${clr.vni}) is on the wire, so the capture sees the underlay`);
  const esp = espPackets(frames, 4500);
  t.ok(esp.length > 100, `ESP in UDP 4500 carried the transfer (${esp.length} captured)`);
  const leaks = frames.filter((f) => needles.some((n) => f.includes(n)));
  t.equal(leaks.length, 0, "none of the payload's bytes on the underlay");
  t.ok(frames.reduce((n, f) => n + f.length, 0) > 4096 * 1024, 'the capture holds at least the transfer');
});

/** The ring of `net` and both nodes' epochs, read from the store (the test's privilege). */
async function saFor(netId: string, vni: number, sender: [string, string], receiver: [string, string]): Promise<EspSa> {
  const store = await NatsStore.open({ servers: [nats.url] });
  try {
    const ring = (await store.get('keys', netId))!.value as { cipher: 'aes-128-gcm' | 'aes-256-gcm'; primary: number; keys: Array<{ gen: number; key: string }> };
    const epoch = async (id: string) => ((await store.get('nodes', id))!.value as { espEpoch: string }).espEpoch;
    const key = ring.keys.find((k) => k.gen === ring.primary)!;
    return await deriveSaPy({ ringKey: Buffer.from(key.key, 'base64'), cipher: ring.cipher, vni, gen: key.gen, sender: sender[1], receiver: receiver[1], senderEpoch: await epoch(sender[0]), receiverEpoch: await epoch(receiver[0]) });
  } finally {
    await store.close();
  }
}

let captured: Buffer[] = [];

t.test('interop: scapy decrypts what swarmnet sends, and swarmnet delivers what scapy encrypts', { skip: scapyMissing() ?? false }, async (t) => {
  const sa = await saFor(sec.id, sec.vni, ['esp1', h1.ip], ['esp2', h2.ip]);
  const cap = startCapture(t, { iface: topologyBridge(), filter: `udp port 4500 and src host ${h1.ip}` });
  const r = await ask(c1, ipOf('two'), 7000, 5, 'udp');
  t.match(r.stdout, /^two hello/, 'UDP across the encrypted network');
  const frames = await cap.stopAfter(300);
  const packets = espPackets(frames, 4500).filter((p) => p.spi === sa.spi);
  t.ok(packets.length >= 5, `ESP packets of the SA host1 -> host2 captured (${packets.length})`);
  captured = packets.map((p) => p.packet);
  const out = await espDecrypt(sa, captured, 0);
  const ok = out.filter((x) => x.ok);
  t.equal(ok.length, out.length, 'scapy decrypts every one (AES-GCM, ESN high 0, NAT-T header)');
  const first = ok[0]!;
  if (first.ok) {
    t.equal(first.vni, sec.vni, 'inside: VXLAN of the encrypted network');
    t.equal(first.nextHeader, 17, 'next header UDP (transport mode over the VXLAN datagram)');
    t.equal(first.outer.dport, 4500, 'UDP-encapsulated on 4500 (RFC 3948)');
    t.equal(first.iv.readBigUInt64BE(0) & 0xffffffffn, BigInt(first.seq), 'the IV is the sequence number');
  }
  t.ok(ok.some((x) => x.ok && x.ip?.src === ipOf('one') && x.ip.dst === ipOf('two') && x.udp?.payload.toString().includes('hello')), "one of them is the container's datagram");

  // The other way: a datagram sealed by scapy, sent from host1's address, is delivered to c2.
  const listener = c2.spawn(process.execPath, ['-e', `const s = require('dgram').createSocket('udp4'); s.on('message', (m) => console.log(m.toString())); s.bind(7100, () => console.log('ready'));`]);
  t.teardown(() => void listener.kill('SIGKILL'));
  let heard = '';
  listener.stdout!.on('data', (d: Buffer) => (heard += d.toString()));
  await until('listener', async () => heard.includes('ready'), 10000);
  const last = Math.max(...packets.map((p) => p.seq));
  const payload = `from scapy ${randomBytes(6).toString('hex')}`;
  const sealed = await espEncrypt(sa, [
    { seq: BigInt(last + 1000), src: h1.ip, dst: h2.ip, vni: sec.vni, ethSrc: formatMac(macForIp(ipOf('one'))), ethDst: formatMac(macForIp(ipOf('two'))), innerSrc: ipOf('one'), innerDst: ipOf('two'), sport: 40000, dport: 7100, payload: Buffer.from(payload) },
  ]);
  const before = await metric(a2, 'swarmnet_esp_packets_total', 'direction="rx"');
  await sendIpv4(sealed);
  await until('the scapy datagram delivered', async () => heard.includes(payload), 5000);
  t.ok(heard.includes(payload), 'the container received the datagram scapy sealed');
  t.ok((await metric(a2, 'swarmnet_esp_packets_total', 'direction="rx"')) > before, 'counted as received ESP');
});

t.test('forged, replayed and random ESP is dropped and counted; the agent keeps serving', { skip: scapyMissing() ?? false }, async (t) => {
  t.ok(captured.length > 0, 'packets captured by the interop test');
  const sa = await saFor(sec.id, sec.vni, ['esp1', h1.ip], ['esp2', h2.ip]);
  const reasons = ['replay', 'too_old', 'bad_icv', 'unknown_spi', 'short', 'bad_trailer', 'wrong_vni'];
  const snapshot = async () => Object.fromEntries(await Promise.all(reasons.map(async (r) => [r, await dropped(a2, r)] as const)));
  const b0 = await snapshot();

  // Replays of captured packets (their numbers are inside the window). The capture saw
  // them before their UDP checksum was filled in (veths pass CHECKSUM_PARTIAL on), so
  // they go out with none, which IPv4 allows; the ESP inside is as captured.
  const ipHdr = 20 + 8; // IPv4 + UDP
  const noUdpChecksum = (p: Buffer) => {
    const f = Buffer.from(p);
    f.writeUInt16BE(0, 26);
    return f;
  };
  await sendIpv4(captured.map(noUdpChecksum));
  const counts = async () => `${JSON.stringify(await snapshot())} (before ${JSON.stringify(b0)}) ${(await a2.metrics()).split('\n').filter((l) => /^swarmnet_(esp|vxlan)_/.test(l)).join(' ')}`;
  await until('replays counted', async () => (await dropped(a2, 'replay')) - b0.replay! >= captured.length, 5000, counts);
  t.ok((await dropped(a2, 'replay')) - b0.replay! >= captured.length, `${captured.length} replays dropped as replay`);

  // Forged: a fresh sequence number ahead of the window and a flipped ciphertext bit.
  const forged = captured.slice(0, 5).map((p, i) => {
    const f = noUdpChecksum(p);
    f.writeUInt32BE(f.readUInt32BE(ipHdr + 4) + 50_000 + i, ipHdr + 4);
    f[ipHdr + 20]! ^= 0x40;
    return f;
  });
  await sendIpv4(forged);
  await until('forgeries counted', async () => (await dropped(a2, 'bad_icv')) - b0.bad_icv! >= forged.length, 5000, counts);
  t.equal((await dropped(a2, 'bad_icv')) - b0.bad_icv!, forged.length, 'forged packets from a member address dropped as bad_icv');

  // 10,000 random and mutated packets from host1's address.
  const mk = (payload: Buffer) => {
    const p = Buffer.from(captured[0]!.subarray(0, ipHdr));
    const out = Buffer.concat([p, payload]);
    out.writeUInt16BE(out.length, 2);
    out.writeUInt16BE(out.length - 20, 24);
    out.writeUInt16BE(0, 26); // no UDP checksum
    out.writeUInt16BE(0, 10);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += out.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
    out.writeUInt16BE(~sum & 0xffff, 10);
    return out;
  };
  const junk: Buffer[] = [];
  for (let i = 0; i < 10_000; i++) {
    const base = captured[i % captured.length]!.subarray(ipHdr);
    switch (i % 6) {
      case 0: // random bytes of random length
        junk.push(mk(randomBytes(1 + (i % 1400))));
        break;
      case 1: {
        // the SA's SPI, random sequence number and body
        const b = randomBytes(60 + (i % 900));
        b.writeUInt32BE(sa.spi, 0);
        junk.push(mk(b));
        break;
      }
      case 2: // truncations of a real packet
        junk.push(mk(Buffer.from(base.subarray(0, i % base.length))));
        break;
      case 3: {
        // bit flips anywhere in a real packet
        const b = Buffer.from(base);
        b[i % b.length]! ^= 1 << (i % 8);
        b[(i * 7) % b.length]! ^= 0x80;
        junk.push(mk(b));
        break;
      }
      case 4: // RFC 3948 non-ESP marker and keepalive
        junk.push(mk(i % 12 === 4 ? Buffer.from([0xff]) : Buffer.concat([Buffer.alloc(4), randomBytes(40)])));
        break;
      default: {
        // a real packet with a shifted SPI
        const b = Buffer.from(base);
        b.writeUInt32BE((b.readUInt32BE(0) + 1 + i) >>> 0, 0);
        junk.push(mk(b));
      }
    }
  }
  for (let i = 0; i < junk.length; i += 500) await sendIpv4(junk.slice(i, i + 500));
  await sleep(500);
  const b1 = await snapshot();
  const total = reasons.reduce((n, r) => n + b1[r]! - b0[r]!, 0) + (await metric(a2, 'swarmnet_esp_keepalives_total'));
  t.ok(total >= 10_000, `the junk is counted (${total} drops: ${JSON.stringify(Object.fromEntries(reasons.map((r) => [r, b1[r]! - b0[r]!])))})`);
  t.equal(a2.child.exitCode, null, 'the agent is running');
  t.match(await a2.ok('network', 'ls'), /sec/, 'its API answers');
  t.match((await ask(c1, ipOf('two'), 7000, 1)).stdout, /^two /, 'and the encrypted network still carries traffic');
});

t.test('key rotation under load: 3 rotations during an iperf3 transfer, no stall over 1 s, no reset', async (t) => {
  const before = await inspectNet(a1, 'sec');
  const gen0 = before.encryption!.keys.find((k) => k.primary)!.gen;
  const server = c2.spawn('iperf3', ['-s', '-1', '-B', ipOf('two')]);
  t.teardown(() => void server.kill('SIGKILL'));
  await sleep(300);
  const client = c1.exec('iperf3', ['-c', ipOf('two'), '-t', '20', '-i', '0.2', '-J'], 60000);
  for (let i = 1; i <= 3; i++) {
    await sleep(3000);
    await a1.ok('network', 'rotate-key', 'sec');
    await until(`rotation ${i} promoted`, async () => (await inspectNet(a1, 'sec')).encryption!.keys.find((k) => k.primary)!.gen === gen0 + i, 15000);
  }
  const r = await client;
  t.equal(r.code, 0, `iperf3 finished without a reset ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { intervals: Array<{ sum: { bytes: number; seconds: number } }>; end: { sum_received: { bits_per_second: number } } };
  const iv = j.intervals.map((x) => x.sum.bytes);
  let worst = 0;
  for (let i = 0; i + 5 <= iv.length; i++) if (iv.slice(i, i + 5).every((b) => b === 0)) worst = 5;
  t.equal(worst, 0, 'no 1-s window without progress');
  t.ok(j.end.sum_received.bits_per_second > 0, `throughput ${(j.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`);
  const after = await inspectNet(a1, 'sec');
  t.equal(after.encryption!.keys.find((k) => k.primary)!.gen, gen0 + 3, 'three new keys in use');
  t.ok(after.encryption!.keys.length <= 3, 'the ring keeps at most 3 keys');
  t.notMatch(JSON.stringify(after), /"key"\s*:/, 'inspect shows no key material');
});

t.test('a restarted agent (a new epoch, new SAs) carries the encrypted network again', async (t) => {
  await a2.stop();
  a2 = await startHostAgent(t, h2, { nats: nats.url, nodeId: 'esp2', overlay: true, args: agentArgs, dataDir: a2.dataDir });
  await until('traffic after the restart', async () => (await ask(c1, ipOf('two'), 7000, 1)).stdout.startsWith('two '), 20000);
  t.pass('host1 -> host2 after host2 restarted');
  t.match((await ask(c2, ipOf('one'), 7000, 1)).stdout, /^one /, 'host2 -> host1');
});
