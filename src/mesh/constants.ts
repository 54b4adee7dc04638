/** Routing-mesh constants: protocol facts first, then tunables with their defaults. */

/** PROXY protocol v2 signature (haproxy proxy-protocol.txt, section 2.2). */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Version 2, command PROXY. */
export const PROXY_V2_VERSION_CMD = 0x21;
/** AF_INET + STREAM, AF_INET6 + STREAM. */
export const PROXY_V2_TCP4 = 0x11;
export const PROXY_V2_TCP6 = 0x21;

/** Maglev lookup-table sizes: primes, each a bit under a power of two. The smallest above 100 x backends is used. */
export const MAGLEV_SIZES = [65537, 131071, 262139, 524287, 1048573] as const;
/** Source-hash buckets, as IPVS's IP_VS_SH_TAB_SIZE. */
export const SH_TABLE_SIZE = 256;
/** Bounds of a custom scheduler slice, in microseconds: what sched_setattr(2) grants a fair task (native/src/sched_slice.h). */
export const THREAD_SLICE_MIN_US = 100;
export const THREAD_SLICE_MAX_US = 100_000;

/**
 * Upper bounds (seconds) of the connect-latency histogram's buckets: a loopback or
 * same-host task answers in tens of microseconds, a LAN one in under a millisecond, a
 * loaded or distant one in tens of ms; a timed-out connect (connectTimeoutMs) lands at
 * its timeout. native/src/relay.h RELAY_CONNECT_BOUNDS_NS counts into the same bounds
 * (NativeRelay checks that they agree).
 */
export const CONNECT_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

/** Tunables (all overridable through MeshSettings). */
export const DEFAULTS = {
  /** Idle timeouts as Swarm/IPVS: TCP 900 s, UDP 300 s. */
  tcpIdleTimeoutMs: 900_000,
  udpIdleTimeoutMs: 300_000,
  /** How long a removed task's connections may run before they are closed. */
  drainTimeoutMs: 300_000,
  connectTimeoutMs: 3_000,
  /** Other tasks tried after a failed connect or an empty response. */
  retries: 3,
  /** Client bytes kept to replay on another task until the first response byte. */
  replayLimitBytes: 64 * 1024,
  /** Passive health: a failed task sits out base x 2^(n-1) ms, capped. */
  backoffBaseMs: 1_000,
  backoffMaxMs: 30_000,
  /** Granularity of the connection table's idle clock. */
  sweepIntervalMs: 1_000,
  /** TCP keepalive on both legs, so a dead peer is noticed and middleboxes keep state. */
  keepAliveMs: 60_000,
  /** Native UDP engine: the most flows (as nf_conntrack_max), and its pool of upstream
   * sockets (its file descriptors; flows toward one task at most this many). */
  udpMaxFlows: 262_144,
  udpSockets: 4_096,
} as const;

export type MeshSettings = { -readonly [K in keyof typeof DEFAULTS]: number };
