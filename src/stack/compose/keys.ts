/**
 * Every key a compose file may hold, and what stack deploy does with it. The key set is
 * the Compose Specification's (compose-spec schema/compose-spec.json) with docker/cli's
 * version 3 schemas (cli/compose/schema/data/config_schema_v3.*.json: `cgroupns_mode`,
 * `deploy.resources.memory_swap`...) so that both kinds of files load. A key in neither
 * is an error (a typo must not pass as an ignored option). docs/stack.md has this
 * table for people; a unit test keeps the two in step.
 *
 * Inside an ignored key nothing is checked: swarmnet does not use it, compose does.
 */

export type Rule =
  /** Read by the conversion (which checks its value). */
  | 'used'
  /** Outside the networking half: named in the one "ignored (not networking)" line. */
  | 'ignored'
  /** Networking that swarmnet does not do: named in the "not supported by swarmnet" line. */
  | 'unsupported'
  /** docker stack deploy's own warning for `build`. */
  | 'build'
  | { refused: string }
  | Shape;

/** A used key with structure; each part applies when the value has that shape. */
export interface Shape {
  /** A mapping with these keys; `x-*` extension keys beside them are skipped unless `extensions` is false. */
  keys?: Record<string, Rule>;
  /** A mapping of names the user chooses (services, networks): each value follows this rule. */
  entries?: Rule;
  /** A sequence: each mapping item follows this rule (scalar items are short syntax). */
  items?: Rule;
  extensions?: false;
}

const all = <K extends string>(names: readonly K[], rule: Rule): Record<K, Rule> => Object.fromEntries(names.map((n) => [n, rule])) as Record<K, Rule>;

/** Service keys about containers, images, resources, lifecycle. */
const SERVICE_IGNORED = [
  'annotations', 'attach', 'blkio_config', 'cap_add', 'cap_drop', 'cgroup', 'cgroup_parent', 'cgroupns_mode', 'command',
  'configs', 'container_name', 'cpu_count', 'cpu_percent', 'cpu_period', 'cpu_quota', 'cpu_rt_period', 'cpu_rt_runtime',
  'cpu_shares', 'cpus', 'cpuset', 'credential_spec', 'depends_on', 'develop', 'device_cgroup_rules', 'devices', 'domainname',
  'entrypoint', 'env_file', 'environment', 'gpus', 'group_add', 'healthcheck', 'hostname', 'image', 'init', 'ipc',
  'isolation', 'label_file', 'logging', 'mem_limit', 'mem_reservation', 'mem_swappiness', 'memswap_limit', 'models',
  'oom_kill_disable', 'oom_score_adj', 'pid', 'pids_limit', 'platform', 'post_start', 'pre_start', 'pre_stop', 'privileged',
  'profiles', 'provider', 'pull_policy', 'pull_refresh_after', 'read_only', 'restart', 'runtime', 'scale', 'secrets',
  'security_opt', 'shm_size', 'stdin_open', 'stop_grace_period', 'stop_signal', 'storage_opt', 'sysctls', 'tmpfs', 'tty',
  'ulimits', 'use_api_socket', 'user', 'userns_mode', 'uts', 'volumes', 'volumes_from', 'working_dir',
] as const;

/** Service keys about a container's own network setup (its resolver, /etc/hosts, its namespace): not swarmnet's. */
const SERVICE_UNSUPPORTED = ['dns', 'dns_opt', 'dns_search', 'expose', 'external_links', 'extra_hosts', 'links', 'mac_address', 'network_mode'] as const;

const DEPLOY_IGNORED = ['mode', 'placement', 'replicas', 'resources', 'restart_policy', 'rollback_config', 'update_config'] as const;

const PORT: Rule = {
  keys: { target: 'used', published: 'used', protocol: 'used', mode: 'used', host_ip: 'used', name: 'unsupported', app_protocol: 'unsupported' },
};

const SERVICE_NETWORK: Rule = {
  keys: {
    aliases: 'used',
    ipv4_address: 'used',
    ...all(['driver_opts', 'gw_priority', 'interface_name', 'ipv6_address', 'link_local_ips', 'mac_address', 'priority'], 'unsupported'),
  },
};

/** swarmnet's own options; no extension keys inside (they would be typos). */
const SWARMNET: Rule = {
  extensions: false,
  keys: {
    scheduler: 'used',
    proxy_protocol: 'used',
    health_check: { extensions: false, keys: { interval: 'used', timeout: 'used', retries: 'used' } },
  },
};

const SERVICE: Rule = {
  keys: {
    ...all(SERVICE_IGNORED, 'ignored'),
    ...all(SERVICE_UNSUPPORTED, 'unsupported'),
    build: 'build',
    extends: { refused: 'extends is not supported by stack deploy (docker refuses it too): write the keys into the service' },
    ports: { items: PORT },
    networks: { entries: SERVICE_NETWORK },
    labels: 'used',
    deploy: { keys: { ...all(DEPLOY_IGNORED, 'ignored'), endpoint_mode: 'used', labels: 'used' } },
    'x-swarmnet': SWARMNET,
  },
};

const NETWORK: Rule = {
  keys: {
    name: 'used',
    driver: 'used',
    driver_opts: 'used',
    attachable: 'used',
    labels: 'used',
    external: { keys: { name: 'used' } },
    internal: 'used',
    enable_ipv4: 'used',
    enable_ipv6: 'used',
    ipam: {
      keys: {
        driver: 'used',
        options: 'unsupported',
        config: { items: { keys: { subnet: 'used', ip_range: 'unsupported', gateway: 'unsupported', aux_addresses: 'unsupported' } } },
      },
    },
  },
};

const TOP_LEVEL: Record<string, Rule> = {
  version: 'used',
  name: 'ignored',
  include: { refused: 'include is not supported by stack deploy: give the files with -c instead' },
  services: { entries: SERVICE },
  networks: { entries: NETWORK },
  ...all(['volumes', 'secrets', 'configs', 'models'], 'ignored'),
};

export const COMPOSE_KEYS: Rule = { keys: TOP_LEVEL };
export const TOP_LEVEL_KEYS: ReadonlySet<string> = new Set(Object.keys(TOP_LEVEL));

/** Where swarmnet reads `x-swarmnet`; anywhere else it would be silently lost, so it is an error. */
export const SWARMNET_KEY = 'x-swarmnet';
