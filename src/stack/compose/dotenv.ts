/**
 * The `.env` file beside the first compose file: variables for interpolation, under the
 * environment's (compose: the environment wins). Lines as compose reads them:
 *
 *   # a comment                 KEY=value # a comment after a space
 *   KEY=value                   export KEY=value
 *   KEY="with \"escapes\"\n"    KEY='literal, no $interpolation'
 *   KEY=${OTHER:-default}       (interpolated, except in single quotes)
 *
 * A line naming a key without `=` takes nothing (compose looks it up in the environment,
 * which interpolation reads anyway).
 */
import { ComposeError } from './errors.js';
import { interpolate, type Variables } from './interpolate.js';

const ASSIGN = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/;
const BARE = /^(?:export\s+)?[A-Za-z_][A-Za-z0-9_.-]*$/;
/** Escapes of double-quoted values; `\$` becomes `$$`, which interpolation turns into a literal `$`. */
const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\', $: '$$' };

/** `vars` resolves variables used inside the file (the environment, then the file's earlier lines). */
export function parseDotenv(text: string, file: string, vars: Variables): Record<string, string> {
  const out: Record<string, string> = {};
  const inner: Variables = { lookup: (n) => vars.lookup(n) ?? out[n], unset: (n, at) => vars.unset(n, at) };
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#') || BARE.test(line)) return;
    const m = ASSIGN.exec(line);
    const at = { file, path: `line ${i + 1}` };
    if (!m) throw new ComposeError(file, '', 'expected KEY=VALUE', { line: i + 1, col: 1 });
    out[m[1]!] = valueOf(m[2]!, inner, at, i + 1);
  });
  return out;
}

function valueOf(raw: string, vars: Variables, at: { file: string; path: string }, line: number): string {
  const quote = raw[0];
  if (quote === "'" || quote === '"') {
    const end = closingQuote(raw, quote);
    if (end < 0) throw new ComposeError(at.file, '', `missing closing ${quote}`, { line, col: 1 });
    const body = raw.slice(1, end);
    if (quote === "'") return body;
    return interpolate(body.replace(/\\(.)/g, (all, c: string) => ESCAPES[c] ?? all), vars, at);
  }
  // An unquoted value ends at a ` #` comment.
  return interpolate(raw.replace(/\s+#.*$/, '').trim(), vars, at);
}

function closingQuote(raw: string, quote: string): number {
  for (let i = 1; i < raw.length; i++) {
    if (raw[i] === '\\' && quote === '"') i++;
    else if (raw[i] === quote) return i;
  }
  return -1;
}
