/** Overlay constants: protocol facts (with their RFCs) first, then tunables. */

/** IANA-assigned VXLAN port (RFC 7348 section 5). */
export const VXLAN_PORT = 4789;
/** VXLAN header in front of the inner frame (RFC 7348 section 5). */
export const VXLAN_HEADER_BYTES = 8;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) = 50: 1500 - 50, Swarm's overlay MTU. */
export const OVERLAY_MTU = 1450;

/** Ethernet (IEEE 802.3) and ARP (RFC 826) facts used by the ARP proxy. */
export const ETH_HEADER_BYTES = 14;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV4 = 0x0800;
export const ARP_HTYPE_ETHERNET = 1;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;
/** ARP payload for Ethernet/IPv4: 8 bytes of header + 2 x (6 + 4) addresses. */
export const ARP_PAYLOAD_BYTES = 28;

/**
 * Counters of the native engine, in the order vxlanStats() returns them
 * (enum vx_stat in native/src/vxlan.h).
 */
export const ENGINE_STATS = [
  'rxPackets',
  'rxBytes',
  'rxShort',
  'rxBadFlags',
  'rxUnknownVni',
  'rxOversize',
  'rxTapErrors',
  'txPackets',
  'txBytes',
  'txErrors',
  'txControl',
  'txDropped',
  'txBadGso',
  'txTsoFrames',
  'rxGroFrames',
  'rxUnknownPeer',
  'espTxPackets',
  'espTxNoSa',
  'espTxErrors',
  'espRxPackets',
  'espRxShort',
  'espRxUnknownSpi',
  'espRxBadIcv',
  'espRxReplay',
  'espRxTooOld',
  'espRxBadTrailer',
  'espRxWrongVni',
  'espRxKeepalive',
  'rxClearOnEncrypted',
] as const;
export type EngineStat = (typeof ENGINE_STATS)[number];

/** Interface names (at most 15 bytes, IFNAMSIZ - 1). */
export const NAMES = {
  bridge: (vni: number) => `snbr${vni}`,
  tap: (vni: number) => `sntap${vni}`,
  /** Host side of a container's veth: 'swv' + the first 12 characters of the task id. */
  vethHost: (taskId: string) => `swv${taskId.slice(0, 12)}`,
  vethPeer: (taskId: string) => `swp${taskId.slice(0, 12)}`,
  vethPrefix: 'swv',
  bridgePrefix: 'snbr',
} as const;

/** Inside a container, the overlay interface is eth0 (eth1, ... when taken), as in Docker. */
export const CONTAINER_IFACE_PREFIX = 'eth';

/** UDP encapsulation of ESP (RFC 3948 section 2): IKE's NAT-T port, which NATs and firewalls know. */
export const ESP_PORT = 4500;
/**
 * Bytes an encrypted network adds to a clear one (RFC 4303, RFC 4106, RFC 3948): the
 * VXLAN datagram travels as the transport-mode payload of ESP inside UDP 4500:
 *   UDP-encap 8 + ESP header 8 + IV 8 + inner UDP 8 + trailer 2 (pad length, next header)
 *   + ICV 16 = 50 - 8 (the clear path's UDP header is the inner one) = 42
 * plus up to 3 bytes of padding to a 4-byte boundary (RFC 4303 section 2.4).
 */
export const ESP_OVERHEAD = 42;

/**
 * MTU of an encrypted network for an overlay MTU of `mtu`: 1408 for 1450. Rounded down to
 * a multiple of 4 so a full-size frame needs no ESP padding (inner UDP 8 + VXLAN 8 +
 * Ethernet 14 + MTU + trailer 2 is then a multiple of 4) and its packet fills 1500 bytes.
 */
export function encryptedMtu(mtu: number): number {
  return Math.floor((mtu - ESP_OVERHEAD) / 4) * 4;
}
