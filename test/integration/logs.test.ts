/**
 * The agent's logs in both renderings (--log-format text|json): the same records with the
 * same fields. The agent runs for real; its stderr is read until its 'agent ready' record.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, killOnTeardown, loopbackNet } from '../helpers/procs.js';

const ip = loopbackNet();

/** Starts an agent with `args` and resolves with its stderr up to and including the line holding `until`. */
function agentStderr(args: string[], until: string): Promise<{ stderr: string; stdout: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-logs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [CLI, 'agent', '--data-dir', dir, '--socket', join(dir, 'api.sock'), '--no-overlay', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnTeardown(t, child);
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${until}' within 20 s: ${stderr}`)), 20000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const end = stderr.indexOf('\n', stderr.indexOf(until));
      if (stderr.includes(until) && end >= 0) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve({ stderr: stderr.slice(0, end + 1), stdout });
      }
    });
    child.once('exit', (code) => reject(new Error(`agent exited (${code}) before '${until}': ${stderr}`)));
  });
}

/** `[HH:MM:ss.l] LEVEL (pid): message {fields}` -> its parts. */
function parseText(line: string): { level: string; pid: number; msg: string; fields: Record<string, unknown> } {
  const m = /^\[\d\d:\d\d:\d\d\.\d{3}\] (\w+) \((\d+)\): (.*?)(?: (\{.*\}))?$/.exec(line);
  if (!m) throw new Error(`not a text log line: ${line}`);
  return { level: m[1]!, pid: Number(m[2]), msg: m[3]!, fields: m[4] ? (JSON.parse(m[4]) as Record<string, unknown>) : {} };
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

t.test('text and JSON logs carry the same fields', async (t) => {
  const json = await agentStderr(['--ingress-addr', ip(1), '--log-format', 'json'], 'agent ready');
  const text = await agentStderr(['--ingress-addr', ip(2), '--log-format', 'text'], 'agent ready');
  const jLine = json.stderr.trim().split('\n').find((l) => l.includes('"agent ready"'))!;
  const tLine = text.stderr.trim().split('\n').find((l) => l.includes('agent ready'))!;
  const j = JSON.parse(jLine) as Record<string, unknown>;
  const x = parseText(tLine);
  t.equal(x.msg, j.msg, 'the message');
  t.equal(x.level, LEVEL_NAMES[j.level as number], 'the level, by name');
  t.type(j.pid, 'number');
  t.type(j.time, 'number');
  const { level: _l, time: _t, pid: _p, msg: _m, ...jFields } = j;
  t.same(Object.keys(x.fields).sort(), Object.keys(jFields).sort(), 'the same fields after the message');
  // The two agents differ in their node id, ingress address and data directory only.
  const same = { node: 0, ingress: 0, socket: 0 };
  t.same({ ...x.fields, ...same }, { ...jFields, ...same }, 'with the same values');
  t.equal(x.fields.ingress, ip(2));
  t.equal(json.stdout + text.stdout, '', 'logs are on stderr; stdout stays empty');
});

t.test('a bad --log-format is refused naming the flag, before anything starts', async (t) => {
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'agent', '--log-format', 'xml'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stderr }));
  });
  t.not(r.code, 0);
  t.match(r.stderr, /--log-format: 'xml' is not text or json/);
});
