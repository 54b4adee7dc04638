export { Agent, type AgentOptions } from './agent.js';
export { Reconciler } from './reconciler.js';
