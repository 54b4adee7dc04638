/**
 * Overlay MAC addresses are derived from IPs, as Docker does (02:42 + the four
 * address bytes): every node computes the same MAC for an endpoint without asking,
 * so the FDB and the ARP proxy are pure functions of the control plane.
 * 0x02 sets the locally administered bit and clears the group bit (IEEE 802, RFC 7042 section 2.1).
 */
export function macForIp(ip: string): Buffer {
  const mac = Buffer.alloc(6);
  mac[0] = 0x02;
  mac[1] = 0x42;
  ip.split('.').forEach((o, i) => (mac[2 + i] = Number(o)));
  return mac;
}

export function formatMac(mac: Buffer): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function ipFromBytes(b: Buffer, offset: number): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

export function ipToBytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}
