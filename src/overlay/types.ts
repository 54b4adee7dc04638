/** Seams of the overlay: the frame engine, and what the overlay is asked to make true. */
import type { EngineStat } from './constants.js';

/**
 * Moves frames between TAP devices and VXLAN peers (native/src/vxlan.c). Calls throw
 * an Error with code/errno/syscall. Frames the FDB cannot place arrive at `onControl`.
 */
export interface FrameEngine {
  /**
   * Opens TAP `name` with `mtu`, up, and attaches it to `vni`. Frames of an `encrypted`
   * VNI leave only in ESP (never in clear: without an outbound SA they are dropped), and
   * clear VXLAN for it is dropped on receipt.
   */
  addTap(vni: number, name: string, mtu: number, encrypted: boolean): void;
  delTap(vni: number): void;
  /** Frames for `mac` on `vni` are sent to the node at `ip`. */
  fdbSet(vni: number, mac: Buffer, ip: string): void;
  fdbDel(vni: number, mac: Buffer): void;
  /** The node addresses VXLAN is accepted from; anything else is dropped. */
  setPeers(ips: string[]): void;
  /** Installs (or replaces) a security association; see SecurityAssociation. */
  saSet(sa: SecurityAssociation): void;
  /** An inbound SA is named by its SPI and sender, an outbound one by its SPI and receiver. */
  saDel(dir: SaDirection, spi: number, peer: string): void;
  /** Installed SAs with their sequence numbers (no key material). */
  saList(): SaState[];
  /** Writes a frame into the TAP of `vni`, towards the local bridge. */
  write(vni: number, frame: Buffer): void;
  stats(): Record<EngineStat, number>;
  close(): void;
}

export type Cipher = 'aes-128-gcm' | 'aes-256-gcm';
export type SaDirection = 'in' | 'out';

/**
 * An ESP security association (RFC 4303) of an encrypted network, derived by esp.ts.
 * Inbound SAs are found by SPI; one outbound SA per (vni, peer) is the one frames to
 * that peer are sealed with (installing another replaces it).
 */
export interface SecurityAssociation {
  dir: SaDirection;
  spi: number;
  vni: number;
  /** The other node's underlay address (sender for `in`, receiver for `out`). */
  peer: string;
  /** AES key, 16 or 32 bytes (RFC 4106 section 8.1: the key without the salt). */
  key: Buffer;
  /** The 4-byte salt of the GCM nonce (RFC 4106 section 4). */
  salt: Buffer;
  /**
   * Outbound: the first sequence number to use (default 1; test-only wrap tests start near
   * 2^32). Inbound: the highest number already accepted, when the same SA is installed
   * again in one engine's life; everything up to it then counts as received.
   */
  seq?: bigint;
}

/** What the engine reports of an SA: never the key. */
export interface SaState {
  dir: SaDirection;
  spi: number;
  vni: number;
  peer: string;
  /** Outbound: the last sequence number sent; inbound: the highest accepted (64-bit ESN). */
  seq: bigint;
}

/** The key ring of an encrypted network, as the overlay is given it. */
export interface NetworkEncryption {
  cipher: Cipher;
  /** 1 to 3 keys (input keying material, 32 bytes each), by generation. */
  keys: Array<{ gen: number; key: Buffer }>;
  /** The generation senders seal with; every key of the ring is accepted on receipt. */
  primary: number;
}

/** One overlay network as this node serves it. */
export interface NetworkPlan {
  id: string;
  name: string;
  vni: number;
  /** CIDR, e.g. 10.0.1.0/24. */
  subnet: string;
  /** Containers' default gateway and DNS server; present on every node's bridge. */
  gateway: string;
  /** This node's own address in the network (the bridge's), unique per node. */
  nodeIp: string;
  /** Service VIPs on this network, served here by the routing mesh. */
  vips: string[];
  /** MTU of the bridge, TAP and containers' interfaces (lower when encrypted: encryptedMtu). */
  mtu: number;
  /** Present for encrypted networks: frames leave only in ESP. */
  encryption?: NetworkEncryption;
}

/** An endpoint on another node: its MAC goes to `nodeAddr`, its ARP is answered here. */
export interface RemoteEndpoint {
  vni: number;
  ip: string;
  nodeAddr: string;
}

/** A container (network namespace) attached to a network on this node. */
export interface ContainerPlan {
  taskId: string;
  netns: string;
  network: string;
  ip: string;
  /** The interface's name in the namespace (a CNI attachment's CNI_IFNAME); default the first free eth<N>. */
  ifName?: string;
}

/** A container's overlay interface as its namespace has it (read back, not assumed). */
export interface ContainerInterface {
  /** Its name in the namespace. */
  name: string;
  mac: string;
  mtu: number;
  /** `IP/prefix`. */
  address: string;
  /** The network's gateway (and the containers' DNS server). */
  gateway: string;
  /** The namespace's default route goes via the network's gateway on this interface (the attach installed it). */
  defaultRoute: boolean;
}

export interface OverlayPlan {
  /** Underlay addresses of the other nodes: the only sources of VXLAN accepted. */
  peers: string[];
  /**
   * ESP epochs (random, new each time an agent's engine starts, 16 hex digits): this
   * node's, and the other nodes' by underlay address. Every SA is derived from both
   * ends' epochs, so a restarted engine never reuses a (key, nonce) pair and a
   * receiver's lost replay window cannot let old packets back in.
   */
  epoch: string;
  epochs: Record<string, string>;
  networks: NetworkPlan[];
  remotes: RemoteEndpoint[];
  containers: ContainerPlan[];
}
