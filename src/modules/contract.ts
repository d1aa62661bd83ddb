/**
 * The module contract. A module never touches a host: `plan()` compares what is wanted with
 * what was observed (through an Observer that the engine fills from one batched read) and
 * returns either a no-op with its reason, a failure, or a change: diffs plus the actions that
 * make it so. The engine applies those actions (unless in check mode), so "apply does only
 * what plan announced" holds by construction.
 *
 * A module's arguments are described once, as data (`spec`, in the language of
 * src/spec/types.ts); its argument type is derived from that (`InferArgs<typeof spec>`), and the
 * loader, the engine, `passthru modules` and the editor schemas all read the same spec.
 */
import type { FileDiff, Vars } from '../model/types.ts';
import type { Facts } from '../facts/types.ts';
import type { ArgumentSpec } from '../spec/types.ts';

export type { ArgumentSpec, InferArgs } from '../spec/types.ts';

// ---------------------------------------------------------------- reading the host

/** What a module wants read before it plans. The engine batches all reads of a host into one exec. */
export type Read =
  | { kind: 'file'; path: string }
  | { kind: 'stat'; path: string }
  /** A read-only command (e.g. an `unless` guard or `systemctl is-active x`). */
  | { kind: 'cmd'; command: string };

export interface FileState {
  exists: boolean;
  /** Text content ('' when missing). */
  content: string;
  /** Octal mode, e.g. 0o644, when it exists. */
  mode?: number;
  owner?: string;
  group?: string;
  isDir?: boolean;
}

export interface CmdState {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The host as seen by plan(). Answers come from the batched read; a read that was not
 * declared costs one extra round trip. After a task plans a change, the engine records the
 * planned file contents here, so later tasks (and check mode) plan against the state the
 * earlier tasks will have made.
 */
export interface Observer {
  file(path: string): Promise<FileState>;
  stat(path: string): Promise<FileState>;
  cmd(command: string): Promise<CmdState>;
}

// ---------------------------------------------------------------- plans and actions

export type Action =
  /** `keepBackups`: with `backup`, keep only that many backups of the file (boot-critical files). */
  | { kind: 'write'; path: string; content: string; mode?: number; owner?: string; group?: string; backup?: boolean; keepBackups?: number; expectSha256?: string; lockFile?: string }
  | { kind: 'delete'; path: string }
  | { kind: 'chmod'; path: string; mode?: number; owner?: string; group?: string }
  /** A command that changes the host. `timeoutMs` defaults to the engine's command timeout. */
  | { kind: 'exec'; command: string; timeoutMs?: number; stdin?: string }
  /** Ask the reboot coordinator to reboot this host at the end of the stage. */
  | { kind: 'request-reboot'; reason: string };

export type Plan =
  | { kind: 'noop'; reason: string; data?: unknown }
  /**
   * `pending` (gates): the check failed only because the host has not booted what is configured
   * yet (e.g. parameters written but not on /proc/cmdline). The engine reports the gate, and the
   * host's other failed gates, as `pending` and the host as "reboot pending", not failed.
   */
  | { kind: 'fail'; msg: string; hint?: string; data?: unknown; pending?: boolean }
  | {
      kind: 'change';
      msg: string;
      diff: FileDiff[];
      actions: Action[];
      /** Registered as the task's result (`register:`); also what `assert` and gates report. */
      data?: unknown;
    };

export interface PlanContext {
  host: string;
  facts: Facts;
  /** All variables visible to the task (already used to template the args). */
  vars: Vars;
  observe: Observer;
  check: boolean;
}

export interface Module<A = Record<string, unknown>> {
  name: string;
  /** One paragraph for `passthru modules` and the editor schemas. */
  doc: string;
  /** The arguments: options and cross-argument rules (mutually_exclusive, required_if, ...). */
  spec: ArgumentSpec;
  /** Read-only modules (assert, gates) may be used as gates and never produce actions. */
  readOnly?: boolean;
  /**
   * Checks the spec cannot express (a regular expression that must compile, a mode that must
   * parse), on arguments that passed the spec and hold no template (at load) or are rendered
   * (at run time); return an error message or undefined.
   */
  validate?(args: A): string | undefined;
  /**
   * Reads to prefetch (after templating); optional, plan may still read lazily. `vars` are the
   * task's variables (without facts and registered results when worked out before the facts).
   */
  reads?(args: A, facts: Facts, vars?: Vars): Read[];
  plan(args: A, ctx: PlanContext): Promise<Plan>;
}

/** A unified diff of two texts, for display (`--diff`) and the JSON report. */
export function fileDiff(path: string, before: string, after: string): FileDiff {
  return { path, before, after };
}
