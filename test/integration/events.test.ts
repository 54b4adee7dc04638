/**
 * `swarmnet events`: a real agent, a real backend killed and started again under an
 * active health check, and the CLI streaming as a user runs it.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { CLI, killOnTeardown, loopbackNet, startAgent, startBackends } from '../helpers/procs.js';
import { until } from '../helpers/net.js';

const ip = loopbackNet();
const agent = await startAgent(t, { ip: ip(1), args: ['--heartbeat', '10m', '--node-timeout', '1h'] });
const bip = ip(2);

interface Line {
  time: string;
  type: string;
  action: string;
  name: string;
  attributes: Record<string, string>;
}

/** `swarmnet events ARGS --format json` running; its events so far. */
function follow(args: string[]): { lines: Line[]; text: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, '--host', `unix://${agent.api}`, 'events', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnTeardown(t, child);
  const lines: Line[] = [];
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (!args.includes('json')) return;
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(out.slice(0, nl)) as Line);
      out = out.slice(nl + 1);
    }
  });
  return { lines, text: () => out, exited: new Promise((r) => child.once('exit', r)) };
}

const seen = (lines: Line[], type: string, action: string, name: string) => lines.findIndex((l) => l.type === type && l.action === action && l.name === name);

t.test('a task killed shows down, then up again when it comes back', async (t) => {
  // --since now: whatever happens from here on is in both streams, however late a loaded
  // machine starts the CLI (kept events are replayed first, then live ones follow).
  const since = (Date.now() / 1000).toFixed(3);
  const stream = follow(['--since', since, '--format', 'json']);
  const all = follow(['--since', since, '--format', 'json', '--filter', 'type=task', '--filter', 'action=down', '--filter', 'action=up']);
  t.equal((await agent.cli('service', 'create', '--name', 'ev', '--publish', '23001:80', '--health-interval', '200ms', '--health-timeout', '200ms', '--health-retries', '2')).code, 0);
  let backend = await startBackends(t, [`e1@${bip}:9301`]);
  t.equal((await agent.cli('task', 'add', '--service', 'ev', '--addr', `${bip}:9301`, '--name', 'ev.1')).code, 0);
  await until('service and task created', async () => seen(stream.lines, 'service', 'create', 'ev') >= 0 && seen(stream.lines, 'task', 'create', 'ev.1') >= 0, 15000);

  backend.kill();
  await until('task down', async () => seen(stream.lines, 'task', 'down', 'ev.1') >= 0, 15000);
  backend = await startBackends(t, [`e1@${bip}:9301`]);
  await until('task up again', async () => seen(stream.lines, 'task', 'up', 'ev.1') > seen(stream.lines, 'task', 'down', 'ev.1'), 15000);
  const down = stream.lines[seen(stream.lines, 'task', 'down', 'ev.1')]!;
  t.equal(down.attributes.service, 'ev', 'the task event names its service');
  t.equal(down.attributes.backends, `${bip}:9301`);
  t.ok(Date.parse(down.time) > Date.now() - 20000, 'with its time');

  t.equal((await agent.cli('task', 'rm', 'ev.1')).code, 0);
  t.equal((await agent.cli('service', 'rm', 'ev')).code, 0);
  await until('task and service removed', async () => seen(stream.lines, 'service', 'remove', 'ev') >= 0 && seen(stream.lines, 'task', 'remove', 'ev.1') >= 0, 15000);

  await until('the filtered stream has both', async () => all.lines.length >= 2, 15000);
  const filtered = all.lines.map((l) => `${l.type} ${l.action} ${l.name}`);
  t.same(filtered.slice(0, 2), ['task down ev.1', 'task up ev.1'], 'the filtered stream holds only task down and up, in order');
  t.ok(all.lines.every((l) => l.type === 'task' && (l.action === 'down' || l.action === 'up')), 'and nothing else');
});

t.test('--since replays kept events; --until in the past ends the stream', async (t) => {
  const past = follow(['--since', '2m', '--until', '0s', '--filter', 'name=ev.1']);
  t.equal(await past.exited, 0, 'exits by itself');
  const text = past.text().trim().split('\n');
  t.ok(text.some((l) => / task down ev\.1 \(service=ev, backends=/.test(l)), `text lines as docker events prints them:\n${past.text()}`);
  t.ok(text.every((l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z task \w+ ev\.1/.test(l)), 'every line is about ev.1');
});

t.test('bad filters and times are refused naming the flag', async (t) => {
  for (const [args, want] of [
    [['--filter', 'colour=red'], /--filter: 'colour' is not one of type, action, name, id, service/],
    [['--filter', 'type=volume'], /--filter: type 'volume' is not one of service, task/],
    [['--filter', 'type'], /--filter: 'type' is not KEY=VALUE/],
    [['--since', 'yesterday'], /--since: 'yesterday' is not a time/],
    [['--since', '1m', '--until', '2m'], /--until: is before --since/],
  ] as const) {
    const r = await agent.cli('events', ...args);
    t.not(r.code, 0, args.join(' '));
    t.match(r.stderr, want);
  }
  const api = await agent.request('GET', '/v1/events?type=volume');
  t.equal(api.status, 400, 'the API refuses a bad type too');
  t.match(api.text, /"type: 'volume' is not one of/);
});
