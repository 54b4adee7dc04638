#!/usr/bin/env node
/**
 * swarmnet command line. Every command but `agent` talks to an agent's HTTP API
 * (--host, env SWARMNET_HOST, default the local agent). Exit 0 on success; on
 * failure one line on stderr and exit 1.
 */
import { Command, CommanderError } from 'commander';
import { agentCommand } from './agent.js';
import { Client, DEFAULT_API } from './client.js';
import { connCommands } from './conn.js';
import { networkCommands } from './network.js';
import { nodeCommands } from './node.js';
import { serviceCommands } from './service.js';
import { taskCommands } from './task.js';
import { VERSION } from './version.js';

const program = new Command('swarmnet')
  .description('the networking half of Docker Swarm: routing mesh, VIPs, overlay networks, DNS')
  .version(VERSION)
  .option('-H, --host <host:port>', 'agent API address (env SWARMNET_HOST)')
  .exitOverride()
  .configureOutput({ outputError: (text, write) => write(text.split('\n')[0] + '\n') });

const client = () => new Client(program.opts<{ host?: string }>().host ?? process.env.SWARMNET_HOST ?? DEFAULT_API);

agentCommand(program);
serviceCommands(program, client);
taskCommands(program, client);
nodeCommands(program, client);
networkCommands(program, client);
connCommands(program, client);
for (const c of program.commands) c.exitOverride().configureOutput({ outputError: (text, write) => write(text.split('\n')[0] + '\n') });
for (const c of program.commands.flatMap((c) => c.commands)) c.exitOverride().configureOutput({ outputError: (text, write) => write(text.split('\n')[0] + '\n') });

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
