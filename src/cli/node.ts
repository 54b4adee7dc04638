/** `swarmnet node ...` */
import type { Command } from 'commander';
import type { Node } from '../control/schema.js';
import type { Client } from './client.js';
import { json, print, table } from './format.js';

export function nodeCommands(program: Command, client: () => Client): void {
  const node = program.command('node').description('manage nodes');

  node
    .command('ls')
    .description('list nodes')
    .option('--format <format>', 'json')
    .action(async (o) => {
      const list = await client().get<Node[]>('/v1/nodes');
      if (o.format === 'json') return print(json(list));
      const now = Date.now();
      print(table(['ID', 'HOSTNAME', 'ADDRESS', 'STATUS', 'AVAILABILITY', 'LAST SEEN'], list.map((n) => [n.id, n.hostname, n.addr, n.status, n.availability, `${Math.round((now - n.lastSeen) / 1000)}s ago`])));
    });

  node
    .command('inspect <node>')
    .description('show a node')
    .action(async (ref: string) => print(json([await client().get<Node>(`/v1/nodes/${encodeURIComponent(ref)}`)])));

  node
    .command('update <node>')
    .description("change a node's availability")
    .requiredOption('--availability <a>', 'active, pause or drain')
    .action(async (ref: string, o) => {
      const n = await client().patch<Node>(`/v1/nodes/${encodeURIComponent(ref)}`, { availability: o.availability });
      print(n.id);
    });
}
