/**
 * `npm pack` gives an installable tarball: installed with npm into an empty prefix (as
 * `npm install -g` does), it builds the addon from the sources it carries, and its
 * `swarmnet` command runs an agent on the native relay. The unit file it ships passes
 * `systemd-analyze verify`.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST, killOnTeardown, loopbackNet } from '../helpers/procs.js';

const ROOT = join(DIST, '..');
const ip = loopbackNet();
const dir = mkdtempSync(join(tmpdir(), 'swarmnet-pack-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function sh(cmd: string, args: string[], cwd: string, timeoutMs = 240000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('npm pack, npm install of the tarball, the installed agent runs', async (t) => {
  // --ignore-scripts: dist/ is already built (pretest); prepare would rewrite it under the running suite.
  const pack = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT);
  t.equal(pack.code, 0, `npm pack${pack.code ? `: ${pack.stderr}` : ''}`);
  const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = info!.files.map((f) => f.path);
  for (const f of ['binding.gyp', 'native/src/relay.c', 'native/src/addon.c', 'dist/src/cli/main.js', 'dist/src/cni/main.js', 'systemd/swarmnet.service', 'docs/install.md']) {
    t.ok(files.includes(f), `the tarball holds ${f}`);
  }
  t.notOk(files.some((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('build/')), 'no tests and no prebuilt addon: it is built where it is installed');

  const prefix = join(dir, 'prefix');
  const install = await sh('npm', ['install', '--global', '--allow-scripts=swarmnet', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(dir, info!.filename)], dir);
  t.equal(install.code, 0, `npm install of the tarball${install.code ? `: ${install.stderr}` : ''}`);
  const pkg = join(prefix, 'lib/node_modules/swarmnet');
  t.ok(existsSync(join(pkg, 'build/Release/swarmnet.node')), 'the addon was built from its sources at install');
  t.ok(readdirSync(join(prefix, 'bin')).includes('swarmnet-cni'), 'swarmnet-cni is on the PATH of the prefix');

  const version = await sh(join(prefix, 'bin/swarmnet'), ['--version'], dir, 20000);
  t.equal(version.code, 0, `swarmnet --version${version.code ? `: ${version.stderr}` : ''}`);

  const data = join(dir, 'data');
  const agent = spawn(join(prefix, 'bin/swarmnet'), ['agent', '--data-dir', data, '--socket', join(dir, 'api.sock'), '--ingress-addr', ip(1), '--no-overlay', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnTeardown(t, agent);
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no 'agent ready' in 20 s: ${err}`)), 20000);
    agent.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const line = err.split('\n').find((l) => l.includes('"agent ready"'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
      }
    });
    agent.once('exit', (code) => reject(new Error(`the installed agent exited (${code}): ${err}`)));
  });
  t.equal(ready.relay, 'native', 'the installed agent relays with its own built addon');
  agent.kill('SIGTERM');
});

t.test('the systemd unit verifies', { skip: existsSync('/usr/bin/systemd-analyze') ? false : 'no systemd-analyze' }, async (t) => {
  const r = await sh('systemd-analyze', ['verify', join(ROOT, 'systemd/swarmnet.service')], ROOT, 30000);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr.trim(), '', 'no warnings');
});
