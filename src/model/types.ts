/**
 * The typed model every part of passthru shares. Loaders build it from YAML (with positions),
 * the engine runs it, reporters read the events it emits. Plain data only: no I/O here.
 */
import type { OptionSpec } from '../spec/types.ts';

/** A place in a config file; lines and columns count from 1. */
export interface Pos {
  file: string;
  line: number;
  col: number;
}

export type Vars = Record<string, unknown>;

// ---------------------------------------------------------------- inventory

export type HostKeyChecking = 'strict' | 'accept-new' | 'off';

/** How to reach a host. Built from the host's merged variables (see inventory/). */
export interface ConnSpec {
  /** Address or name to connect to; defaults to the inventory name. */
  host: string;
  port: number;
  user: string;
  identityFile?: string;
  /** Environment variable holding the identity file's passphrase. */
  passphraseEnv?: string;
  /** Password, only when the user gave one explicitly (never printed). */
  password?: string;
  /** Run commands through `sudo -n` when the user is not root. */
  become: boolean;
  /** Environment variable holding the sudo password, when sudo needs one. */
  becomePasswordEnv?: string;
  /** The sudo password itself (ansible_become_password), when the inventory gives one (never printed). */
  becomePassword?: string;
  /** ProxyJump-like: `user@host:port` of a jump host, or the name of another inventory host. */
  jump?: string;
  knownHostsFile?: string;
  hostKeyChecking: HostKeyChecking;
  /** `local` runs on the control machine itself; `ssh` is the default. */
  transport: 'ssh' | 'local';
  connectTimeoutMs?: number;
}

export interface Host {
  name: string;
  /** Variables merged by precedence (group vars parent→child < host vars); extra vars and role defaults are layered by the engine. */
  vars: Vars;
  /** Groups the host belongs to, directly or through children, `all` included. */
  groups: string[];
  conn: ConnSpec;
  pos?: Pos;
}

export interface Group {
  name: string;
  /** Hosts listed directly under this group. */
  hosts: string[];
  children: string[];
  vars: Vars;
  pos?: Pos;
}

export interface Inventory {
  file: string;
  hosts: Map<string, Host>;
  groups: Map<string, Group>;
}

// ---------------------------------------------------------------- playbooks and roles

export type RebootPolicy = 'never' | 'if-needed' | 'always';
export type GuestPolicy = 'refuse' | 'shutdown' | 'ignore';

export interface Task {
  name: string;
  /** Module name, e.g. `file`, `line`, `kernel_cmdline`. */
  module: string;
  /** Arguments as written (strings may hold `{{ templates }}`); validated against the module's schema at load. */
  args: Record<string, unknown>;
  /** A bare expression (no braces), as in Ansible. */
  when?: string;
  tags: string[];
  notify: string[];
  /** Handlers only: topics a `notify` may name to reach this handler (Ansible's `listen`; src/engine/handlers.ts). */
  listen?: string[];
  register?: string;
  /** Role the task belongs to (`''` for a task written directly in a playbook). */
  role: string;
  pos: Pos;
}

export interface Role {
  name: string;
  dir: string;
  defaults: Vars;
  tasks: Task[];
  handlers: Task[];
  /** Checks run after the stage's reboot (if any), on the booted kernel; read-only modules only. */
  gates: Task[];
  /** The typed description of the variables the role reads (argument_specs.yaml), if it has one. */
  argSpec?: RoleArgSpec;
}

/** A role's argument spec (roles/<name>/argument_specs.yaml), as read by src/load/argspec.ts. */
export interface RoleArgSpec {
  role: string;
  file: string;
  short_description?: string;
  options: Record<string, OptionSpec>;
  /** Where each option is described (for errors in the spec itself). */
  pos: Map<string, Pos>;
}

export interface RoleRef {
  name: string;
  vars: Vars;
  tags: string[];
  pos: Pos;
}

export interface Stage {
  name: string;
  /** Host pattern (see inventory/patterns). */
  hosts: string;
  roles: RoleRef[];
  vars: Vars;
  /** Batch sizes: a number, a percentage string, or a list of them; undefined = all hosts in one batch. */
  serial?: Array<number | string>;
  maxFailPercentage?: number;
  anyErrorsFatal: boolean;
  reboot: RebootPolicy;
  rebootTimeoutS: number;
  guestPolicy: GuestPolicy;
  /** Use HA maintenance mode around each reboot of a cluster member. */
  haMaintenance: boolean;
  /** At most this many cluster members down at once (capped further so quorum holds). */
  maxDownPerCluster: number;
  pos: Pos;
}

export interface Playbook {
  file: string;
  stages: Stage[];
  /** Roles loaded for this playbook, by name. */
  roles: Map<string, Role>;
}

// ---------------------------------------------------------------- results

export type TaskStatus = 'ok' | 'changed' | 'failed' | 'skipped' | 'unreachable' | 'pending';

export interface FileDiff {
  path: string;
  before: string;
  after: string;
}

export interface TaskResult {
  host: string;
  stage: string;
  role: string;
  task: string;
  /** `task`, `handler` or `gate`. */
  kind: 'task' | 'handler' | 'gate';
  status: TaskStatus;
  changed: boolean;
  diff: FileDiff[];
  msg: string;
  /** For failures: what to do next. */
  hint?: string;
  durationMs: number;
}

export interface HostRecap {
  /** Tasks, handlers and gates that succeeded, changed or not (as Ansible's recap counts). */
  ok: number;
  /** Of those, the ones that changed something (check mode: would change). */
  changed: number;
  failed: number;
  skipped: number;
  unreachable: number;
  /** Reboot needed but not done (--no-reboot, policy never, or guests running under `refuse`). */
  rebootPending: boolean;
  rebooted: boolean;
}

export interface RunReport {
  playbook: string;
  check: boolean;
  startedAt: string;
  durationMs: number;
  recap: Record<string, HostRecap>;
  hosts: Record<string, { tasks: TaskResult[] }>;
  /** Hosts that failed or were unreachable (after Ctrl-C: also those not finished), in inventory order. */
  failedHosts: string[];
  exitCode: number;
}

/** Documented exit codes (README "Exit codes"). */
export const EXIT = {
  ok: 0,
  /** Some host failed (a task, a gate, a preflight check, a reboot). */
  hostFailed: 2,
  /** Some host could not be reached (and none failed otherwise). */
  unreachable: 3,
  /** Invalid input: nothing ran, no host was contacted. */
  invalidInput: 4,
  /** Check mode found drift: some task would change something. */
  drift: 5,
  /** Nothing failed, but some host needs a reboot to boot what is configured (apply --no-reboot, guests under `refuse`, or check on a host configured but not rebooted). */
  rebootPending: 6,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const;

/** Where passthru keeps its own state on a host (`passthru_state_dir` overrides it): the run lock, pending handlers, undo records. */
export const DEFAULT_STATE_DIR = '/var/lib/passthru';
