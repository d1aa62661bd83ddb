/**
 * What the reboot coordinator (reboot.ts) and one host's reboot (reboot-host.ts) share: the
 * types, the commands sent and the quorum arithmetic. No I/O here.
 */
import type { Connection } from '../transport/connection.ts';
import { cmd } from '../transport/connection.ts';
import type { Facts } from '../facts/types.ts';
import type { Stage } from '../model/types.ts';
import type { EventBus } from './events.ts';
import type { RunSettings } from './settings.ts';

export interface RebootCandidate {
  host: string;
  conn: Connection;
  facts: Facts;
  /** Why the host needs a reboot (handler names, "reboot: always"…). */
  reasons: string[];
}

/** From the run's settings: `noReboot` (--no-reboot), `check` (never reboot, report "would reboot"), `signal` (Ctrl-C: start no new reboot). */
export interface RebootOptions extends Pick<RunSettings, 'noReboot' | 'check' | 'signal'> {
  /** Reboot policy, timeout, guestPolicy, haMaintenance, maxDownPerCluster. */
  stage: Stage;
  bus: EventBus;
  /** Gathers facts again (one exec). */
  probe: (conn: Connection) => Promise<Facts>;
  /** Clock, for tests. */
  now?: () => number;
  /** Time between polls (reconnect attempts, quorum and guest checks); default 1000. */
  pollMs?: number;
  /**
   * Clusters halted earlier in the run (name → why), shared across calls: once a member did not
   * come back, no further member of that cluster is rebooted in this run. Updated in place.
   */
  haltedClusters?: Map<string, string>;
}

export type Guest = Facts['guests'][number];

/**
 * One outcome per candidate. `stoppedGuests`: guests this run shut down for the reboot that are
 * still stopped after Ctrl-C (starting them again failed, or the reboot had already been sent).
 */
export type RebootOutcome =
  | { host: string; status: 'rebooted'; facts: Facts; downAt: number; upAt: number; stoppedGuests?: Guest[] }
  | { host: string; status: 'pending'; reason: string; stoppedGuests?: Guest[] }
  | { host: string; status: 'failed'; msg: string; hint?: string; downAt?: number; stoppedGuests?: Guest[] };

/** One cluster's reboot lane: at most `limit` members down at once. */
export interface Lane {
  name: string;
  votes: number;
  limit: number;
  /** Set when no further member may be rebooted: the reason the rest become pending. */
  halted?: string;
}

/**
 * Sent to reboot: returns at once so the SSH command ends cleanly, the reboot follows a second
 * later, detached from the session.
 */
export const REBOOT_COMMAND = `sh -c 'sleep 1; reboot' >/dev/null 2>&1 </dev/null &`;

export const INTERRUPTED = 'interrupted: no new reboot started';

/** Votes needed for quorum in a cluster of `votes` expected votes: a strict majority. */
export function quorumOf(votes: number): number {
  return Math.floor(votes / 2) + 1;
}

/**
 * How many members of a cluster of `expectedVotes` (one vote per node assumed) may be down at
 * once: the user's `maxDownPerCluster` (at least 1) capped so quorum holds. 0 means none can be.
 */
export function clusterDownLimit(expectedVotes: number, maxDownPerCluster: number): number {
  const wanted = Math.max(1, Math.floor(maxDownPerCluster || 1));
  if (expectedVotes <= 1) return 1;
  return Math.max(0, Math.min(wanted, expectedVotes - quorumOf(expectedVotes)));
}

/** Why a member may not go down now (its cluster is not quorate, or would not be without it), or null. */
export function quorumProblem(host: string, f: Facts, lane: Lane): string | null {
  const { quorate, totalVotes } = f.cluster;
  const expected = f.cluster.expectedVotes || lane.votes;
  if (quorate !== true) return `is not quorate (seen from ${host}: ${totalVotes} of ${expected} votes)`;
  if (expected > 1 && totalVotes > 0 && totalVotes - 1 < quorumOf(expected)) {
    return `has ${totalVotes} of ${expected} votes; without ${host} it would fall below quorum (${quorumOf(expected)})`;
  }
  return null;
}

export function runningGuests(facts: Facts): Guest[] {
  return facts.guests.filter((g) => g.status === 'running');
}

/** `100 (win11), 101` */
export function describeGuests(guests: Guest[]): string {
  return guests.map((g) => (g.name ? `${g.id} (${g.name})` : g.id)).join(', ');
}

/** `qm shutdown 100 --timeout 600`, `pct start 101`: the tool of the guest's kind. */
export function guestCommand(g: Guest, verb: 'shutdown' | 'start', ...rest: string[]): string {
  return cmd(g.kind === 'pct' ? 'pct' : 'qm', verb, g.id, ...rest);
}

/** The report's line for guests left stopped after Ctrl-C, with the commands that start them. */
export function stoppedGuestsText(host: string, guests: Guest[]): { msg: string; hint: string } {
  return {
    msg: `${host}: guests shut down for the reboot and left stopped after the interruption: ${describeGuests(guests)}`,
    hint: `start them on ${host}: ${guests.map((g) => `\`${guestCommand(g, 'start')}\``).join('; ')}`,
  };
}

export function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
