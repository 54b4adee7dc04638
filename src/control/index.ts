export * from './constants.js';
export * from './schema.js';
export * from './spec.js';
export * from './types.js';
export { Collection, type Versioned, type InvalidHandler } from './collection.js';
export { ControlPlane } from './plane.js';
export { EmbeddedStore } from './store/embedded.js';
export { View } from './view.js';
export { Liveness, type LivenessOptions } from './liveness.js';
