/**
 * CNI protocol facts (CNI spec 1.1.0, github.com/containernetworking/cni SPEC.md), then
 * this plugin's own error codes (100+, the spec leaves them to plugins).
 */

/** Spec versions this plugin speaks (section 1 "Version considerations"). */
export const SUPPORTED_VERSIONS = ['1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
/** The newest: what VERSION answers when asked without a version, and error replies without a usable one. */
export const CURRENT_VERSION: CniVersion = '1.1.0';
/** GC and STATUS exist from 1.1.0 on (section 2 "CNI operations"). */
export const GC_STATUS_VERSION: CniVersion = '1.1.0';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'] as const;
export type CniCommand = (typeof COMMANDS)[number];

/** Environment each command needs (section 2: "Required environment parameters"; CNI_PATH we never use). */
export const REQUIRED_ENV: Record<CniCommand, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  VERSION: [],
  GC: [],
  STATUS: [],
};

/** CNI_CONTAINERID (section 2 "Parameters"). */
export const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** CNI_IFNAME: a Linux interface name (IFNAMSIZ 16 with the NUL): not . or .., no / : or whitespace. */
export const IFNAME = /^(?!\.\.?$)[^/:\s]{1,15}$/;
/** A network configuration's `name` (section 1 "Configuration format"). */
export const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** What the agent accepts as a task name (control TaskSchema): K8S_POD_NAME is used only when it fits. */
export const TASK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
/** A task alias (control AliasSchema: one DNS label, '_' allowed). */
export const ALIAS = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;

/** CNI_ARGS keys read here; others are ignored (as if IgnoreUnknown=1 were always given). */
export const ARG_SERVICE = 'SWARMNET_SERVICE';
/** Podman, CRI runtimes: the container's (pod's) name. */
export const ARG_POD_NAME = 'K8S_POD_NAME';

/** GC's list of attachments still in use (section 2 "GC"). */
export const VALID_ATTACHMENTS = 'cni.dev/valid-attachments';

/** The default route a result reports when the attach installed it. */
export const DEFAULT_ROUTE = '0.0.0.0/0';

/** Well-known error codes (section 5 "Error"). */
export const ERR = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO: 5,
  DECODE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN: 11,
  NOT_AVAILABLE: 50,
  /** This plugin's (documented in docs/cni.md). */
  CONFLICT: 100,
  ACCESS: 101,
  ATTACH: 102,
  CHECK_FAILED: 103,
  AGENT: 104,
} as const;
export type ErrorCode = (typeof ERR)[keyof typeof ERR];
