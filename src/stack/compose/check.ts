/**
 * Stage 3: every key of a file against the compose key table (keys.ts). Unknown keys
 * and refused keys are errors; ignored ones are noted for the warning lines. Values are
 * checked later, where they are converted.
 */
import { failAt } from './errors.js';
import { SWARMNET_KEY, type Rule } from './keys.js';
import type { Notes } from './notes.js';
import { isMapNode, isSeqNode, type Node } from './tree.js';

export function checkKeys(node: Node, rule: Rule, notes: Notes): void {
  const path = node.source.path;
  if (rule === 'used') return;
  if (rule === 'ignored') return notes.ignore(path);
  if (rule === 'unsupported') return notes.unsupport(path);
  if (rule === 'build') return notes.build(path);
  if ('refused' in rule) throw failAt(node.source, rule.refused);
  if (isSeqNode(node) && rule.items) for (const item of node.value) if (isMapNode(item)) checkKeys(item, rule.items, notes);
  if (!isMapNode(node)) return;
  for (const [key, child] of node.value) {
    if (rule.entries) {
      checkKeys(child, rule.entries, notes);
      continue;
    }
    const sub = rule.keys?.[key];
    if (sub !== undefined) checkKeys(child, sub, notes);
    else if (key === SWARMNET_KEY) throw failAt(child.source, `${SWARMNET_KEY} is read on services only (services.NAME.${SWARMNET_KEY})`);
    else if (!key.startsWith('x-') || rule.extensions === false) throw failAt(child.source, 'unknown key (not in the compose file format)');
  }
}
