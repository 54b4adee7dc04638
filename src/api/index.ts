/** The contract between clients and agents: schemas, response types, typed client, transport. */
export * from './types.js';
export * from './schemas.js';
export * from './defaults.js';
export { ApiClient } from './client.js';
export { parseEndpoint, formatEndpoint, loadClientTls, transport, type ClientTls, type Endpoint, type Transport, type Reply } from './transport.js';
export * from './checks.js';
