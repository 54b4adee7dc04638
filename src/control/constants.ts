/** Control-plane constants. Defaults follow Docker Swarm so its users find what they expect. */

/** Published ports are auto-assigned from Swarm's range. */
export const PUBLISHED_PORT_MIN = 30000;
export const PUBLISHED_PORT_MAX = 32767;

/** Default address pool 10.0.0.0/8, carved in /24s (Swarm's `default-addr-pool`). */
export const DEFAULT_POOL = '10.0.0.0/8';
export const DEFAULT_SUBNET_SIZE = 24;

/** VXLAN network identifiers start at 4096 as in Swarm; 24-bit field (RFC 7348 section 5). */
export const VNI_MIN = 4096;
export const VNI_MAX = 0xffffff;

/**
 * Object kinds; each is a bucket in the store (`swarmnet-<kind>` on NATS). `keys` (key
 * rings of encrypted networks) comes before `networks`: views load, and `init` copies,
 * a network's ring before the network, so no encrypted network is seen without it.
 */
export const KINDS = ['nodes', 'keys', 'networks', 'services', 'tasks', 'ipam', 'cluster'] as const;
export type Kind = (typeof KINDS)[number];

/** Schedulers, named as in ipvsadm(8). */
export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'sh', 'mh'] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

export const PROTOCOLS = ['tcp', 'udp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Length of generated object ids (Swarm uses 25 base-36 characters). */
export const ID_LENGTH = 25;

/**
 * Ciphers of encrypted overlay networks (ESP with AES-GCM, RFC 4106); the first is the
 * default of `network create --opt encrypted`.
 */
export const CIPHERS = ['aes-128-gcm', 'aes-256-gcm'] as const;
export type CipherName = (typeof CIPHERS)[number];
export const DEFAULT_CIPHER: CipherName = 'aes-128-gcm';

/**
 * A network's key ring keeps at most this many keys (as Swarm keeps three): the
 * primary, the one before it (packets still in flight), and one being installed.
 */
export const KEY_RING_MAX = 3;
/** Ring keys are 32 random bytes whatever the cipher (input keying material of HKDF, see overlay/esp.ts). */
export const RING_KEY_BYTES = 32;

/**
 * Tunable: a key waits at most this long for every live receiver to install it before it
 * is promoted anyway, so that a node which never reports (stuck, old version) cannot
 * block rotation forever.
 */
export const KEY_PROMOTE_TIMEOUT_MS = 30_000;
