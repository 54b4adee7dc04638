/**
 * The agent API is a unix socket (mode 0660, root and the API group), as Docker's:
 * an unprivileged user cannot use it; a member of its group can. There is no
 * plain-TCP API; only /metrics may be served over HTTP (--metrics-addr).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, loopbackNet, startAgent } from '../helpers/procs.js';

const ip = loopbackNet();
// A world-traversable directory, so that only the socket's own mode stands in the way.
const dir = mkdtempSync(join(tmpdir(), 'swarmnet-sock-'));
chmodSync(dir, 0o755);
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const agent = await startAgent(t, { ip: ip(1), dataDir: dir, args: ['--metrics-addr', `${ip(1)}:9323`] });

/** Runs the CLI as another user (util-linux setpriv). */
function cliAs(uid: number, gid: number, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('setpriv', ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', process.execPath, CLI, '--host', `unix://${agent.api}`, ...args], { timeout: 20000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('the socket is 0660, owned by root', async (t) => {
  const st = statSync(agent.api);
  t.ok(st.isSocket());
  t.equal(st.mode & 0o777, 0o660);
  t.equal(st.uid, 0);
});

t.test('an unprivileged user cannot use it', async (t) => {
  const r = await cliAs(65534, 65534, ['service', 'create', '--name', 'sneaky', '--publish', '80']);
  t.not(r.code, 0);
  t.match(r.stderr, /^swarmnet: permission denied on the agent socket/);
  t.notMatch(await agent.ok('service', 'ls'), /sneaky/, 'nothing was created');
});

t.test("a member of the socket's group can", async (t) => {
  const gid = statSync(agent.api).gid;
  const r = await cliAs(65534, gid, ['service', 'ls']);
  t.equal(r.code, 0, r.stderr);
});

t.test('--metrics-addr serves /metrics and nothing else', async (t) => {
  const m = await fetch(`http://${ip(1)}:9323/metrics`);
  t.equal(m.status, 200);
  t.match(await m.text(), /swarmnet_process_cpu_seconds_total/);
  const api = await fetch(`http://${ip(1)}:9323/v1/services`);
  t.equal(api.status, 404, 'no API over plain HTTP');
});
