/** `swarmnet stack ...`: compose files deployed as networks and services (the networking half of `docker stack`). */
import type { Command } from 'commander';
import type { ApiClient, Service } from '../api/index.js';
import { deployStack, listStacks, loadStack, PlanError, removeStack, sourceOf, stackObjects } from '../stack/index.js';
import { NotFoundError } from '../util/errors.js';
import { collect, json, print, table, UsageError } from './format.js';
import { publishedPorts } from './service.js';

/** As docker: the stack name prefixes every object, so it must make valid names. */
function stackName(name: string): string {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_-]{0,40}$/.test(name)) throw new UsageError(`stack name '${name}' is invalid: letters, digits, '-' and '_', starting with a letter or digit, at most 41`);
  return name;
}

const warn = (line: string) => process.stderr.write(`${line}\n`);

/** A stack is its services here: none means no such stack (as docker says). */
async function servicesOf(api: ApiClient, name: string): Promise<Service[]> {
  const { services } = await stackObjects(api, name);
  if (!services.length) throw new NotFoundError(`nothing found in stack: ${name}`);
  return services;
}

export function stackCommands(program: Command, client: () => ApiClient): void {
  const stack = program.command('stack').description('deploy compose files: networks, services, ports, aliases');

  stack
    .command('deploy <name>')
    .description('create or update a stack from compose files (later files override earlier ones)')
    .requiredOption('-c, --compose-file <file>', 'compose file (repeatable)', collect)
    .option('--prune', 'remove services of the stack that the files no longer name')
    .action(async (name: string, o: { composeFile: string[]; prune?: boolean }) => {
      const { spec, warnings } = loadStack(o.composeFile, stackName(name), { env: process.env });
      for (const w of warnings) warn(`warning: ${w}`);
      try {
        const plan = await deployStack(client(), spec, { prune: o.prune === true, log: print, warn });
        if (plan.unchanged.length) print(`Unchanged: ${plan.unchanged.join(', ')}`);
      } catch (err) {
        // A plan error names a StackSpec field: say where it is in the files.
        if (err instanceof PlanError) throw new Error(`${sourceOf(spec, err.field) ?? err.field}: ${err.problem}`, { cause: err });
        throw err;
      }
    });

  stack
    .command('ls')
    .description('list stacks')
    .option('--format <format>', 'json')
    .action(async (o) => {
      const list = await listStacks(client());
      if (o.format === 'json') return print(json(list));
      print(table(['NAME', 'SERVICES', 'NETWORKS'], list.map((s) => [s.name, s.services, s.networks])));
    });

  stack
    .command('services <name>')
    .description("list a stack's services")
    .option('--format <format>', 'json')
    .action(async (name: string, o) => {
      const services = await servicesOf(client(), name);
      if (o.format === 'json') return print(json(services));
      const tasks = await client().tasks.list();
      print(table(['ID', 'NAME', 'MODE', 'TASKS', 'PORTS'], services.map((s) => [s.id.slice(0, 12), s.name, s.endpointMode, tasks.filter((t) => t.service === s.id).length, publishedPorts(s)])));
    });

  stack
    .command('ps <name>')
    .description("list the tasks of a stack's services")
    .option('--format <format>', 'json')
    .action(async (name: string, o) => {
      const services = await servicesOf(client(), name);
      const ids = new Map(services.map((s) => [s.id, s.name]));
      const tasks = (await client().tasks.list()).filter((t) => ids.has(t.service));
      if (o.format === 'json') return print(json(tasks));
      print(table(['ID', 'NAME', 'SERVICE', 'NODE', 'ENDPOINT', 'STATE', 'OBSERVED'], tasks.map((t) => [t.id.slice(0, 12), t.name, ids.get(t.service)!, t.node.slice(0, 12), t.addr ?? t.addresses.map((a) => a.ip).join(','), t.state, t.observed.state])));
    });

  stack
    .command('rm <name...>')
    .description('remove stacks: services first, then networks')
    .action(async (names: string[]) => {
      // As docker: every stack named is removed even when one fails; the command fails at the end.
      const failed: string[] = [];
      for (const name of names) {
        try {
          const { left } = await removeStack(client(), name, { log: print, warn });
          if (left.length) failed.push(`stack ${name}: networks still in use: ${left.join(', ')}`);
        } catch (err) {
          failed.push((err as Error).message);
        }
      }
      if (failed.length) throw new Error(failed.join('; '));
    });
}
