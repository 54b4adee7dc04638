/** `swarmnet init | join | leave | join-token`: making and changing a cluster, as `docker swarm ...`. */
import type { Command } from 'commander';
import type { ApiClient, JoinResult } from '../api/index.js';
import { parseDuration, parseIntArg, print, UsageError } from './format.js';

function port(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = parseIntArg(text, flag);
  if (n < 1 || n > 65535) throw new UsageError(`${flag}: ${n} is not from 1 to 65535`);
  return n;
}

function joinLines(r: JoinResult): string {
  if (!r.joinCommands) return '';
  return [
    '',
    'To add a worker to this cluster, run on it:',
    '',
    `    ${r.joinCommands.worker}`,
    '',
    'To add a manager to this cluster, run on it:',
    '',
    `    ${r.joinCommands.manager}`,
    '',
  ].join('\n');
}

export function swarmCommands(program: Command, client: () => ApiClient): void {
  program
    .command('init')
    .description('create a cluster with this node as its first manager (CA, nats-server, join tokens)')
    .option('--advertise-addr <ip>', "address other nodes reach this one on (default: the agent's --advertise-addr)")
    .option('--listen-addr <ip:port>', 'cluster API address, mutual TLS (default 0.0.0.0:2377)')
    .option('--cert-expiry <duration>', 'lifetime of node certificates (renewed before they expire)', '2160h')
    .option('--nats-port <port>', 'client port of the managed nats-server (default 4222)')
    .option('--nats-cluster-port <port>', 'route port of the managed nats-server (default 6222)')
    .action(async (o) => {
      const r = await client().swarm.init({
        ...(o.advertiseAddr && { advertiseAddr: o.advertiseAddr }),
        ...(o.listenAddr && { listenAddr: o.listenAddr }),
        certExpiryMs: parseDuration(o.certExpiry, '--cert-expiry'),
        ...(o.natsPort && { natsPort: port(o.natsPort, '--nats-port') }),
        ...(o.natsClusterPort && { natsClusterPort: port(o.natsClusterPort, '--nats-cluster-port') }),
      });
      print(`Cluster initialized: node ${r.node} is now a manager.\n${joinLines(r)}`);
    });

  program
    .command('join <manager>')
    .description('join a cluster through one of its managers (HOST:PORT)')
    .requiredOption('--token <token>', 'join token (swarmnet join-token worker|manager on a manager)')
    .option('--advertise-addr <ip>', "address other nodes reach this one on (default: the agent's --advertise-addr)")
    .option('--listen-addr <ip:port>', 'cluster API address, mutual TLS (default 0.0.0.0:2377)')
    .option('--nats-port <port>', 'managers: client port of the managed nats-server (default 4222)')
    .option('--nats-cluster-port <port>', 'managers: route port of the managed nats-server (default 6222)')
    .action(async (manager: string, o) => {
      const r = await client().swarm.join({
        token: o.token,
        remote: manager,
        ...(o.advertiseAddr && { advertiseAddr: o.advertiseAddr }),
        ...(o.listenAddr && { listenAddr: o.listenAddr }),
        ...(o.natsPort && { natsPort: port(o.natsPort, '--nats-port') }),
        ...(o.natsClusterPort && { natsClusterPort: port(o.natsClusterPort, '--nats-cluster-port') }),
      });
      print(`This node joined the cluster as a ${r.role} (node ${r.node}).`);
    });

  program
    .command('leave')
    .description('leave the cluster; the agent goes on alone on its embedded store')
    .option('-f, --force', 'leave even as a manager')
    .action(async (o) => {
      const r = await client().swarm.leave({ force: !!o.force });
      print(`Node ${r.node} left the cluster.`);
    });

  program
    .command('join-token <role>')
    .description('print the join command for a worker or a manager')
    .option('--rotate', 'replace the token; the old one stops working')
    .option('-q, --quiet', 'print the token only')
    .action(async (role: string, o) => {
      if (role !== 'worker' && role !== 'manager') throw new UsageError(`join-token: role must be worker or manager (got '${role}')`);
      const t = await client().swarm.joinToken(role, !!o.rotate);
      if (o.quiet) return print(t.token);
      print(`${o.rotate ? `Rotated the ${role} join token.\n` : ''}To add a ${role} to this cluster, run on it:\n\n    swarmnet join --token ${t.token} ${t.managers[0] ?? 'MANAGER:2377'}\n`);
    });
}
