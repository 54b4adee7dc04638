/**
 * The agent's logger: pino, on stderr (stdout stays free for what a command prints, as
 * dockerd and containerd log to stderr). Two renderings of the same records:
 *
 *   json  one JSON object per line, pino's own fields (level, time, pid, msg, ...):
 *         for journald, files and log shippers
 *   text  one line per record, `HH:MM:ss.l LEVEL (pid): msg` and then every other field
 *         as key=value (pino-pretty, written synchronously so nothing is lost on exit)
 *
 * The default is text when stderr is a terminal and JSON otherwise.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';
import { UsageError } from './format.js';

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export function parseLogFormat(text: string | undefined, tty: boolean): LogFormat {
  if (text === undefined) return tty ? 'text' : 'json';
  if (!(LOG_FORMATS as readonly string[]).includes(text)) throw new UsageError(`--log-format: '${text}' is not text or json`);
  return text as LogFormat;
}

export function parseLogLevel(text: string): string {
  if (!LEVELS.includes(text)) throw new UsageError(`--log-level: '${text}' is not one of ${LEVELS.join(', ')}`);
  return text;
}

/** A text line: the fields after the message, not pino-pretty's indented block per field. */
function textStream(fd: number, colorize: boolean): DestinationStream {
  return PinoPretty({
    destination: fd,
    sync: true,
    colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'hostname',
  });
}

export function createLogger(o: { level: string; format: LogFormat; fd?: number; colorize?: boolean }): Logger {
  const fd = o.fd ?? 2;
  const options = { level: o.level, base: { pid: process.pid } };
  if (o.format === 'text') return pino(options, textStream(fd, o.colorize ?? false));
  return pino(options, pino.destination({ dest: fd, sync: true }));
}
