/**
 * The settings of a run, declared once. The CLI fills them in (RunOptions adds what only the
 * start of a run needs); every stage reads them from its RunContext and every host from its
 * HostRunOptions, without copying them field by field.
 */
import type { Host, Inventory, Playbook, Stage, TaskResult, Vars } from '../model/types.ts';
import type { Connection } from '../transport/connection.ts';
import type { Module } from '../modules/contract.ts';
import type { Facts } from '../facts/types.ts';
import type { EventBus } from './events.ts';
import type { HostObserver } from '../modules/observer.ts';

export interface RunSettings {
  playbook: Playbook;
  inventory: Inventory;
  modules: Map<string, Module<any>>;
  tags?: string[];
  skipTags?: string[];
  check: boolean;
  /** Hosts in parallel within a stage. */
  forks: number;
  extraVars: Vars;
  /** --no-reboot */
  noReboot: boolean;
  /** Ctrl-C: start no new work. */
  signal?: AbortSignal;
  commandTimeoutMs?: number;
}

/** What runPlaybook takes: the settings, plus how to reach hosts and what to run. */
export interface RunOptions extends RunSettings {
  limit?: string;
  bus?: EventBus;
  /** Opens a host's connection; the CLI passes the real transport. */
  connect: (host: Host) => Promise<Connection>;
  /** Reads facts (one exec); defaults to the probe. */
  probe?: (conn: Connection) => Promise<Facts>;
  /**
   * Lock each host against a concurrent apply (host-lock.ts) for the run; a second run waits up
   * to `waitS`, then fails that host. Not in check mode. The CLI turns it on.
   */
  hostLock?: { waitS: number; owner: string };
}

/** What a stage needs from the run: the settings, shared connections, facts, the result log. */
export interface RunContext {
  settings: RunSettings;
  bus: EventBus;
  probe(conn: Connection): Promise<Facts>;
  prepareHost(
    stage: Stage,
    host: Host,
  ): Promise<
    | { ok: true; conn: Connection; facts: Facts; observer?: HostObserver }
    | { ok: false; state: 'failed' | 'unreachable'; result: TaskResult }
  >;
  record(r: TaskResult): void;
  markRebooted(host: string): void;
  markRebootPending(host: string): void;
  /** Clusters whose rolling reboot stopped (a member did not come back): no more reboots there. */
  haltedClusters: Map<string, string>;
}

/** One host in one stage: the run's settings and where this host stands. */
export interface HostRunOptions extends RunSettings {
  bus: EventBus;
  stage: Stage;
  host: Host;
  conn: Connection;
  facts: Facts;
  /** The stage's reads made along with the facts probe (run.ts), when they were. */
  observer?: HostObserver;
}

