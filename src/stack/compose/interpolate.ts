/**
 * Stage 2: variables in values (compose-spec 12-interpolation.md), per file before
 * merging, as compose does. Keys are never interpolated.
 *
 *   $VAR ${VAR}            the value; unset: "" and a warning
 *   ${VAR:-default}        default when unset or empty   ${VAR-default}  when unset
 *   ${VAR:?error}          refuse when unset or empty    ${VAR?error}    when unset
 *   ${VAR:+alternative}    alternative when set and not empty  ${VAR+alternative} when set
 *   $$                     a literal $
 *
 * Defaults, errors and alternatives may themselves hold variables (`${A:-${B:-x}}`);
 * they are expanded only when used. A `$` not followed by a name or `{` stays as is.
 */
import type { Source } from '../types.js';
import { failAt } from './errors.js';
import { isMapNode, isSeqNode, type Node } from './tree.js';

export interface Variables {
  /** The variable's value, undefined when unset. */
  lookup(name: string): string | undefined;
  /** Told of each unset variable used without a default. */
  unset(name: string, at: Source): void;
}

const NAME = /^[_a-zA-Z][_a-zA-Z0-9]*/;
const BRACED = /^([_a-zA-Z][_a-zA-Z0-9]*)(?:(:?[-?+])([\s\S]*))?$/;

/** Every string value of the tree, in place. */
export function interpolateTree(node: Node, vars: Variables): void {
  if (typeof node.value === 'string') node.value = interpolate(node.value, vars, node.source);
  else if (isSeqNode(node)) for (const item of node.value) interpolateTree(item, vars);
  else if (isMapNode(node)) for (const child of node.value.values()) interpolateTree(child, vars);
}

export function interpolate(text: string, vars: Variables, at: Source): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) return out + text.slice(i);
    out += text.slice(i, dollar);
    const next = text[dollar + 1];
    if (next === '$') {
      out += '$';
      i = dollar + 2;
    } else if (next === '{') {
      const end = closingBrace(text, dollar + 2);
      // The value itself is not quoted: it may be a secret (an .env line, an environment: entry); the path says where it is.
      if (end < 0) throw failAt(at, `invalid interpolation format: "\${" without its "}"`);
      out += braced(text.slice(dollar + 2, end), vars, at);
      i = end + 1;
    } else {
      const name = NAME.exec(text.slice(dollar + 1))?.[0];
      if (name) out += value(name, vars, at);
      else out += '$';
      i = dollar + 1 + (name?.length ?? 0);
    }
  }
  return out;
}

/** The index of the `}` closing a `${` whose body starts at `from`, nested `${...}` skipped; -1 if none. */
function closingBrace(text: string, from: number): number {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '{') {
      depth++;
      i++;
    } else if (text[i] === '}') {
      if (depth === 0) return i;
      depth--;
    }
  }
  return -1;
}

function braced(body: string, vars: Variables, at: Source): string {
  const m = BRACED.exec(body);
  if (!m) throw failAt(at, `invalid interpolation format: \${${body}} (expected \${NAME}, \${NAME:-default}, \${NAME:?error}...)`);
  const [, name, op, word = ''] = m as unknown as [string, string, string | undefined, string | undefined];
  const v = vars.lookup(name);
  const set = v !== undefined;
  const full = set && v !== '';
  const expand = () => interpolate(word, vars, at);
  switch (op) {
    case undefined:
      return value(name, vars, at);
    case ':-':
      return full ? v : expand();
    case '-':
      return set ? v : expand();
    case ':?':
    case '?':
      if (op === ':?' ? full : set) return v!;
      throw failAt(at, `variable ${name} is required${word ? `: ${expand()}` : ''}`);
    case ':+':
      return full ? expand() : '';
    default: // '+'
      return set ? expand() : '';
  }
}

function value(name: string, vars: Variables, at: Source): string {
  const v = vars.lookup(name);
  if (v === undefined) vars.unset(name, at);
  return v ?? '';
}
