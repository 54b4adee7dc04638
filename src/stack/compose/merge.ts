/**
 * Stage 5: several `-c` files, in order, into one tree, by compose's rules
 * (compose-spec 13-merge.md; compose-go override/merge.go and uncity.go):
 *
 *   mapping      merged key by key; a later scalar wins; a later null keeps the earlier value
 *   sequence     appended
 *   otherwise    (a list over a mapping...) the later value
 *   services.*.ports              by identity (ip, published, target, protocol): a later
 *                                 item with the same identity replaces the earlier one in place
 *   services.*.networks.*.aliases appended without duplicates
 *   networks.*.ipam.config        replaced (compose merges only items of the same subnet,
 *                                 and swarmnet reads one subnet)
 *   !reset                        removes the value; !override replaces it without merging
 *
 * Labels and service networks are mappings by now (canonical.ts), so `- a` in one file
 * and `a: {aliases: ...}` in the next merge as compose merges them. Each node keeps its
 * source: a merged mapping where it was first defined, a replaced value its new file.
 */
import { isMapNode, isSeqNode, type MapNode, type Node, type NodeMap } from './tree.js';

type Rule = 'entries-replace' | 'append-unique' | 'replace';

const RULES: Array<[string[], Rule]> = [
  [['services', '*', 'ports'], 'entries-replace'],
  [['services', '*', 'networks', '*', 'aliases'], 'append-unique'],
  [['networks', '*', 'ipam', 'config'], 'replace'],
];

/** `over` (a later file) onto `base` (the files before it; undefined for the first file). */
export function mergeFiles(base: MapNode | undefined, over: MapNode): MapNode {
  return { ...(base ?? over), value: mergeMaps(base?.value ?? new Map(), over.value, []) };
}

function ruleAt(at: string[]): Rule | undefined {
  return RULES.find(([pattern]) => pattern.length === at.length && pattern.every((p, i) => p === '*' || p === at[i]))?.[1];
}

/** The merged value, or undefined when `over` removes it. */
function mergeNode(base: Node | undefined, over: Node, at: string[]): Node | undefined {
  if (over.tag === 'reset') return undefined;
  if (base === undefined || base.value === null || over.tag === 'override') return untag(over);
  if (over.value === null) return base;
  const rule = ruleAt(at);
  if (rule === 'replace') return untag(over);
  if (isMapNode(base) && isMapNode(over)) {
    return { ...base, value: rule === 'entries-replace' ? replaceEntries(base.value, over.value) : mergeMaps(base.value, over.value, at) };
  }
  if (isSeqNode(base) && isSeqNode(over)) {
    const items = [...base.value, ...over.value.map(untag).filter((n): n is Node => n !== undefined)];
    return { ...base, value: rule === 'append-unique' ? unique(items) : items };
  }
  // Different shapes: the later file wins. compose converts some keys first (environment as a
  // list or a mapping); the keys swarmnet reads are in one form already (canonical.ts) and
  // are checked where they are converted, at the later file's path.
  return untag(over);
}

function mergeMaps(base: NodeMap, over: NodeMap, at: string[]): NodeMap {
  const out: NodeMap = new Map(base);
  for (const [key, o] of over) {
    const merged = mergeNode(out.get(key), o, [...at, key]);
    if (merged === undefined) out.delete(key);
    else out.set(key, merged);
  }
  return out;
}

function replaceEntries(base: NodeMap, over: NodeMap): NodeMap {
  const out: NodeMap = new Map(base);
  for (const [key, o] of over) {
    const n = untag(o);
    if (n === undefined) out.delete(key);
    else out.set(key, n);
  }
  return out;
}

/** A value as it stands alone: its tags applied (a `!reset` inside is removed), none left. */
function untag(n: Node): Node | undefined {
  if (n.tag === 'reset') return undefined;
  const { tag: _tag, ...plain } = n;
  if (isMapNode(n)) {
    const value: NodeMap = new Map();
    for (const [k, v] of n.value) {
      const u = untag(v);
      if (u) value.set(k, u);
    }
    return { ...plain, value };
  }
  if (isSeqNode(n)) return { ...plain, value: n.value.map(untag).filter((x): x is Node => x !== undefined) };
  return plain;
}

function unique(items: Node[]): Node[] {
  const seen = new Set<string>();
  return items.filter((n) => {
    const k = JSON.stringify(n.value);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
