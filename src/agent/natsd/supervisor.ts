/**
 * Supervision of a manager's local nats-server, one process per NatsServer:
 *
 *   start   : stop a server an earlier agent run left behind (found by its pid file),
 *             write the config (0600), spawn `nats-server -c FILE`, wait until the client
 *             port completes TLS and authorizes this node (INFO, handshake, CONNECT, PING)
 *   watch   : an unexpected exit is logged with the server's last lines and the server
 *             started again after a back-off (doubling, reset after a stable run)
 *   update  : users, routes or TLS files changed -> rewrite + SIGHUP, confirmed from the
 *             server's log; anything else, or standalone <-> clustered -> restart
 *   adopt   : after standalone -> clustered, put this node's streams into the meta layer
 *   stop    : SIGTERM, SIGKILL after a timeout
 *
 * Why adopt: nats-server 2.9.10 cannot run clustered JetStream alone (see config.ts), so
 * a lone manager runs standalone. When the second manager comes, the server restarts
 * with a cluster block; its streams are still on disk and loaded, but the new meta
 * layer does not know them ("stream not found"). Re-creating each one with the same
 * config, placed on this node by tag, makes the server take its local copy (same
 * messages, same sequences, so KV revisions carry on); a second update without the
 * placement lets it be scaled later (no move: the new placement is nil). Until then no
 * other node may create streams (config `lockStreams`): an agent's KV create would
 * otherwise make an empty bucket of the same name and hide ours. Tested on 2.9.10;
 * releases from 2.9.17 on delete such orphans at start instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SwarmnetError } from '../../util/errors.js';
import { isClustered, nodeTag, renderConfig, type NatsdConfig, type NatsdTls } from './config.js';

export interface NatsServerOptions extends NatsdConfig {
  /** Holds nats.conf, the pid file and adoption state; created 0700. */
  dir: string;
  logger: Logger;
  /** Default `nats-server` from PATH. */
  command?: string;
  /** How long a start may take to accept TLS. */
  startTimeoutMs?: number;
  /** Grace after SIGTERM before SIGKILL. */
  stopTimeoutMs?: number;
  /** Restart back-off: initialMs doubling to maxMs; a run of resetAfterMs starts over. */
  backoff?: { initialMs?: number; maxMs?: number; resetAfterMs?: number };
}

export type NatsdUpdate = Partial<Omit<NatsdConfig, 'tls'>> & { tls?: Partial<NatsdTls> };

/** What `update` did: nothing, kept it for the next start (no server running), SIGHUP, restart. */
export type UpdateResult = 'unchanged' | 'saved' | 'reloaded' | 'restarted';

export const SUPERVISOR_DEFAULTS = {
  command: 'nats-server',
  startTimeoutMs: 15_000,
  stopTimeoutMs: 10_000,
  /** The server logs the reload's outcome at once; allow for a loaded machine. */
  reloadTimeoutMs: 5_000,
  backoff: { initialMs: 500, maxMs: 30_000, resetAfterMs: 30_000 },
  /** Lines of the server's stderr kept for error reports. */
  tailLines: 20,
  /** Pause between attempts of a readiness probe or an adoption step. */
  retryMs: 200,
  adoptRetryMs: 1_000,
  /** One JetStream API request. */
  apiTimeoutMs: 5_000,
} as const;

/** The server did not come up: it exited, did not accept TLS in time, or could not be run. */
export class NatsdStartError extends SwarmnetError {
  override readonly code = 'ENATSDSTART';
}

/** The server did not take a new config on reload (it keeps running with the previous one). */
export class NatsdReloadError extends SwarmnetError {
  override readonly code = 'ENATSDRELOAD';
}

/** JetStream API error code: stream not found. */
const JS_STREAM_NOT_FOUND = 10059;
const CONFIG_FILE = 'nats.conf';
const PID_FILE = 'nats-server.pid';
/** Stream configs listed before a standalone server became clustered, until adopted. */
const ADOPT_FILE = 'adopt.json';
const RELOAD_LINE = /Reloaded server configuration|Failed to reload server configuration: (.*)/;

interface PendingStream {
  config: { name: string; placement?: unknown } & Record<string, unknown>;
  lastSeq: number;
}

export class NatsServer {
  readonly #dir: string;
  readonly #log: Logger;
  readonly #command: string;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #backoff: { initialMs: number; maxMs: number; resetAfterMs: number };
  #config: NatsdConfig;
  #proc: Proc | undefined;
  /** start() called and stop() not since: an exit is unexpected and restarted. */
  #wanted = false;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #restarts = 0;
  #reloads = 0;
  #adoption: Promise<void> | undefined;
  #adoptAbort: AbortController | undefined;
  /** start, update, reload, stop and restarts run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(o: NatsServerOptions) {
    const { dir, logger, command, startTimeoutMs, stopTimeoutMs, backoff, ...config } = o;
    this.#dir = dir;
    this.#log = logger.child({ natsd: config.serverName });
    this.#command = command ?? SUPERVISOR_DEFAULTS.command;
    this.#startTimeoutMs = startTimeoutMs ?? SUPERVISOR_DEFAULTS.startTimeoutMs;
    this.#stopTimeoutMs = stopTimeoutMs ?? SUPERVISOR_DEFAULTS.stopTimeoutMs;
    this.#backoff = { ...SUPERVISOR_DEFAULTS.backoff, ...backoff };
    this.#config = { ...config, tls: { ...config.tls }, pidFile: config.pidFile ?? join(dir, PID_FILE) };
    renderConfig(this.#config); // a bad option fails here, not at start
  }

  /** The running server's pid; undefined while none runs. */
  get pid(): number | undefined {
    return this.#proc?.alive ? this.#proc.child.pid : undefined;
  }

  get config(): Readonly<NatsdConfig> {
    return this.#config;
  }

  get configFile(): string {
    return join(this.#dir, CONFIG_FILE);
  }

  /** Where this node's clients reach the local server (loopback when listening on all addresses). */
  get url(): string {
    const h = localHost(this.#config.host);
    return `tls://${h.includes(':') ? `[${h}]` : h}:${this.#config.clientPort}`;
  }

  /** Restarts after unexpected exits so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Reloads the server confirmed. */
  get reloads(): number {
    return this.#reloads;
  }

  /** Resolves when no stream adoption is pending (see the file header). */
  async adopted(): Promise<void> {
    await this.#adoption;
  }

  start(): Promise<void> {
    return this.#serial(async () => {
      if (this.#proc?.alive) return;
      this.#wanted = true;
      try {
        // Owner only, also when made more open before: JetStream's files hold the
        // cluster's state, key rings of encrypted networks included (nats-server would
        // make its store dir 0750 itself).
        for (const dir of [this.#dir, this.#config.storeDir]) {
          mkdirSync(dir, { recursive: true, mode: 0o700 });
          chmodSync(dir, 0o700);
        }
        await this.#stopLeftover();
        this.#write();
        await this.#launch();
      } catch (err) {
        this.#wanted = false;
        throw err;
      }
      if (existsSync(this.#adoptFile) && isClustered(this.#config)) this.#startAdoption();
    });
  }

  /**
   * Applies changed options. Users, routes and TLS files are reloaded (a removed node's
   * connections are closed by the server at once); the rest restarts the server.
   */
  update(patch: NatsdUpdate): Promise<UpdateResult> {
    return this.#serial(async () => {
      const prev = this.#config;
      const next: NatsdConfig = { ...prev, ...defined(patch), tls: { ...prev.tls, ...defined(patch.tls ?? {}) } };
      renderConfig(next);
      const change = classify(prev, next);
      if (change === 'none') return 'unchanged';
      const joining = !isClustered(prev) && isClustered(next);
      const proc = this.#proc?.alive ? this.#proc : undefined;
      if (joining && proc) await this.#listStreams();
      else if (joining) this.#log.warn('standalone server not running when it became clustered: its streams were not listed for adoption');
      this.#config = next;
      if (!proc) {
        if (existsSync(this.#dir)) this.#write();
        return 'saved';
      }
      this.#write();
      if (change === 'reload') {
        await this.#reloadProc(proc);
        return 'reloaded';
      }
      this.#proc = undefined;
      await proc.terminate(this.#stopTimeoutMs);
      try {
        await this.#launch();
      } catch (err) {
        this.#scheduleRestart({ err: (err as Error).message });
        throw err;
      }
      if (joining) this.#startAdoption();
      return 'restarted';
    });
  }

  /** Makes the server read its files again (e.g. a renewed certificate); nothing if none runs. */
  reload(): Promise<void> {
    return this.#serial(async () => {
      const proc = this.#proc?.alive ? this.#proc : undefined;
      if (proc) await this.#reloadProc(proc);
    });
  }

  async stop(): Promise<void> {
    this.#wanted = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#adoptAbort?.abort();
    await this.#serial(async () => {
      const proc = this.#proc;
      this.#proc = undefined;
      await proc?.terminate(this.#stopTimeoutMs);
    });
    await this.#adoption;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(fn);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  get #adoptFile(): string {
    return join(this.#dir, ADOPT_FILE);
  }

  /** Atomically, mode 0600 from the first byte: the file names key paths and the users. */
  #write(): void {
    const tmp = `${this.configFile}.tmp`;
    writeFileSync(tmp, renderConfig({ ...this.#config, lockStreams: existsSync(this.#adoptFile) }), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.configFile);
  }

  async #launch(): Promise<void> {
    const proc = new Proc(this.#command, ['-c', this.configFile], (line) => this.#log.debug({ line }, 'nats-server'));
    this.#proc = proc;
    void proc.exited.then((e) => this.#onExit(proc, e));
    try {
      await this.#waitReady(proc);
    } catch (err) {
      if (this.#proc === proc) this.#proc = undefined;
      await proc.terminate(0);
      throw err;
    }
    proc.upAt = Date.now();
  }

  async #waitReady(proc: Proc): Promise<void> {
    const c = this.#config;
    const host = localHost(c.host);
    const deadline = Date.now() + this.#startTimeoutMs;
    let last = 'not tried';
    for (;;) {
      if (!proc.alive) {
        await proc.exited;
        throw new NatsdStartError(`nats-server ${proc.describe()} before accepting TLS on ${host}:${c.clientPort}: ${proc.tail.join(' | ')}`, proc.spawnError && { cause: proc.spawnError });
      }
      if (!this.#wanted) throw new NatsdStartError('nats-server stopped while starting');
      const r = await probe({ host, port: c.clientPort, serverName: c.serverName, tls: c.tls, timeoutMs: SUPERVISOR_DEFAULTS.apiTimeoutMs });
      if (r === true && proc.alive) return;
      if (r !== true) last = r;
      if (Date.now() > deadline) {
        throw new NatsdStartError(`nats-server did not accept TLS on ${host}:${c.clientPort} within ${this.#startTimeoutMs} ms (${last}); its last lines: ${proc.tail.join(' | ')}`);
      }
      await sleep(SUPERVISOR_DEFAULTS.retryMs);
    }
  }

  #onExit(proc: Proc, e: Exit): void {
    if (proc !== this.#proc || !proc.upAt) return; // stopped, replaced, or failing its start
    this.#proc = undefined;
    if (!this.#wanted) return;
    if (Date.now() - proc.upAt >= this.#backoff.resetAfterMs) this.#failures = 0;
    this.#scheduleRestart({ exit: proc.describe(e), stderr: proc.tail });
  }

  /** The restart loop: the one place that logs the server's failures. */
  #scheduleRestart(detail: Record<string, unknown>): void {
    if (!this.#wanted || this.#timer) return;
    const delayMs = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** this.#failures);
    this.#failures++;
    this.#log.error({ ...detail, delayMs }, 'nats-server is down; restarting it');
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#serial(() => this.#respawn());
    }, delayMs);
  }

  async #respawn(): Promise<void> {
    if (!this.#wanted || this.#proc?.alive) return;
    try {
      this.#write();
      await this.#launch();
    } catch (err) {
      this.#scheduleRestart({ err: (err as Error).message });
      return;
    }
    this.#restarts++;
    this.#log.info({ pid: this.pid, restarts: this.#restarts }, 'nats-server restarted');
    if (existsSync(this.#adoptFile) && isClustered(this.#config)) this.#startAdoption();
  }

  async #reloadProc(proc: Proc): Promise<void> {
    const outcome = proc.waitLine(RELOAD_LINE, SUPERVISOR_DEFAULTS.reloadTimeoutMs);
    proc.child.kill('SIGHUP');
    const m = await outcome.catch((err: Error) => {
      throw new NatsdReloadError(`nats-server did not confirm the reload: ${err.message}`);
    });
    if (m[1] !== undefined) throw new NatsdReloadError(`nats-server kept its previous configuration: ${m[1]}`);
    this.#reloads++;
  }

  /** A server of ours from an earlier agent run (its command line names our config file). */
  async #stopLeftover(): Promise<void> {
    let pid: number;
    try {
      pid = Number(readFileSync(this.#config.pidFile!, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 1) return;
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(this.configFile)) return;
    } catch {
      return; // no pid file, or that process is gone
    }
    this.#log.warn({ pid }, 'stopping a nats-server left by an earlier run');
    await terminatePid(pid, this.#stopTimeoutMs);
  }

  // ---- adoption of standalone streams (see the file header) ----

  async #client(): Promise<NatsConnection> {
    const c = this.#config;
    // nats.js checks a certificate against "localhost" when the URL holds an IP (it passes
    // no servername); ours carry IP SANs only, so check the address we dial ourselves.
    const host = localHost(c.host);
    const tls = { ...c.tls, checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(host, cert) };
    return connect({ servers: this.url, tls, name: `swarmnet-natsd-${c.serverName}`, ignoreClusterUpdates: true, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  }

  /** Lists the standalone server's streams into the adoption file, before it restarts clustered. */
  async #listStreams(): Promise<void> {
    const nc = await this.#client();
    try {
      const streams: PendingStream[] = [];
      for (let offset = 0; ; ) {
        const page = (await jsApi(nc, 'STREAM.LIST', { offset })) as { total: number; streams: Array<{ config: PendingStream['config']; state: { last_seq: number } }> | null };
        for (const s of page.streams ?? []) streams.push({ config: s.config, lastSeq: s.state.last_seq });
        offset += page.streams?.length ?? 0;
        if (!page.streams?.length || offset >= page.total) break;
      }
      if (streams.length === 0) return;
      writeFileSync(this.#adoptFile, JSON.stringify(streams), { mode: 0o600 });
      this.#log.info({ streams: streams.map((s) => s.config.name) }, 'streams to adopt once clustered');
    } finally {
      await nc.close();
    }
  }

  #startAdoption(): void {
    if (this.#adoption) return;
    const ac = new AbortController();
    this.#adoptAbort = ac;
    this.#adoption = this.#adopt(ac.signal)
      .catch((err: Error) => {
        if (!ac.signal.aborted) this.#log.error({ err: err.message }, 'stream adoption failed');
      })
      .finally(() => {
        this.#adoption = undefined;
      });
  }

  async #adopt(signal: AbortSignal): Promise<void> {
    const pending = JSON.parse(readFileSync(this.#adoptFile, 'utf8')) as PendingStream[];
    const tag = nodeTag(this.#config.serverName);
    // Each step is retried: JetStream answers only once a meta leader is elected, which
    // needs a second server up and routed.
    const retry = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        if (signal.aborted) throw new Error('stopped');
        try {
          return await fn();
        } catch (err) {
          if (signal.aborted) throw err;
          if (attempt % 30 === 0) this.#log.warn({ err: (err as Error).message, attempt }, `stream adoption: ${what} still failing`);
          await sleep(SUPERVISOR_DEFAULTS.adoptRetryMs);
        }
      }
    };
    const nc = await retry('connect', () => this.#client());
    const abort = () => void nc.close();
    signal.addEventListener('abort', abort);
    if (signal.aborted) abort();
    try {
      await retry('JetStream info', () => jsApi(nc, 'INFO'));
      for (const { config, lastSeq } of pending) {
        const name = config.name;
        const found = (await retry(`info ${name}`, () => jsApi(nc, `STREAM.INFO.${name}`, undefined, [JS_STREAM_NOT_FOUND]))) as StreamInfo | undefined;
        if (found === undefined) {
          const created = (await retry(`create ${name}`, () => jsApi(nc, `STREAM.CREATE.${name}`, { ...config, placement: { tags: [tag] } }))) as StreamInfo;
          if (created.state.last_seq < lastSeq) this.#log.error({ stream: name, lastSeq, now: created.state.last_seq }, 'adopted stream is behind its standalone copy');
        } else if (found.cluster?.leader !== this.#config.serverName || found.state.last_seq < lastSeq) {
          // Created in the cluster by someone else first: our copy stays on disk, unseen.
          this.#log.error({ stream: name, lastSeq, cluster: found.cluster }, 'stream was created in the cluster before its standalone copy was adopted');
          continue;
        }
        // Without a placement (nil is no move) so replicas can be added on other nodes later.
        const { placement: _placement, ...rest } = config;
        await retry(`release ${name}`, () => jsApi(nc, `STREAM.UPDATE.${name}`, rest));
        this.#log.info({ stream: name }, 'standalone stream adopted into the cluster');
      }
      // Other nodes may create streams again.
      await this.#serial(async () => {
        rmSync(this.#adoptFile, { force: true });
        this.#write();
        const proc = this.#proc?.alive ? this.#proc : undefined;
        if (proc) await this.#reloadProc(proc);
      });
    } finally {
      signal.removeEventListener('abort', abort);
      await nc.close().catch(() => undefined);
    }
  }
}

interface StreamInfo {
  state: { last_seq: number };
  cluster?: { leader?: string };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * One JetStream API request (`$JS.API.<subject>`); throws on an error reply, except the
 * listed JetStream error codes, which resolve to undefined.
 */
async function jsApi(nc: NatsConnection, subject: string, body?: unknown, absent: number[] = []): Promise<unknown> {
  const m = await nc.request(`$JS.API.${subject}`, body === undefined ? undefined : encoder.encode(JSON.stringify(body)), { timeout: SUPERVISOR_DEFAULTS.apiTimeoutMs });
  const r = JSON.parse(decoder.decode(m.data)) as { error?: { err_code?: number; description?: string } };
  if (r.error) {
    if (r.error.err_code !== undefined && absent.includes(r.error.err_code)) return undefined;
    throw new Error(`JetStream ${subject}: ${r.error.description ?? 'error'} (${r.error.err_code ?? '?'})`);
  }
  return r;
}

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** One nats-server process: its stderr by line (the last ones kept) and its end. */
class Proc {
  readonly child: ChildProcess;
  readonly tail: string[] = [];
  readonly exited: Promise<Exit>;
  spawnError: Error | undefined;
  /** When it first accepted TLS; 0 while starting. */
  upAt = 0;
  #exit: Exit | undefined;
  #partial = '';
  readonly #listeners = new Set<(line: string) => void>();

  constructor(command: string, args: string[], onLine: (line: string) => void) {
    // setpriv (util-linux) sets PR_SET_PDEATHSIG and execs the server (same pid): if the
    // agent dies, even by SIGKILL, the kernel kills its nats-server too, so no orphan
    // holds the ports and the store when the agent comes back.
    this.child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.exited = new Promise((resolve) => {
      // 'close' comes after stderr is drained, so the tail is complete.
      this.child.once('close', (code, signal) => resolve((this.#exit = { code, signal })));
      this.child.once('error', (err) => {
        this.spawnError = err;
        if (this.child.pid === undefined) resolve((this.#exit = { code: null, signal: null }));
      });
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (this.#partial + chunk).split('\n');
      this.#partial = lines.pop()!;
      for (const line of lines) {
        this.tail.push(line);
        if (this.tail.length > SUPERVISOR_DEFAULTS.tailLines) this.tail.shift();
        onLine(line);
        for (const fn of this.#listeners) fn(line);
      }
    });
  }

  get alive(): boolean {
    return this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  describe(e = this.#exit): string {
    if (this.spawnError && this.child.pid === undefined) return `could not be run (${this.spawnError.message})`;
    if (!e) return 'exited';
    return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
  }

  /** The next stderr line matching `re`. */
  waitLine(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(fn);
      };
      const fn = (line: string) => {
        const m = re.exec(line);
        if (m) {
          done();
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${re} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#listeners.add(fn);
    });
  }

  /** SIGTERM (nats-server shuts down cleanly), SIGKILL after `graceMs`; resolves once it is gone. */
  async terminate(graceMs: number): Promise<void> {
    if (!this.alive) return;
    this.child.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    if (graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([this.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
      clearTimeout(timer);
      if (!late) return;
      if (this.alive) this.child.kill('SIGKILL');
    }
    await this.exited;
  }
}

/** Stops a process that is not our child (a leftover): SIGTERM, then SIGKILL; waits until it is gone. */
async function terminatePid(pid: number, graceMs: number): Promise<void> {
  const gone = () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  };
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (!gone() && Date.now() < deadline) await sleep(SUPERVISOR_DEFAULTS.retryMs);
  if (gone()) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  while (!gone()) await sleep(SUPERVISOR_DEFAULTS.retryMs);
}

interface ProbeOptions {
  host: string;
  port: number;
  serverName: string;
  tls: NatsdTls;
  timeoutMs: number;
}

/**
 * Readiness: the server's INFO (plain text, NATS protocol) names our server, then the TLS
 * handshake with this node's certificate (server verified against the CA and the address
 * dialled), then CONNECT + PING answered by PONG. Resolves true, or why not.
 */
function probe(o: ProbeOptions): Promise<true | string> {
  let material: { ca: Buffer; cert: Buffer; key: Buffer };
  try {
    material = { ca: readFileSync(o.tls.caFile), cert: readFileSync(o.tls.certFile), key: readFileSync(o.tls.keyFile) };
  } catch (err) {
    return Promise.resolve((err as Error).message);
  }
  return new Promise((resolve) => {
    let secure: TLSSocket | undefined;
    let settled = false;
    const finish = (r: true | string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      (secure ?? sock).destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish('no answer in time'), o.timeoutMs);
    const sock = tcpConnect({ host: o.host, port: o.port });
    sock.once('error', (err) => finish(err.message));
    sock.once('close', () => finish('connection closed'));
    let buf = '';
    const onInfo = (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\r\n');
      if (nl < 0) return;
      sock.off('data', onInfo);
      const m = /^INFO\s+(\{.*\})\s*$/.exec(buf.slice(0, nl)); // the server ends INFO with " \r\n"
      let info: { server_name?: string; tls_required?: boolean } = {};
      try {
        info = m ? (JSON.parse(m[1]!) as typeof info) : {};
      } catch {
        // reported below
      }
      if (info.server_name !== o.serverName) return finish(`not our server: ${buf.slice(0, Math.min(nl, 80))}`);
      if (!info.tls_required) return finish('the server does not require TLS');
      secure = tlsConnect({ socket: sock, ...material, checkServerIdentity: (_name, cert) => checkServerIdentity(o.host, cert) });
      secure.once('error', (err) => finish(err.message));
      secure.once('secureConnect', () => {
        let reply = '';
        secure!.on('data', (d: Buffer) => {
          reply += d.toString('latin1');
          if (/^PONG\r\n/m.test(reply)) finish(true);
          else if (/^-ERR (.*)\r\n/m.test(reply)) finish(`server says ${/^-ERR (.*)\r\n/m.exec(reply)![1]}`);
        });
        secure!.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, tls_required: true, name: 'swarmnet-natsd-probe', lang: 'node', version: '1' })}\r\nPING\r\n`);
      });
    };
    sock.on('data', onInfo);
  });
}

/** Which change `next` is to `prev`. */
function classify(prev: NatsdConfig, next: NatsdConfig): 'none' | 'reload' | 'restart' {
  const fixed = ['serverName', 'host', 'clientPort', 'clusterPort', 'storeDir', 'pidFile'] as const;
  // Going standalone <-> clustered adds or removes the cluster listener: no reload does that.
  if (fixed.some((k) => prev[k] !== next[k]) || isClustered(prev) !== isClustered(next)) return 'restart';
  const tls = (['certFile', 'keyFile', 'caFile', 'routeCertFile', 'routeKeyFile'] as const).some((k) => prev.tls[k] !== next.tls[k]);
  return tls || !sameSet(prev.users, next.users) || !sameSet(prev.routes, next.routes) ? 'reload' : 'none';
}

function sameSet(a: string[], b: string[]): boolean {
  const x = new Set(a);
  const y = new Set(b);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

/** The patch without keys set to undefined (they would erase an option). */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The address to dial this server on: loopback when it listens on every address. */
function localHost(host: string): string {
  return host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
