/**
 * A failed invocation: a CNI error code (the spec's well-known ones, or ours from 100),
 * a short message and details. Everything the plugin refuses or fails at ends here.
 */
import type { ErrorCode } from './constants.js';

export class CniError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details = '',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CniError';
  }
}
