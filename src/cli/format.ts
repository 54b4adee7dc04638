/** Terminal output: aligned tables like docker's, or JSON with --format json. */

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n') + '\n';
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** `5s`, `500ms`, `2m`, `1h`; a bare number is seconds. Returns milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag}: '${text}' is not a duration (e.g. 500ms, 5s, 2m)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
  return Math.round(Number(m[1]) * unit);
}

export function parseIntArg(text: string, flag: string): number {
  if (!/^-?\d+$/.test(text.trim())) throw new UsageError(`${flag}: '${text}' is not a whole number`);
  return Number(text);
}

/** A mistake on the command line, found before anything is sent. */
export class UsageError extends Error {
  readonly code = 'EUSAGE';
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
