/** `swarmnet network ...` */
import type { Command } from 'commander';
import type { ApiClient, NetworkSpec } from '../api/index.js';
import { CIPHERS, DEFAULT_CIPHER } from '../control/constants.js';
import { collect, json, print, table, UsageError } from './format.js';

/**
 * `--opt` of `network create`, as docker's: `encrypted` (or `encrypted=true`) for ESP
 * with the default cipher, `encrypted=<cipher>` to choose one.
 */
export function parseNetworkOpts(opts: readonly string[]): Pick<NetworkSpec, 'encrypted' | 'cipher'> {
  let out: Pick<NetworkSpec, 'encrypted' | 'cipher'> = {};
  for (const opt of opts) {
    const [name, value] = opt.includes('=') ? [opt.slice(0, opt.indexOf('=')), opt.slice(opt.indexOf('=') + 1)] : [opt, undefined];
    if (name !== 'encrypted') throw new UsageError(`--opt: unknown option '${opt}' (known: encrypted, encrypted=${CIPHERS.join('|')})`);
    if (value === undefined || value === 'true') out = { encrypted: true, cipher: out.cipher ?? DEFAULT_CIPHER };
    else if ((CIPHERS as readonly string[]).includes(value)) out = { encrypted: true, cipher: value as (typeof CIPHERS)[number] };
    else throw new UsageError(`--opt: '${opt}': encrypted takes no value, true, or a cipher (${CIPHERS.join(', ')})`);
  }
  return out;
}

export function networkCommands(program: Command, client: () => ApiClient): void {
  const net = program.command('network').description('manage overlay networks');

  net
    .command('create <name>')
    .description('create an overlay network')
    .option('-d, --driver <driver>', 'overlay', 'overlay')
    .option('--subnet <cidr>', 'subnet (default: next free /24 of 10.0.0.0/8)')
    .option('-o, --opt <opt>', `driver option: encrypted (ESP between nodes, ${DEFAULT_CIPHER}), encrypted=${CIPHERS.join('|')}`, collect)
    .option('--attachable', 'allow standalone containers to attach')
    .action(async (name: string, o) => {
      const enc = parseNetworkOpts((o.opt as string[] | undefined) ?? []);
      const n = await client().networks.create({
        name,
        driver: o.driver,
        ...(o.subnet && { subnet: o.subnet }),
        ...enc,
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
      print(table(['ID', 'NAME', 'DRIVER', 'SUBNET', 'VNI', 'ENCRYPTED'], list.map((n) => [n.id.slice(0, 12), n.name, n.driver, n.subnet, n.vni, n.encrypted ? (n.cipher ?? DEFAULT_CIPHER) : 'no'])));
    });

  net
    .command('inspect <network>')
    .description('show a network')
    .action(async (ref: string) => print(json([await client().networks.inspect(ref)])));

  net
    .command('rotate-key <network>')
    .description('add a new key to an encrypted network: it becomes primary once every node installed it')
    .action(async (ref: string) => print(String((await client().networks.rotateKey(ref)).gen)));

  net
    .command('rm <network...>')
    .description('remove networks no service uses')
    .action(async (refs: string[]) => {
      for (const ref of refs) print((await client().networks.rm(ref)).name);
    });
}
