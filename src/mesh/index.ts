export { Mesh, type ListenerSpec, type BackendStats, type ServiceStats, type ApplyError } from './mesh.js';
export { DEFAULTS as MESH_DEFAULTS, type MeshSettings } from './constants.js';
export type { BackendSpec, FlowKey, Scheduler } from './types.js';
export type { ConnView } from './conntable.js';
export { createScheduler, maglevTable, maglevSize } from './sched/index.js';
export { Backend } from './backend.js';
export { proxyV1, proxyV2 } from './proxy-protocol.js';
export { registerMeshMetrics } from './metrics.js';
