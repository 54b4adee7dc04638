/**
 * Error classes, one per failure mode, each with a stable `code` that callers
 * branch on (undici `errors.js` style). The original error is kept in `cause`.
 */
export class SwarmnetError extends Error {
  readonly code: string = 'ESWARMNET';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input that fails validation. `field` names the offending field, e.g. `ports[0].published`. */
export class ValidationError extends SwarmnetError {
  override readonly code = 'EINVALID';
  constructor(readonly field: string, readonly problem: string) {
    super(field ? `${field}: ${problem}` : problem);
  }
}

/** The named object does not exist. */
export class NotFoundError extends SwarmnetError {
  override readonly code = 'ENOTFOUND';
}

/** A key that must be unique is taken (a name, a published port, an IP). */
export class ConflictError extends SwarmnetError {
  override readonly code = 'ECONFLICT';
  constructor(message: string, readonly field = '') {
    super(field ? `${field}: ${message}` : message);
  }
}

/** A compare-and-set lost: the entry changed since it was read. Retry the read-modify-write. */
export class RevisionMismatchError extends SwarmnetError {
  override readonly code = 'EREVISION';
}

/** An address pool is used up. */
export class ExhaustedError extends SwarmnetError {
  override readonly code = 'EEXHAUSTED';
}

/** The store failed below us (disk, NATS). */
export class StoreError extends SwarmnetError {
  override readonly code = 'ESTORE';
}

/** This node was removed from the cluster by a manager. */
export class RemovedError extends SwarmnetError {
  override readonly code = 'EREMOVED';
}

/** The caller is not allowed to do this (no or a foreign certificate, a removed node, a worker doing a manager's job). */
export class AuthError extends SwarmnetError {
  override readonly code = 'EAUTH';
}

/** Talking to the agent API failed (client side). `field`: the request field the agent refused, when it said. */
export class ApiError extends SwarmnetError {
  constructor(message: string, override readonly code: string, readonly status: number, readonly field?: string) {
    super(message);
  }
}

export function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
