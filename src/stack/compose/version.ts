/**
 * Which compose files load: version 3.x and the Compose Specification (no `version`,
 * which the specification keeps only as an obsolete, informative key). Versions 1 and 2
 * describe single-host docker-compose setups (links, volumes_from, no deploy): refused
 * with a clear line rather than half-read. Checked before the keys, so a version 2 file
 * gets this line and not an unknown-key error.
 */
import { ComposeError, failAt } from './errors.js';
import { TOP_LEVEL_KEYS } from './keys.js';
import { isMapNode, type MapNode } from './tree.js';

const SUPPORTED = /^3(\.\d+)?$/;
const WHY = 'swarmnet deploys version 3 and Compose Specification files';

export function checkVersion(root: MapNode): void {
  const v = root.value.get('version');
  if (v && v.value !== null) {
    const version = String(v.value).trim();
    if (!SUPPORTED.test(version)) throw failAt(v.source, `version ${version} is not supported: ${WHY}`);
    return;
  }
  // Version 1 had no `version` and no `services:`: services (with an image or a build) sat at the top level.
  if (root.value.has('services')) return;
  for (const [key, n] of root.value) {
    if (!TOP_LEVEL_KEYS.has(key) && isMapNode(n) && (n.value.has('image') || n.value.has('build'))) throw new ComposeError(n.source.file, '', `version 1 is not supported (services at the top level, such as ${key}): ${WHY}`);
  }
}
