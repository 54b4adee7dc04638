/**
 * Compose files to a StackSpec: pure, client side, nothing sent. The pipeline, one file
 * per stage:
 *
 *   yaml.ts         text -> tree with compose paths (YAML errors with line and column)
 *   version.ts      version 3 / Compose Specification only
 *   interpolate.ts  ${VAR} from the environment over the .env beside the first file (dotenv.ts)
 *   check.ts        every key known (keys.ts); ignored ones noted (notes.ts)
 *   canonical.ts    used keys in one form (ports.ts parses ports)
 *   merge.ts        later -c files over earlier ones, as compose merges them
 *   convert.ts      networks (networks.ts) and services (services.ts) checked by the
 *                   agent's schemas (validate.ts)
 *
 * Every error is a ComposeError naming the file and the compose path; sourceOf maps
 * errors found later (by the planner or the agent) back the same way.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { StackSpec } from '../types.js';
import { checkKeys } from './check.js';
import { canonical } from './canonical.js';
import { toStackSpec } from './convert.js';
import { parseDotenv } from './dotenv.js';
import { ComposeError } from './errors.js';
import { interpolateTree, type Variables } from './interpolate.js';
import { COMPOSE_KEYS } from './keys.js';
import { mergeFiles } from './merge.js';
import { Notes } from './notes.js';
import type { MapNode } from './tree.js';
import { parseYaml } from './yaml.js';
import { checkVersion } from './version.js';

export { ComposeError } from './errors.js';
export { sourceOf } from './source.js';

export interface LoadOptions {
  /** The environment (process.env): wins over the .env file. */
  env: Record<string, string | undefined>;
}

/** `files` as the user named them (errors quote them so); `stackName` is already checked by the caller. */
export function loadStack(files: string[], stackName: string, o: LoadOptions): { spec: StackSpec; warnings: string[] } {
  if (!files.length) throw new ComposeError('stack deploy', '', 'no compose file given (-c FILE)');
  const notes = new Notes();
  const unset: Variables['unset'] = (name, at) => notes.unsetVariable(name, at);
  const fromEnv = (name: string) => o.env[name];
  // `-c -` reads standard input (as docker); its .env is the working directory's.
  const dotenv = readDotenv(join(files[0] === '-' ? '.' : dirname(files[0]!), '.env'), { lookup: fromEnv, unset });
  const vars: Variables = { lookup: (name) => fromEnv(name) ?? dotenv[name], unset };
  let merged: MapNode | undefined;
  for (const file of files) merged = mergeFiles(merged, loadFile(file, vars, notes));
  const spec = toStackSpec(merged!, stackName, notes);
  return { spec, warnings: notes.lines() };
}

function loadFile(file: string, vars: Variables, notes: Notes): MapNode {
  const root = parseYaml(read(file)!, file) as MapNode;
  checkVersion(root);
  interpolateTree(root, vars);
  checkKeys(root, COMPOSE_KEYS, notes);
  canonical(root, notes);
  return root;
}

/** Variables of the .env file; none when there is no such file. */
function readDotenv(file: string, vars: Variables): Record<string, string> {
  const text = read(file, { optional: true });
  return text === undefined ? {} : parseDotenv(text, file, vars);
}

function read(file: string, o: { optional?: boolean } = {}): string | undefined {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (o.optional && code === 'ENOENT') return undefined;
    throw new ComposeError(file, '', `cannot read: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
}
