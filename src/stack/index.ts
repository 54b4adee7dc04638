/** Stacks: compose files to networks and services, deployed through the agent API. */
export { ComposeError, loadStack, sourceOf, type LoadOptions } from './compose/index.js';
export { deployStack, listStacks, removeStack, stackObjects, type StackObjects } from './deploy.js';
export { STACK_LABEL } from './labels.js';
export { planStack, PlanError, type Current, type Plan } from './plan.js';
export type { StackNetwork, StackService, StackSpec } from './types.js';
