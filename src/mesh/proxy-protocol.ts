/**
 * PROXY protocol headers (haproxy's proxy-protocol.txt), sent first on the task
 * connection so the task sees the real client address.
 *
 * v1 (section 2.1), one text line:
 *   "PROXY TCP4 <src> <dst> <sport> <dport>\r\n"
 *
 * v2 (section 2.2), binary:
 *   +-----------------------+-------+-------+---------------+
 *   | signature (12 bytes)  | ver/  | fam/  | length (16 bit|
 *   | \r\n\r\n\0\r\nQUIT\n  | cmd   | proto | network order)|
 *   +-----------------------+-------+-------+---------------+
 *   | src addr | dst addr | src port | dst port   (IPv4: 4+4+2+2)
 */
import { isIPv4 } from 'node:net';
import { PROXY_V2_SIGNATURE, PROXY_V2_TCP4, PROXY_V2_TCP6, PROXY_V2_VERSION_CMD } from './constants.js';

export interface ProxyAddrs {
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
}

/** Node reports IPv4 clients on dual-stack sockets as ::ffff:a.b.c.d. */
function unmap(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

export function proxyV1(a: ProxyAddrs): Buffer {
  const src = unmap(a.srcIp);
  const dst = unmap(a.dstIp);
  const fam = isIPv4(src) && isIPv4(dst) ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${fam} ${src} ${dst} ${a.srcPort} ${a.dstPort}\r\n`, 'latin1');
}

export function proxyV2(a: ProxyAddrs): Buffer {
  const src = unmap(a.srcIp);
  const dst = unmap(a.dstIp);
  const v4 = isIPv4(src) && isIPv4(dst);
  const addrLen = v4 ? 12 : 36;
  const buf = Buffer.alloc(16 + addrLen);
  PROXY_V2_SIGNATURE.copy(buf, 0);
  buf[12] = PROXY_V2_VERSION_CMD;
  buf[13] = v4 ? PROXY_V2_TCP4 : PROXY_V2_TCP6;
  buf.writeUInt16BE(addrLen, 14);
  const ipLen = v4 ? 4 : 16;
  writeIp(buf, 16, v4 ? src : toV6(src));
  writeIp(buf, 16 + ipLen, v4 ? dst : toV6(dst));
  buf.writeUInt16BE(a.srcPort, 16 + 2 * ipLen);
  buf.writeUInt16BE(a.dstPort, 18 + 2 * ipLen);
  return buf;
}

function toV6(ip: string): string {
  return isIPv4(ip) ? `::ffff:${ip}` : ip;
}

function writeIp(buf: Buffer, off: number, ip: string): void {
  if (isIPv4(ip)) {
    ip.split('.').forEach((p, i) => (buf[off + i] = Number(p)));
    return;
  }
  for (const [i, group] of expandV6(ip).entries()) buf.writeUInt16BE(group, off + 2 * i);
}

/** Expands an IPv6 text address (with :: and an optional dotted tail) into 8 groups. */
function expandV6(ip: string): number[] {
  let text = ip;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const p = dotted[1]!.split('.').map(Number);
    text = text.slice(0, -dotted[1]!.length) + `${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g || '0', 16));
}
