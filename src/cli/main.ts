#!/usr/bin/env node
/**
 * swarmnet command line. Every command but `agent` talks to an agent through the API
 * client (src/api): by default the local agent's unix socket; `--host tcp://HOST:PORT`
 * (env SWARMNET_HOST) reaches a cluster node's API over mutual TLS with the
 * certificates in --cert-dir. Exit 0 on success; on failure one line on stderr, exit 1.
 */
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { ApiClient, defaultDataDir, defaultSocket, loadClientTls, parseEndpoint, transport } from '../api/index.js';
import { agentCommand } from './agent.js';
import { connCommands } from './conn.js';
import { eventsCommand } from './events.js';
import { networkCommands } from './network.js';
import { nodeCommands } from './node.js';
import { serviceCommands } from './service.js';
import { stackCommands } from './stack.js';
import { swarmCommands } from './swarm.js';
import { taskCommands } from './task.js';
import { VERSION } from './version.js';

const oneLine = { outputError: (text: string, write: (s: string) => void) => write(text.split('\n')[0] + '\n') };

const program = new Command('swarmnet')
  .description('the networking half of Docker Swarm: routing mesh, VIPs, overlay networks, DNS')
  .version(VERSION)
  .option('-H, --host <host>', 'agent API: unix://PATH or tcp://HOST:PORT (env SWARMNET_HOST; default the local socket)')
  .option('--cert-dir <dir>', 'for tcp://: ca.pem, node.pem, node-key.pem of the cluster (env SWARMNET_CERT_DIR; default the local node\'s)')
  .exitOverride()
  .configureOutput(oneLine);

const client = () => {
  const o = program.opts<{ host?: string; certDir?: string }>();
  const endpoint = parseEndpoint(o.host ?? process.env.SWARMNET_HOST ?? `unix://${defaultSocket()}`);
  const tls = endpoint.kind === 'tcp' ? loadClientTls(o.certDir ?? process.env.SWARMNET_CERT_DIR ?? join(defaultDataDir(), 'trust')) : undefined;
  return new ApiClient(transport(endpoint, tls));
};

agentCommand(program);
swarmCommands(program, client);
serviceCommands(program, client);
taskCommands(program, client);
nodeCommands(program, client);
networkCommands(program, client);
connCommands(program, client);
eventsCommand(program, client);
stackCommands(program, client);
for (const c of [...program.commands, ...program.commands.flatMap((c) => c.commands)]) c.exitOverride().configureOutput(oneLine);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // help and version exit 0; usage errors were already printed by commander
    process.exit(err.exitCode);
  }
  process.stderr.write(`swarmnet: ${(err as Error).message}\n`);
  process.exit(1);
}
