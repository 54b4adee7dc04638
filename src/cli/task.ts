/** `swarmnet task ...`: register and remove service endpoints. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { ApiClient } from '../api/index.js';
import { collect, json, parseIntArg, print, table } from './format.js';

/** `c1` -> /run/netns/c1 (as `ip netns` names them); other paths made absolute. */
function netnsPath(arg: string): string {
  return arg.includes('/') ? resolve(arg) : `/run/netns/${arg}`;
}

export function taskCommands(program: Command, client: () => ApiClient): void {
  const task = program.command('task').description('manage tasks (service endpoints)');

  task
    .command('add')
    .description('add a task to a service')
    .requiredOption('--service <service>', 'service name or id')
    .option('--addr <ip:port>', 'endpoint reachable from the node')
    .option('--network <net>', 'overlay network of the task')
    .option('--ip <ip>', 'address on --network (default: allocated)')
    .option('--node <id>', 'node running the task (default: this agent)')
    .option('--weight <w>', 'scheduler weight (wrr, wlc, sh)')
    .option('--name <name>', 'task name (default: SERVICE.SLOT)')
    .option('--alias <name>', 'a DNS name of the task on --network (repeatable)', collect)
    .option('--netns <path>', 'attach this network namespace (a container) to --network: a path, or a name under /run/netns')
    .action(async (o) => {
      const spec = {
        service: o.service,
        ...(o.addr && { addr: o.addr }),
        ...(o.network && { network: o.network }),
        ...(o.ip && { ip: o.ip }),
        ...(o.node && { node: o.node }),
        ...(o.weight !== undefined && { weight: parseIntArg(o.weight, '--weight') }),
        ...(o.name && { name: o.name }),
        ...(o.netns && { netns: netnsPath(o.netns) }),
        ...(o.alias && { aliases: o.alias }),
      };
      const t = await client().tasks.add(spec);
      print(`${t.id}\t${t.name}`);
    });

  task
    .command('ls')
    .description('list tasks')
    .option('--service <service>', 'only this service')
    .option('--format <format>', 'json')
    .action(async (o) => {
      const list = await client().tasks.list(o.service);
      if (o.format === 'json') return print(json(list));
      print(table(['ID', 'NAME', 'NODE', 'ENDPOINT', 'WEIGHT', 'OBSERVED'], list.map((t) => [t.id.slice(0, 12), t.name, t.node.slice(0, 12), t.addr ?? t.addresses.map((a) => a.ip).join(','), t.weight, t.observed.state])));
    });

  task
    .command('rm <task...>')
    .description('remove tasks (their connections drain)')
    .action(async (refs: string[]) => {
      for (const ref of refs) print((await client().tasks.rm(ref)).name);
    });
}
