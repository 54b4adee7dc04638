import t from 'tap';
import { proxyV1, proxyV2 } from '../../src/mesh/index.js';

t.test('v1 line', async (t) => {
  t.equal(proxyV1({ srcIp: '::ffff:192.0.2.1', srcPort: 5000, dstIp: '198.51.100.2', dstPort: 80 }).toString(), 'PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\n');
  t.equal(proxyV1({ srcIp: '2001:db8::1', srcPort: 1, dstIp: '2001:db8::2', dstPort: 2 }).toString(), 'PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n');
});

t.test('v2 binary, IPv4', async (t) => {
  const b = proxyV2({ srcIp: '192.0.2.1', srcPort: 5000, dstIp: '198.51.100.2', dstPort: 80 });
  t.same([...b], [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 2, 0x13, 0x88, 0, 80]);
});

t.test('v2 binary, IPv6', async (t) => {
  const b = proxyV2({ srcIp: '2001:db8::1', srcPort: 1, dstIp: '::1', dstPort: 2 });
  t.equal(b[13], 0x21);
  t.equal(b.readUInt16BE(14), 36);
  t.equal(b.subarray(16, 32).toString('hex'), '20010db8000000000000000000000001');
  t.equal(b.subarray(32, 48).toString('hex'), '00000000000000000000000000000001');
  t.equal(b.readUInt16BE(48), 1);
  t.equal(b.readUInt16BE(50), 2);
});
