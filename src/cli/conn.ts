/** `swarmnet conn ls`: the connection table, like `ipvsadm -Lnc`. */
import type { Command } from 'commander';
import type { ApiClient } from '../api/index.js';
import { json, print, table } from './format.js';

/** mm:ss as ipvsadm prints expiry. */
function expire(ms: number): string {
  const s = Math.ceil(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

export function connCommands(program: Command, client: () => ApiClient): void {
  const conn = program.command('conn').description('the routing mesh connection table');
  conn
    .command('ls')
    .description('list flows')
    .option('--service <service>', 'only this service')
    .option('--format <format>', 'json')
    .action(async (o) => {
      const list = await client().conns(o.service);
      if (o.format === 'json') return print(json(list));
      print(table(['PRO', 'EXPIRE', 'STATE', 'SOURCE', 'VIRTUAL', 'DESTINATION', 'SERVICE', 'TASK'], list.map((c) => [c.proto.toUpperCase(), expire(c.expiresInMs), c.state, c.client, c.local, c.backend ?? '-', c.service, c.backendName ?? '-'])));
    });
}
