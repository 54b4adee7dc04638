/** `swarmnet agent`: runs the node agent in this process until SIGINT/SIGTERM. */
import { isIPv4 } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { API_GROUP, defaultDataDir, defaultSocket } from '../api/index.js';
import { parseDuration, parseIntArg, UsageError } from './format.js';
import { VERSION } from './version.js';
import { parseUpstreams, systemUpstreams } from '../dns/upstreams.js';
import { ESP_PORT, OVERLAY_MTU, VXLAN_PORT } from '../overlay/constants.js';
import { THREAD_SLICE_MAX_US, THREAD_SLICE_MIN_US } from '../mesh/constants.js';

/** `--key-rotation` default: Swarm rotates the keys of encrypted overlays every 12 hours. */
const KEY_ROTATION = '12h';
/** Test-only: the first ESP sequence number of outbound SAs (to cross 2^32 in a test), decimal or 0x hex. */
const ESP_SEQ_START_ENV = 'SWARMNET_TEST_ESP_SEQ_START';
const U32_MAX = (1n << 32n) - 1n;

/** `--key-rotation`: a duration above zero (12h, 30m, 90s, 500ms). */
export function parseKeyRotation(text: string): number {
  const ms = parseDuration(text, '--key-rotation');
  if (ms < 1) throw new UsageError(`--key-rotation: '${text}' must be longer than 0 (e.g. 12h, 30m, 90s, 500ms)`);
  return ms;
}

/** `--esp-port`: a UDP port. */
export function parsePort(text: string, flag: string): number {
  const port = parseIntArg(text, flag);
  if (port < 1 || port > 65535) throw new UsageError(`${flag}: ${port} is not from 1 to 65535`);
  return port;
}

/**
 * SWARMNET_TEST_ESP_SEQ_START (test-only): the first outbound sequence number, decimal or
 * 0x hex, below 2^32 (a receiver places its first packet in the first 2^32 numbers, RFC 4303
 * appendix A2.2; tests start just below the wrap); undefined when unset.
 */
export function parseEspSeqStart(text: string | undefined): bigint | undefined {
  if (text === undefined || text === '') return undefined;
  const t = text.trim();
  if (!/^(?:\d+|0[xX][0-9a-fA-F]+)$/.test(t)) throw new UsageError(`${ESP_SEQ_START_ENV}: '${text}' is not a decimal or 0x hex number`);
  const n = BigInt(t);
  if (n < 1n || n > U32_MAX) throw new UsageError(`${ESP_SEQ_START_ENV}: '${text}' is not from 1 to 2^32-1`);
  return n;
}

/** `--max-flows`, `--udp-sockets`: a whole number from 1 to `max`. */
export function parseLimit(text: string, flag: string, max: number): number {
  const n = parseIntArg(text, flag);
  if (n < 1 || n > max) throw new UsageError(`${flag}: ${n} is not from 1 to ${max}`);
  return n;
}
/** Flow table bound: the default is nf_conntrack_max's usual value; the ceiling keeps the table's memory sane. */
const MAX_FLOWS_DEFAULT = '262144';
const MAX_FLOWS_CEILING = 16_777_216;
/** Upstream sockets of the UDP engine: each is a source port, so fewer than the ports there are. */
const UDP_SOCKETS_DEFAULT = '4096';
const UDP_SOCKETS_CEILING = 60_000;
/** The data-plane threads' slice: the shortest the kernel grants (docs/bench.md, "p99 at two threads"). */
const THREAD_SLICE_DEFAULT = '100';
/** Most data-plane threads `--threads` accepts: far above any core count this agent is meant for. */
const MAX_THREADS = 256;

/** `--thread-slice`: 0, or a scheduler slice in microseconds within what the kernel accepts. */
export function parseThreadSlice(text: string): number {
  const n = parseIntArg(text, '--thread-slice');
  if (n !== 0 && (n < THREAD_SLICE_MIN_US || n > THREAD_SLICE_MAX_US)) throw new UsageError(`--thread-slice: ${n} is neither 0 nor from ${THREAD_SLICE_MIN_US} to ${THREAD_SLICE_MAX_US} microseconds`);
  return n;
}

/** `--threads`: how many threads the TCP data plane runs on, from 1 to MAX_THREADS. */
export function parseThreads(text: string): number {
  const n = parseIntArg(text, '--threads');
  if (n < 1 || n > MAX_THREADS) throw new UsageError(`--threads: ${n} is not from 1 to ${MAX_THREADS}`);
  return n;
}

function hostPort(text: string, flag: string): { host: string; port: number } {
  const m = /^([^:]+):(\d+)$/.exec(text);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`${flag}: '${text}' is not HOST:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

function ipv4(text: string, flag: string): string {
  if (!isIPv4(text)) throw new UsageError(`${flag}: '${text}' is not an IPv4 address`);
  return text;
}

export function agentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the swarmnet agent on this node')
    .option('--node-id <id>', 'node id (default: generated once, kept in the data dir)')
    .option('--advertise-addr <ip>', 'underlay address other nodes reach this one on', '127.0.0.1')
    .option('--nats <urls>', 'cluster mode: NATS server URLs, comma-separated (JetStream KV)')
    .option('--nats-creds <file>', 'NATS credentials file (JWT + nkey)')
    .option('--nats-user <user>', 'NATS user (password from env SWARMNET_NATS_PASSWORD)')
    .option('--nats-tls-ca <file>', 'CA file to verify the NATS servers (enables TLS)')
    .option('--nats-replicas <n>', 'JetStream replicas per bucket (3 on a 3-server cluster)', '1')
    .option('--data-dir <dir>', 'state directory (env SWARMNET_DATA_DIR)', defaultDataDir())
    .option('--socket <path>', "the API's unix socket (mode 0660, group 'swarmnet' when it exists)", defaultSocket())
    .option('--metrics-addr <host:port>', 'serve Prometheus metrics (only /metrics, no API) over plain HTTP here')
    .option('--dns <host:port>', 'serve DNS for containers on this address (e.g. 127.0.0.11:53)')
    .option('--dns-upstream <ip[:port],...>', 'resolvers for names outside the cluster (default: /etc/resolv.conf)')
    .option('--dns-ttl <seconds>', 'TTL of cluster records', '5')
    .option('--ingress-addr <ip>', 'address the routing mesh listens on', '0.0.0.0')
    .option('--tcp-timeout <duration>', 'idle timeout of TCP flows', '900s')
    .option('--udp-timeout <duration>', 'idle timeout of UDP flows', '300s')
    .option('--max-flows <n>', 'most UDP flows at once; a full table drops unanswered flows first', MAX_FLOWS_DEFAULT)
    .option('--udp-sockets <n>', "UDP engine's upstream sockets (its file descriptors; flows toward one task at most this many)", UDP_SOCKETS_DEFAULT)
    .option('--drain-timeout <duration>', "how long a removed task's connections may run", '300s')
    .option('--connect-timeout <duration>', 'connect timeout toward tasks', '3s')
    .option('--heartbeat <duration>', 'node heartbeat interval', '2s')
    .option('--node-timeout <duration>', 'a node not heard from this long is down', '10s')
    .option('--no-overlay', 'do not carry overlay networks on this node (no TAP, bridge or VXLAN socket)')
    .option('--vxlan-port <port>', 'UDP port of the VXLAN underlay (RFC 7348)', String(VXLAN_PORT))
    .option('--esp-port <port>', 'UDP port of ESP for encrypted networks (RFC 3948)', String(ESP_PORT))
    .option('--key-rotation <duration>', 'rotate the key of every encrypted network this often (managers and single nodes)', KEY_ROTATION)
    .option('--overlay-mtu <bytes>', 'MTU of overlay interfaces', String(OVERLAY_MTU))
    .option('--threads <n>', 'threads of the native TCP data plane (default: the cores this process may use)', String(availableParallelism()))
    .option('--thread-slice <us>', "scheduler slice the data-plane threads ask for, in microseconds (Linux 6.12+ EEVDF: a woken relay runs sooner); 0: the kernel's default", THREAD_SLICE_DEFAULT)
    .option('--no-native-relay', 'relay TCP and UDP in JavaScript even when the native engines are built (env SWARMNET_NATIVE_RELAY=0)')
    .option('--no-native-dns', 'serve DNS over UDP in JavaScript even when the native fast path is built (env SWARMNET_NATIVE_DNS=0)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')
    .option('--log-format <format>', 'text or json (default: text when stderr is a terminal, else json)')
    .action(async (o) => {
      // Loaded here, not at the top: every other command is a client of the API and
      // starts faster without the agent's planes, PKI and NATS client.
      const [{ createLogger, parseLogFormat, parseLogLevel }, { Agent }] = await Promise.all([import('./log.js'), import('../agent/index.js')]);
      const tty = process.stderr.isTTY === true;
      const logger = createLogger({ level: parseLogLevel(o.logLevel), format: parseLogFormat(o.logFormat, tty), colorize: tty });
      const nats = o.nats
        ? {
            servers: (o.nats as string).split(',').map((s) => s.trim()).filter(Boolean),
            ...(o.natsCreds && { creds: o.natsCreds }),
            ...(o.natsUser && { user: o.natsUser, pass: process.env.SWARMNET_NATS_PASSWORD ?? '' }),
            ...(o.natsTlsCa && { tlsCa: o.natsTlsCa }),
            replicas: parseIntArg(o.natsReplicas, '--nats-replicas'),
          }
        : undefined;
      const upstreamsFor = (self: { host: string; port: number }) => {
        const upstreams = o.dnsUpstream ? parseUpstreams(o.dnsUpstream) : systemUpstreams(self);
        if (!upstreams) throw new UsageError(`--dns-upstream: '${o.dnsUpstream}' is not IP[:PORT][,IP[:PORT]...]`);
        return upstreams;
      };
      let dns;
      if (o.dns) {
        const at = hostPort(o.dns, '--dns');
        dns = { ...at, upstreams: upstreamsFor(at), ttlSeconds: parseIntArg(o.dnsTtl, '--dns-ttl') };
      }
      const espSeqStart = parseEspSeqStart(process.env[ESP_SEQ_START_ENV]);
      const overlay =
        o.overlay === false
          ? undefined
          : { port: parsePort(o.vxlanPort, '--vxlan-port'), espPort: parsePort(o.espPort, '--esp-port'), mtu: parseIntArg(o.overlayMtu, '--overlay-mtu'), ...(espSeqStart !== undefined && { espSeqStart }) };
      if (overlay && (overlay.mtu < 576 || overlay.mtu > 9000)) throw new UsageError(`--overlay-mtu: ${overlay.mtu} is not from 576 to 9000`);
      if (overlay && overlay.espPort === overlay.port) throw new UsageError(`--esp-port: ${overlay.espPort} is the VXLAN port too (--vxlan-port)`);
      const keyRotationMs = parseKeyRotation(o.keyRotation);
      const agent = await Agent.start({
        ...(dns && { dns }),
        ...(nats && { nats }),
        ...(overlay && { overlay }),
        containerDnsUpstreams: upstreamsFor({ host: '', port: 0 }),
        ...(o.nodeId && { nodeId: o.nodeId }),
        advertiseAddr: ipv4(o.advertiseAddr, '--advertise-addr'),
        dataDir: o.dataDir,
        socket: o.socket,
        socketGroup: API_GROUP,
        ...(o.metricsAddr && { metricsAddr: hostPort(o.metricsAddr, '--metrics-addr') }),
        ingressAddr: ipv4(o.ingressAddr, '--ingress-addr'),
        mesh: {
          tcpIdleTimeoutMs: parseDuration(o.tcpTimeout, '--tcp-timeout'),
          udpIdleTimeoutMs: parseDuration(o.udpTimeout, '--udp-timeout'),
          udpMaxFlows: parseLimit(o.maxFlows, '--max-flows', MAX_FLOWS_CEILING),
          udpSockets: parseLimit(o.udpSockets, '--udp-sockets', UDP_SOCKETS_CEILING),
          drainTimeoutMs: parseDuration(o.drainTimeout, '--drain-timeout'),
          connectTimeoutMs: parseDuration(o.connectTimeout, '--connect-timeout'),
        },
        nativeRelay: o.nativeRelay !== false && process.env.SWARMNET_NATIVE_RELAY !== '0',
        nativeDns: o.nativeDns !== false && process.env.SWARMNET_NATIVE_DNS !== '0',
        threads: parseThreads(o.threads),
        threadSliceUs: parseThreadSlice(o.threadSlice),
        heartbeatMs: parseDuration(o.heartbeat, '--heartbeat'),
        nodeTimeoutMs: parseDuration(o.nodeTimeout, '--node-timeout'),
        keyRotationMs,
        version: VERSION,
        logger,
      });
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        agent.stop().then(
          () => process.exit(0),
          (err: Error) => {
            logger.error({ err: err.message }, 'stop failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
