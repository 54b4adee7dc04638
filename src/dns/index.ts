export { DnsServer, type DnsServerOptions } from './server.js';
export { ClusterRecords, clusterHandler } from './cluster.js';
export { AnswerCache, type AnswerSource } from './cache.js';
export { forwardHandler, type Upstream } from './forward.js';
export { DnsStats, registerDnsMetrics } from './metrics.js';
export { NodeDns } from './node.js';
export { DEFAULTS as DNS_DEFAULTS, RCODE } from './constants.js';
export type { Handler, Query, Reply } from './types.js';
