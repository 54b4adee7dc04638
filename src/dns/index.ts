export { DnsServer, type DnsServerOptions } from './server.js';
export { clusterHandler } from './cluster.js';
export { forwardHandler, type Upstream } from './forward.js';
export { DEFAULTS as DNS_DEFAULTS, RCODE } from './constants.js';
export type { Handler, Query, Reply } from './types.js';
