/**
 * A compose file as read: YAML values, each with the file and the compose path it came
 * from (`services.web.ports[1]`). Every later stage (interpolation, key checks,
 * canonical form, merging, conversion) works on this tree, so that any value, also one
 * an override file set, can say where it was written.
 */
import type { Source } from '../types.js';
import { failAt } from './errors.js';

export type Scalar = string | number | boolean | null;
export type NodeMap = Map<string, Node>;

export interface Node {
  value: Scalar | Node[] | NodeMap;
  source: Source;
  /** compose's merge tags (13-merge.md): `!reset` removes what earlier files set, `!override` replaces it whole. */
  tag?: 'reset' | 'override';
}

export type MapNode = Node & { value: NodeMap };
export type SeqNode = Node & { value: Node[] };

export const isMapNode = (n: Node): n is MapNode => n.value instanceof Map;
export const isSeqNode = (n: Node): n is SeqNode => Array.isArray(n.value);

/** `services` + `web` -> `services.web` (the top level has the empty path). */
export const childPath = (path: string, key: string): string => (path ? `${path}.${key}` : key);
export const itemPath = (path: string, i: number): string => `${path}[${i}]`;

export function scalar(value: Scalar, source: Source): Node {
  return { value, source };
}

/** The entries of a mapping node; an error at the node otherwise. */
export function mapping(n: Node, what = 'a mapping'): NodeMap {
  if (!isMapNode(n)) throw failAt(n.source, `must be ${what}`);
  return n.value;
}

/** Absent or null (`networks: {front: }` declares front with no settings) is no mapping. */
export function optionalMapping(n: Node | undefined): NodeMap | undefined {
  if (n === undefined || n.value === null) return undefined;
  return mapping(n);
}

export function sequence(n: Node, what = 'a list'): Node[] {
  if (!isSeqNode(n)) throw failAt(n.source, `must be ${what}`);
  return n.value;
}
