/**
 * The swarmnet CNI plugin as a runtime sees it: an executable named `swarmnet-cni` in a
 * plugin directory (CNI_PATH / podman's cni_plugin_dirs), and helpers that call it the
 * way a runtime does (CNI_* environment, network configuration on stdin).
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST } from './procs.js';
import { onCleanup } from './cleanup.js';

type Teardown = { teardown(fn: () => unknown): void };

export const PLUGIN_MAIN = join(DIST, 'src/cni/main.js');

/**
 * A temp directory holding an executable `swarmnet-cni`: a two-line sh wrapper running
 * dist/src/cni/main.js with this node. Removed in the test's teardown.
 */
export function pluginDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-cni-'));
  chmodSync(dir, 0o755);
  onCleanup(t, () => rmSync(dir, { recursive: true, force: true }));
  const wrapper = join(dir, 'swarmnet-cni');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${PLUGIN_MAIN} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return dir;
}

export interface PluginRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed (undefined when empty or not JSON). */
  json: Record<string, unknown> | undefined;
}

export interface PluginCall {
  /** The plugin directory (pluginDir). */
  dir: string;
  /** CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS... (CNI_PATH defaults to `dir`). */
  env: Record<string, string>;
  /** The network configuration (an object is sent as JSON, a string as it is). */
  config: unknown;
  /** The network namespace the runtime runs in (`ip netns exec NS`); default this one. */
  ns?: string;
  timeoutMs?: number;
}

/**
 * Runs `swarmnet-cni` as a runtime does: found in the plugin directory, the CNI_*
 * variables and PATH as its only environment, the configuration on stdin.
 */
export function runPlugin(c: PluginCall): Promise<PluginRun> {
  const exe = join(c.dir, 'swarmnet-cni');
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_PATH: c.dir, ...c.env };
  const [cmd, args] = c.ns ? ['ip', ['netns', 'exec', c.ns, exe]] : [exe, []];
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env, timeout: c.timeoutMs ?? 30000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code, stdout, stderr, json });
    });
    child.stdin?.end(typeof c.config === 'string' ? c.config : JSON.stringify(c.config));
  });
}
