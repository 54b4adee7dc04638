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

/** Object kinds; each is a bucket in the store (`swarmnet-<kind>` on NATS). */
export const KINDS = ['nodes', 'networks', 'services', 'tasks', 'ipam', 'cluster'] as const;
export type Kind = (typeof KINDS)[number];

/** Schedulers, named as in ipvsadm(8). */
export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'sh', 'mh'] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

export const PROTOCOLS = ['tcp', 'udp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Length of generated object ids (Swarm uses 25 base-36 characters). */
export const ID_LENGTH = 25;
