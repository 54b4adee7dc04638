/** Command-line parsing of the encryption options: agent flags, the test-only env, `network create --opt`. */
import t from 'tap';
import { parseEspSeqStart, parseKeyRotation, parseLimit, parsePort, parseThreadSlice, parseThreads } from '../../src/cli/agent.js';
import { parseNetworkOpts } from '../../src/cli/network.js';
import { parseDuration } from '../../src/cli/format.js';

t.test('--key-rotation: durations', async (t) => {
  const ok: Array<[string, number]> = [
    ['12h', 12 * 3_600_000],
    ['30m', 30 * 60_000],
    ['90s', 90_000],
    ['500ms', 500],
    ['90', 90_000],
    ['1.5h', 5_400_000],
  ];
  for (const [text, ms] of ok) t.equal(parseKeyRotation(text), ms, text);
  for (const bad of ['0', '0s', 'abc', '-1h', '12d', '', '1 h']) t.throws(() => parseKeyRotation(bad), { code: 'EUSAGE', message: /^--key-rotation: / }, JSON.stringify(bad));
  t.equal(parseDuration('2s', '--heartbeat'), 2000, 'the same parser as the other duration flags');
});

t.test('--esp-port: a UDP port', async (t) => {
  t.equal(parsePort('4500', '--esp-port'), 4500);
  t.equal(parsePort('1', '--esp-port'), 1);
  t.equal(parsePort('65535', '--esp-port'), 65535);
  for (const bad of ['0', '65536', 'x', '-1', '45.5']) t.throws(() => parsePort(bad, '--esp-port'), { code: 'EUSAGE', message: /^--esp-port: / }, bad);
});

t.test('--max-flows, --udp-sockets: whole numbers within a range, the flag named when refused', async (t) => {
  t.equal(parseLimit('262144', '--max-flows', 16_777_216), 262_144);
  t.equal(parseLimit('1', '--max-flows', 16_777_216), 1);
  t.equal(parseLimit('60000', '--udp-sockets', 60_000), 60_000);
  for (const bad of ['0', '-1', '16777217', '1.5', 'many', '', '1e6']) t.throws(() => parseLimit(bad, '--max-flows', 16_777_216), { code: 'EUSAGE', message: /^--max-flows: / }, JSON.stringify(bad));
  t.throws(() => parseLimit('60001', '--udp-sockets', 60_000), { code: 'EUSAGE', message: /^--udp-sockets: 60001 is not from 1 to 60000/ });
});

t.test('--threads: relay threads from 1 to 256', async (t) => {
  for (const [text, n] of [['1', 1], ['2', 2], ['256', 256], [' 4 ', 4]] as const) t.equal(parseThreads(text), n, text);
  for (const bad of ['0', '-1', '257', '1.5', 'two', '', '0x2']) t.throws(() => parseThreads(bad), { code: 'EUSAGE', message: /^--threads: / }, JSON.stringify(bad));
});

t.test('--thread-slice: 0, or 100 to 100000 microseconds', async (t) => {
  for (const [text, n] of [['0', 0], ['100', 100], ['300', 300], ['100000', 100_000]] as const) t.equal(parseThreadSlice(text), n, text);
  for (const bad of ['99', '1', '100001', '-100', '1.5', 'short', '']) t.throws(() => parseThreadSlice(bad), { code: 'EUSAGE', message: /^--thread-slice: / }, JSON.stringify(bad));
});

t.test('SWARMNET_TEST_ESP_SEQ_START: decimal or 0x hex, below 2^32', async (t) => {
  t.equal(parseEspSeqStart(undefined), undefined);
  t.equal(parseEspSeqStart(''), undefined);
  t.equal(parseEspSeqStart('4294967290'), 4294967290n);
  t.equal(parseEspSeqStart('0xfffffff0'), 0xfffffff0n);
  t.equal(parseEspSeqStart('0XFFFFFFFF'), (1n << 32n) - 1n);
  for (const bad of ['0', '0x100000000', '4294967296', '0XFFFFFFFFFFFFFFFF', '-5', '1e9', 'ten', '0x']) {
    t.throws(() => parseEspSeqStart(bad), { code: 'EUSAGE', message: /^SWARMNET_TEST_ESP_SEQ_START: / }, bad);
  }
});

t.test('network create --opt', async (t) => {
  const ok: Array<[string[], object]> = [
    [[], {}],
    [['encrypted'], { encrypted: true, cipher: 'aes-128-gcm' }],
    [['encrypted=true'], { encrypted: true, cipher: 'aes-128-gcm' }],
    [['encrypted=aes-128-gcm'], { encrypted: true, cipher: 'aes-128-gcm' }],
    [['encrypted=aes-256-gcm'], { encrypted: true, cipher: 'aes-256-gcm' }],
    [['encrypted=aes-256-gcm', 'encrypted'], { encrypted: true, cipher: 'aes-256-gcm' }],
  ];
  for (const [opts, want] of ok) t.same(parseNetworkOpts(opts), want, opts.join(' ') || 'none');
  const bad: Array<[string, RegExp]> = [
    ['encrypted=false', /^--opt: 'encrypted=false': encrypted takes no value, true, or a cipher \(aes-128-gcm, aes-256-gcm\)/],
    ['encrypted=aes-192-gcm', /^--opt: 'encrypted=aes-192-gcm'/],
    ['encrypted=', /^--opt: 'encrypted='/],
    ['mtu=1400', /^--opt: unknown option 'mtu=1400' \(known: encrypted/],
    ['Encrypted', /^--opt: unknown option 'Encrypted'/],
  ];
  for (const [opt, msg] of bad) t.throws(() => parseNetworkOpts([opt]), { code: 'EUSAGE', message: msg }, opt);
});
