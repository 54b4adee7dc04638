/** Supervision of a manager's local nats-server (mutual TLS, JetStream, routes to the other managers). */
export { CLUSTER_NAME, NATSD_DEFAULTS, certUser, isClustered, nodeTag, quote, renderConfig, type NatsdConfig, type NatsdTls } from './config.js';
export { NatsServer, NatsdReloadError, NatsdStartError, SUPERVISOR_DEFAULTS, type NatsServerOptions, type NatsdUpdate, type UpdateResult } from './supervisor.js';
