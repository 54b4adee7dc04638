/** The one failure mode of loading compose files: the file and the place in it, then the problem. */
import { SwarmnetError } from '../../util/errors.js';
import type { Source } from '../types.js';

/**
 * `compose.yml: services.web.ports[1]: published port 70000 is out of range (1-65535)`, or
 * with a position for what YAML itself refuses: `compose.yml:4:7: Map keys must be unique`.
 */
export class ComposeError extends SwarmnetError {
  override readonly code = 'ECOMPOSE';
  constructor(
    /** As the user named it on the command line. */
    readonly file: string,
    /** Compose path (`services.web.ports[1]`); empty for the file as a whole or a position. */
    readonly path: string,
    readonly problem: string,
    options: { line?: number; col?: number; cause?: unknown } = {},
  ) {
    super(`${where(file, path, options)}: ${problem}`, { cause: options.cause });
  }
}

function where(file: string, path: string, o: { line?: number; col?: number }): string {
  if (o.line !== undefined) return `${file}:${o.line}:${o.col ?? 1}`;
  return path ? `${file}: ${path}` : file;
}

/** The error for a value found at `source`. */
export function failAt(source: Source, problem: string): ComposeError {
  return new ComposeError(source.file, source.path, problem);
}
