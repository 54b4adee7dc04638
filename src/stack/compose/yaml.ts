/**
 * Stage 1: YAML text to the sourced tree (tree.ts). The `yaml` package parses (YAML 1.2
 * core schema, duplicate keys refused); this walk adds the compose paths, expands
 * aliases and `<<` merge keys (YAML 1.1 merge, which compose files use with `x-`
 * anchors), and keeps compose's `!reset` / `!override` tags for the merge stage.
 */
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode, type Pair } from 'yaml';
import { ComposeError, failAt } from './errors.js';
import { childPath, itemPath, type Node, type NodeMap, type Scalar } from './tree.js';

/** Aliases can multiply a small file into a huge tree ("billion laughs"): refuse beyond this many values. */
const MAX_VALUES = 200_000;

interface Walk {
  doc: Document;
  file: string;
  count: number;
}

export function parseYaml(text: string, file: string): Node {
  const doc = parseDocument(text, { uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const pos = err.linePos?.[0];
    // yaml's message ends with " at line L, column C:" and a code frame; the position goes in front instead.
    const problem = err.message.split(/ at line \d+, column \d+/)[0]!.trim();
    throw new ComposeError(file, '', problem, { ...(pos && { line: pos.line, col: pos.col }), cause: err });
  }
  if (!isMap(doc.contents)) throw new ComposeError(file, '', 'the top level must be a mapping (services:, networks: ...)');
  return toNode(doc.contents, '', { doc, file, count: 0 });
}

function toNode(y: unknown, path: string, w: Walk): Node {
  if (++w.count > MAX_VALUES) throw new ComposeError(w.file, path, `more than ${MAX_VALUES} values (aliases expanding without end?)`);
  const source = { file: w.file, path };
  if (isAlias(y)) {
    const target = y.resolve(w.doc);
    if (!target) throw failAt(source, `unknown alias *${y.source}`);
    return toNode(target, path, w);
  }
  const tag = mergeTag(y as YamlNode | null);
  const node = ((): Node => {
    if (y === null || y === undefined) return { value: null, source };
    if (isScalar(y)) return { value: plain(y.value), source };
    if (isSeq(y)) return { value: y.items.map((item, i) => toNode(item, itemPath(path, i), w)), source };
    if (isMap(y)) return { value: entries(y.items, path, w), source };
    throw failAt(source, 'is not a YAML value compose understands');
  })();
  return tag ? { ...node, tag } : node;
}

function mergeTag(y: YamlNode | null): Node['tag'] {
  const tag = y && 'tag' in y ? y.tag : undefined;
  return tag === '!reset' ? 'reset' : tag === '!override' ? 'override' : undefined;
}

/** A mapping's entries; `<<: *anchor` (or a list of anchors) adds the anchors' keys that the mapping does not set itself. */
function entries(pairs: Pair[], path: string, w: Walk): NodeMap {
  const out: NodeMap = new Map();
  const merged: unknown[] = [];
  for (const pair of pairs) {
    const key = keyOf(pair.key, path, w);
    if (key === '<<' && isScalar(pair.key) && pair.key.type === 'PLAIN') {
      merged.push(...(isSeq(pair.value) ? pair.value.items : [pair.value]));
      continue;
    }
    out.set(key, toNode(pair.value, childPath(path, key), w));
  }
  // YAML merge: the mapping's own keys win, then earlier anchors over later ones.
  for (const m of merged) {
    const target = isAlias(m) ? m.resolve(w.doc) : m;
    if (!isMap(target)) throw failAt({ file: w.file, path }, '<< must merge a mapping (or a list of mappings)');
    for (const [k, v] of entries(target.items, path, w)) if (!out.has(k)) out.set(k, v);
  }
  return out;
}

function keyOf(k: unknown, path: string, w: Walk): string {
  if (isScalar(k)) return k.value === null ? '' : String(k.value);
  if (k === null || k === undefined) return '';
  throw failAt({ file: w.file, path }, 'mapping keys must be plain values');
}

function plain(v: unknown): Scalar {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return Number(v);
  return String(v);
}
