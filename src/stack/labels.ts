/** The label docker puts on every object of a stack: stack ls/services/ps/rm find them by it. */
export const STACK_LABEL = 'com.docker.stack.namespace';
