/**
 * Debian's podman as the container runtime of a namespace-host, isolated per test:
 * its own containers.conf, storage (vfs), run root, locks and CNI configuration
 * directory in a temp dir, so nothing of the machine's podman is read or written.
 *
 *   CONTAINERS_CONF=<dir>/containers.conf
 *   nsenter --net=/run/netns/<host ns> podman --root <dir>/root --runroot <dir>/run --storage-driver vfs ...
 *
 * Why each setting (Debian 12, podman 4.3, root without CAP_SYS_RESOURCE):
 * - runtime "runc": crun fails on these machines' cgroups.
 * - default_ulimits below the hard limits: podman asks for nofile/nproc 1048576, which
 *   only CAP_SYS_RESOURCE may raise to; lowering is always allowed (`ulimit -Hn`; podman
 *   itself runs with nproc 32768).
 * - network_backend "cni", cni_plugin_dirs [the plugin's dir, /usr/lib/cni], the
 *   conflists in network_config_dir: the runtime calls swarmnet-cni like any CNI plugin.
 * - lock_type "file" and tmp_dir in the temp dir: the default shm locks are one segment
 *   (/dev/shm/libpod_lock) shared by every podman of the machine.
 * - nsenter --net, not `ip netns exec`: the latter remounts /sys in a new mount namespace,
 *   which hides the cgroup mounts from runc, and podman's netns bind mount under
 *   /run/netns must be made in the machine's mount namespace for the agent to open it.
 *   Podman runs in the host's network namespace, so conmon and the `container cleanup`
 *   it runs when a container exits (the DEL) stay there too.
 * - An image imported from a busybox-static root (nothing can be pulled).
 *
 * Teardown, pass or fail: `podman rm -fa`, then any container process, netns or mount of
 * ours left behind (a test kills a container's runtime on purpose), then the temp dir.
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { onCleanup } from './cleanup.js';
import type { Host } from './netns.js';
import type { CliResult } from './procs.js';

type Teardown = { teardown(fn: () => unknown): void };

/** The busybox image every podman of these tests has (`podman import`ed, never pulled). */
export const IMAGE = 'localhost/swarmnet-busybox:test';
const BUSYBOX = '/bin/busybox';
/** Where libcni (in podman) caches each attachment's config and result. */
const CNI_CACHE = '/var/lib/cni/results';
/** Far below any machine's hard limits: only CAP_SYS_RESOURCE may raise a limit. */
const ULIMITS = ['nofile=1024:1024', 'nproc=1024:1024'];

export interface PodmanOpts {
  /** Directories holding CNI plugins, searched before /usr/lib/cni. */
  pluginDirs: string[];
  /** Network configuration lists written to the CNI config dir (each `name` is a podman network). */
  networks?: object[];
}

export interface ContainerInfo {
  Id: string;
  State: { Status: string; Pid: number; ConmonPid: number };
  NetworkSettings: { SandboxKey: string; Networks?: Record<string, { IPAddress: string; IPPrefixLen: number; Gateway: string; MacAddress: string }> };
}

export interface Podman {
  host: Host;
  dir: string;
  /** podman with this host's storage and configuration, in the host's network namespace. */
  cmd(args: string[], timeoutMs?: number): Promise<CliResult>;
  /** Like cmd; throws with stderr on a non-zero exit, returns stdout trimmed. */
  ok(...args: string[]): Promise<string>;
  /** Adds (or replaces) a network configuration list. */
  network(conflist: object): void;
  /** `podman run -d --name <name> <args>`: the container's id. */
  run(name: string, args: string[]): Promise<string>;
  stop(name: string): Promise<void>;
  rmf(name: string): Promise<void>;
  exec(name: string, argv: string[], timeoutMs?: number): Promise<CliResult>;
  inspect(name: string): Promise<ContainerInfo>;
  /** The CNI result podman stored for an attachment (libcni's cache), undefined when none. */
  storedResult(network: string, id: string, ifName?: string): unknown;
}

/** A root for `podman import`: busybox with every applet linked, a passwd, a web root. */
function writeImageTar(dir: string): string {
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'tmp', 'www']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
  for (const applet of execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n')) {
    if (applet && applet !== 'busybox') symlinkSync('busybox', join(root, 'bin', applet));
  }
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  writeFileSync(join(root, 'etc/nsswitch.conf'), 'hosts: files dns\n');
  const tar = join(dir, 'image.tar');
  execFileSync('tar', ['-C', root, '-cf', tar, '.']);
  rmSync(root, { recursive: true, force: true });
  return tar;
}

function containersConf(dir: string, pluginDirs: string[]): string {
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  return [
    '[engine]',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = ${JSON.stringify(join(dir, 'events.log'))}`,
    `tmp_dir = ${JSON.stringify(join(dir, 'tmp'))}`,
    'lock_type = "file"',
    `image_copy_tmp_dir = ${JSON.stringify(join(dir, 'tmp'))}`,
    '[containers]',
    `default_ulimits = ${list(ULIMITS)}`,
    '[network]',
    'network_backend = "cni"',
    `cni_plugin_dirs = ${list([...pluginDirs, '/usr/lib/cni'])}`,
    `network_config_dir = ${JSON.stringify(join(dir, 'cni'))}`,
    '',
  ].join('\n');
}

/** A process's start time (field 22 of /proc/<pid>/stat), telling it from a later process with its pid. */
function procStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/** Mount points under `dir` (podman's shm tmpfs of a container it did not remove), deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

/** An isolated podman for `host`, with the busybox image imported; removed in teardown. */
export async function startPodman(t: Teardown, host: Host, o: PodmanOpts): Promise<Podman> {
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-podman-'));
  for (const d of ['cni', 'tmp']) mkdirSync(join(dir, d));
  const conf = join(dir, 'containers.conf');
  writeFileSync(conf, containersConf(dir, o.pluginDirs));
  const env = { ...process.env, CONTAINERS_CONF: conf };
  const podman = ['podman', '--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs'];
  const argv = (args: string[]) => [`--net=/run/netns/${host.ns}`, ...podman, ...args];
  /** Containers started here, for a teardown that does not trust podman's own state. */
  const started = new Map<string, { id: string; netns?: string; procs: Array<{ pid: number; start: string }> }>();

  const remove = () => {
    if (!existsSync(dir)) return;
    try {
      // After a failed top-level await, the exit handlers run in order: the host's namespace may be gone already.
      const rm = [...podman, 'rm', '-fa', '-t', '0'];
      if (existsSync(`/run/netns/${host.ns}`)) execFileSync('nsenter', [`--net=/run/netns/${host.ns}`, ...rm], { env, stdio: 'pipe', timeout: 60000 });
      else execFileSync(rm[0]!, rm.slice(1), { env, stdio: 'pipe', timeout: 60000 });
    } catch {
      // podman's state is broken (a test killed a runtime), or its DEL failed (the agent gone first): cleaned below
    }
    for (const c of started.values()) {
      for (const p of c.procs) {
        if (!p.start || procStart(p.pid) !== p.start) continue; // gone, or the pid is someone else's now
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (c.netns && existsSync(c.netns)) {
        try {
          execFileSync('ip', ['netns', 'del', basename(c.netns)], { stdio: 'pipe' });
        } catch {
          // not a named netns any more
        }
      }
      // What a DEL that never ran (the agent killed first) leaves: libcni's cache, the agent's resolv.conf.
      for (const f of existsSync(CNI_CACHE) ? readdirSync(CNI_CACHE) : []) if (f.includes(`-${c.id}-`)) rmSync(join(CNI_CACHE, f), { force: true });
      if (c.netns) rmSync(join('/etc/netns', basename(c.netns)), { recursive: true, force: true });
    }
    for (const m of mountsUnder(dir)) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'pipe' });
      } catch {
        // gone meanwhile
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  onCleanup(t, remove);

  const cmd = (args: string[], timeoutMs = 60000) =>
    new Promise<CliResult>((resolve) => {
      execFile('nsenter', argv(args), { env, timeout: timeoutMs }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
  const ok = async (...args: string[]) => {
    const r = await cmd(args);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const inspect = async (name: string) => (JSON.parse(await ok('inspect', '--format', 'json', name)) as ContainerInfo[])[0]!;
  const network = (conflist: object) => {
    const name = (conflist as { name: string }).name;
    writeFileSync(join(dir, 'cni', `${name}.conflist`), JSON.stringify(conflist, null, 2));
  };
  for (const n of o.networks ?? []) network(n);
  await ok('import', '--change', 'CMD=/bin/sh', writeImageTar(dir), IMAGE);

  return {
    host,
    dir,
    cmd,
    ok,
    network,
    run: async (name, args) => {
      const id = await ok('run', '-d', '--name', name, ...args);
      const info = await inspect(name);
      const procs = [info.State.ConmonPid, info.State.Pid].filter((p) => p > 0).map((pid) => ({ pid, start: procStart(pid) }));
      started.set(name, { id, netns: info.NetworkSettings.SandboxKey || undefined, procs });
      return id;
    },
    stop: async (name) => void (await ok('stop', name)),
    rmf: async (name) => void (await ok('rm', '-f', '-t', '0', name)),
    exec: (name, args, timeoutMs = 20000) => cmd(['exec', name, ...args], timeoutMs),
    inspect,
    storedResult: (net, id, ifName = 'eth0') => {
      const file = join(CNI_CACHE, `${net}-${id}-${ifName}`);
      return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { result: unknown }).result : undefined;
    },
  };
}
