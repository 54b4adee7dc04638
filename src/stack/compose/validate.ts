/**
 * The agent's own schemas (control/spec.ts through the API) run on every converted
 * object, so a value the agent would refuse (a scheduler name, a label too long, a
 * health check interval of 0) fails here, before anything is sent, with the agent's
 * wording and the compose path it came from.
 */
import { validateSpec } from '../../api/index.js';
import { ValidationError } from '../../util/errors.js';
import type { StackNetwork, StackService } from '../types.js';
import { failAt } from './errors.js';
import { locate } from './source.js';

export function checkSpec(entry: StackService | StackNetwork): void {
  try {
    if ('portSources' in entry) validateSpec.service.assert(entry.spec);
    else if (entry.spec) validateSpec.network.assert(entry.spec);
  } catch (err) {
    if (err instanceof ValidationError) throw failAt(locate(entry, err.field), err.problem);
    throw err;
  }
}
