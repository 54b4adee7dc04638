/** `swarmnet service ...` */
import type { Command } from 'commander';
import type { ApiClient, Service, ServiceSpec } from '../api/index.js';
import { collect, json, parseDuration, parseIntArg, print, table, UsageError } from './format.js';
import { parsePublish } from './publish.js';

/** Published ports as docker prints them: `*:8080->80/tcp`. */
export const publishedPorts = (s: Service) => s.ports.map((p) => `*:${p.published}->${p.target}/${p.protocol}${p.mode === 'host' ? ' (host)' : ''}`).join(', ');

function healthCheck(o: { healthInterval?: string; healthTimeout?: string; healthRetries?: string }) {
  if (!o.healthInterval && !o.healthTimeout && !o.healthRetries) return undefined;
  return {
    interval: o.healthInterval ? parseDuration(o.healthInterval, '--health-interval') : 5000,
    timeout: o.healthTimeout ? parseDuration(o.healthTimeout, '--health-timeout') : 2000,
    retries: o.healthRetries ? parseIntArg(o.healthRetries, '--health-retries') : 3,
  };
}

function labels(list: string[] | undefined): Record<string, string> | undefined {
  if (!list) return undefined;
  return Object.fromEntries(
    list.map((l) => {
      const i = l.indexOf('=');
      return i < 0 ? [l, ''] : [l.slice(0, i), l.slice(i + 1)];
    }),
  );
}

type Attachment = NonNullable<ServiceSpec['networks']>[number];

/**
 * `--network` / `--network-add` in docker's two syntaxes: a network name or id, or
 * `name=NET,alias=A,alias=B,ip=IP` (ip: the service's VIP there). Values are checked by
 * the agent, so the CLI and the API report the same errors.
 */
export function parseNetwork(text: string, flag: string): Attachment {
  if (!text.includes('=')) return text;
  let target: string | undefined;
  const aliases: string[] = [];
  let ip: string | undefined;
  for (const part of text.split(',')) {
    const i = part.indexOf('=');
    const [k, v] = i < 0 ? [part, undefined] : [part.slice(0, i), part.slice(i + 1)];
    if (v === undefined || v === '') throw new UsageError(`${flag}: '${part}' in '${text}' is not key=value`);
    if (k === 'name') target = v;
    else if (k === 'alias') aliases.push(v);
    else if (k === 'ip') ip = v;
    else throw new UsageError(`${flag}: unknown key '${k}' in '${text}' (use name, alias, ip)`);
  }
  if (target === undefined) throw new UsageError(`${flag}: '${text}' has no name=NETWORK`);
  return { target, ...(aliases.length && { aliases }), ...(ip !== undefined && { ipv4Address: ip }) };
}

const networkList = (list: string[] | undefined, flag: string) => list?.map((n) => parseNetwork(n, flag));

export function serviceCommands(program: Command, client: () => ApiClient): void {
  const svc = program.command('service').description('manage services');

  svc
    .command('create')
    .description('create a service')
    .requiredOption('--name <name>', 'service name')
    .option('-p, --publish <spec>', 'publish a port: [PUBLISHED:]TARGET[/tcp|udp] or published=,target=,protocol=,mode=', collect)
    .option('--endpoint-mode <mode>', 'vip or dnsrr')
    .option('--network <net>', 'attach to an overlay network: NET or name=NET,alias=A,...,ip=VIP', collect)
    .option('--lb <scheduler>', 'rr, wrr, lc, wlc, sh or mh')
    .option('--proxy-protocol <version>', 'send a PROXY protocol header to tasks: v1 or v2')
    .option('--health-interval <duration>', 'active TCP health check interval')
    .option('--health-timeout <duration>', 'active TCP health check timeout')
    .option('--health-retries <n>', 'failed checks before a task leaves rotation')
    .option('-l, --label <key=value>', 'service label', collect)
    .option('-q, --quiet', 'print only the id')
    .action(async (o) => {
      const hc = healthCheck(o);
      const spec = {
        name: o.name,
        ...(o.publish && { ports: (o.publish as string[]).map(parsePublish) }),
        ...(o.endpointMode && { endpointMode: o.endpointMode }),
        ...(o.network && { networks: networkList(o.network, '--network') }),
        ...(o.lb && { lb: o.lb }),
        ...(o.proxyProtocol && { proxyProtocol: o.proxyProtocol }),
        ...(hc && { healthCheck: hc }),
        ...(o.label && { labels: labels(o.label) }),
      };
      const s = await client().services.create(spec);
      print(o.quiet ? s.id : `${s.id}\n${s.ports.map((p) => `published ${p.published}/${p.protocol} -> ${p.target}`).join('\n')}`);
    });

  svc
    .command('ls')
    .description('list services')
    .option('--format <format>', 'json')
    .action(async (o) => {
      const list = await client().services.list();
      if (o.format === 'json') return print(json(list));
      const tasks = await client().tasks.list();
      print(table(['ID', 'NAME', 'MODE', 'LB', 'TASKS', 'PORTS'], list.map((s) => [s.id.slice(0, 12), s.name, s.endpointMode, s.lb, tasks.filter((t) => t.service === s.id).length, publishedPorts(s)])));
    });

  svc
    .command('inspect <service>')
    .description('show a service')
    .option('--pretty', 'human-readable')
    .action(async (ref: string, o) => {
      const s = await client().services.inspect(ref);
      if (!o.pretty) return print(json([s]));
      const nets = await client().networks.list();
      const lines = [
        `ID:\t\t${s.id}`,
        `Name:\t\t${s.name}`,
        `Endpoint Mode:\t${s.endpointMode}`,
        `Scheduler:\t${s.lb}`,
        `Proxy Protocol:\t${s.proxyProtocol}`,
        `Ports:`,
        ...s.ports.map((p) => ` PublishedPort = ${p.published}\n  Protocol = ${p.protocol}\n  TargetPort = ${p.target}\n  PublishMode = ${p.mode}`),
        `Networks:`,
        ...s.networks.map((n) => ` ${nets.find((x) => x.id === n.network)?.name ?? n.network}${n.vip ? ` VIP ${n.vip}` : ''}${n.aliases ? ` Aliases ${n.aliases.join(', ')}` : ''}`),
        ...(s.healthCheck ? [`Health Check:\tTCP every ${s.healthCheck.interval}ms, timeout ${s.healthCheck.timeout}ms, ${s.healthCheck.retries} retries`] : []),
        ...(Object.keys(s.labels).length ? ['Labels:', ...Object.entries(s.labels).map(([k, v]) => ` ${k}=${v}`)] : []),
      ];
      print(lines.join('\n'));
    });

  svc
    .command('ps <service>')
    .description("list a service's tasks with their observed state")
    .option('--format <format>', 'json')
    .action(async (ref: string, o) => {
      const tasks = await client().services.tasks(ref);
      if (o.format === 'json') return print(json(tasks));
      print(table(['ID', 'NAME', 'NODE', 'ENDPOINT', 'WEIGHT', 'STATE', 'OBSERVED', 'ACTIVE'], tasks.map((t) => [t.id.slice(0, 12), t.name, t.node.slice(0, 12), t.addr ?? t.addresses.map((a) => a.ip).join(','), t.weight, t.state, t.observed.state, t.observed.active])));
    });

  svc
    .command('update <service>')
    .description('update a service')
    .option('--publish-add <spec>', 'publish another port', collect)
    .option('--publish-rm <target>', 'unpublish by target port, TARGET[/PROTO]', collect)
    .option('--network-add <net>', 'attach to a network (or set its aliases): NET or name=NET,alias=A,...,ip=VIP', collect)
    .option('--network-rm <net>', 'detach from a network', collect)
    .option('--endpoint-mode <mode>', 'vip or dnsrr')
    .option('--lb <scheduler>', 'rr, wrr, lc, wlc, sh or mh')
    .option('--proxy-protocol <version>', 'none, v1 or v2')
    .option('--health-interval <duration>', 'active TCP health check interval')
    .option('--health-timeout <duration>', 'active TCP health check timeout')
    .option('--health-retries <n>', 'failed checks before a task leaves rotation')
    .option('--no-healthcheck', 'remove the health check')
    .option('--label-add <key=value>', 'add a label', collect)
    .option('--label-rm <key>', 'remove a label', collect)
    .action(async (ref: string, o) => {
      const hc = o.healthcheck === false ? null : healthCheck(o);
      const up = {
        ...(o.publishAdd && { portsAdd: (o.publishAdd as string[]).map(parsePublish) }),
        ...(o.publishRm && {
          portsRm: (o.publishRm as string[]).map((t) => {
            const [port, protocol] = t.split('/');
            if (!port || !/^\d+$/.test(port)) throw new UsageError(`--publish-rm: '${t}' is not TARGET[/PROTO]`);
            return { target: Number(port), ...(protocol && { protocol }) };
          }),
        }),
        ...(o.networkAdd && { networksAdd: networkList(o.networkAdd, '--network-add') }),
        ...(o.networkRm && { networksRm: o.networkRm }),
        ...(o.endpointMode && { endpointMode: o.endpointMode }),
        ...(o.lb && { lb: o.lb }),
        ...(o.proxyProtocol && { proxyProtocol: o.proxyProtocol }),
        ...(hc !== undefined && { healthCheck: hc }),
        ...(o.labelAdd && { labelsAdd: labels(o.labelAdd) }),
        ...(o.labelRm && { labelsRm: o.labelRm }),
      };
      const s = await client().services.update(ref, up);
      print(s.name);
    });

  svc
    .command('rm <service...>')
    .description('remove services and their tasks')
    .action(async (refs: string[]) => {
      for (const ref of refs) print((await client().services.rm(ref)).name);
    });
}
