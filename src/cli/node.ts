/** `swarmnet node ...` */
import type { Command } from 'commander';
import type { ApiClient } from '../api/index.js';
import { json, print, table } from './format.js';

/**
 * LAST SEEN: how long ago the agent asked last received the node's heartbeat, on its own
 * clock (the node's own `lastSeen` stamp is its wall clock, not comparable with ours).
 */
const heard = (ms: number | undefined) => (ms === undefined ? '-' : `${Math.round(ms / 1000)}s ago`);

export function nodeCommands(program: Command, client: () => ApiClient): void {
  const node = program.command('node').description('manage nodes');

  node
    .command('ls')
    .description('list nodes')
    .option('--format <format>', 'json')
    .action(async (o) => {
      const list = await client().nodes.list();
      if (o.format === 'json') return print(json(list));
      print(table(['ID', 'HOSTNAME', 'ADDRESS', 'ROLE', 'STATUS', 'AVAILABILITY', 'LAST SEEN'], list.map((n) => [n.id, n.hostname, n.addr, n.role ?? '-', n.status, n.availability, heard(n.heardMsAgo)])));
    });

  node
    .command('inspect <node>')
    .description('show a node')
    .action(async (ref: string) => print(json([await client().nodes.inspect(ref)])));

  node
    .command('update <node>')
    .description("change a node's availability")
    .requiredOption('--availability <a>', 'active, pause or drain')
    .action(async (ref: string, o) => print((await client().nodes.update(ref, { availability: o.availability })).id));

  node
    .command('promote <node...>')
    .description('make workers managers (they run nats-server and may sign certificates)')
    .action(async (refs: string[]) => {
      for (const ref of refs) print((await client().nodes.promote(ref)).id);
    });

  node
    .command('demote <node...>')
    .description('make managers workers')
    .action(async (refs: string[]) => {
      for (const ref of refs) print((await client().nodes.demote(ref)).id);
    });

  node
    .command('rm <node...>')
    .description('remove nodes from the cluster: they lose access to NATS and to the other agents')
    .option('-f, --force', 'remove a node that is still up')
    .action(async (refs: string[], o) => {
      for (const ref of refs) print((await client().nodes.rm(ref, !!o.force)).id);
    });
}
