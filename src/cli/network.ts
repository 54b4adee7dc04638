/** `swarmnet network ...` */
import type { Command } from 'commander';
import type { ApiClient } from '../api/index.js';
import { collect, json, print, table, UsageError } from './format.js';

export function networkCommands(program: Command, client: () => ApiClient): void {
  const net = program.command('network').description('manage overlay networks');

  net
    .command('create <name>')
    .description('create an overlay network')
    .option('-d, --driver <driver>', 'overlay', 'overlay')
    .option('--subnet <cidr>', 'subnet (default: next free /24 of 10.0.0.0/8)')
    .option('-o, --opt <opt>', 'driver option: encrypted', collect)
    .option('--attachable', 'allow standalone containers to attach')
    .action(async (name: string, o) => {
      const opts = (o.opt as string[] | undefined) ?? [];
      const unknown = opts.find((x) => x !== 'encrypted' && x !== 'encrypted=true');
      if (unknown) throw new UsageError(`--opt: unknown option '${unknown}' (known: encrypted)`);
      const n = await client().networks.create({
        name,
        driver: o.driver,
        ...(o.subnet && { subnet: o.subnet }),
        ...(opts.length && { encrypted: true }),
        ...(o.attachable && { attachable: true }),
      });
      print(n.id);
    });

  net
    .command('ls')
    .description('list networks')
    .option('--format <format>', 'json')
    .action(async (o) => {
      const list = await client().networks.list();
      if (o.format === 'json') return print(json(list));
      print(table(['ID', 'NAME', 'DRIVER', 'SUBNET', 'VNI', 'ENCRYPTED'], list.map((n) => [n.id.slice(0, 12), n.name, n.driver, n.subnet, n.vni, n.encrypted ? 'yes' : 'no'])));
    });

  net
    .command('inspect <network>')
    .description('show a network')
    .action(async (ref: string) => print(json([await client().networks.inspect(ref)])));

  net
    .command('rm <network...>')
    .description('remove networks no service uses')
    .action(async (refs: string[]) => {
      for (const ref of refs) print((await client().networks.rm(ref)).name);
    });
}
