/**
 * The reboot coordinator: reboots the hosts of a stage that need it, proves each reboot by a new
 * boot_id, and keeps every Proxmox cluster quorate while doing so.
 *
 * - Standalone hosts reboot in parallel. Membership is `facts.cluster.member` (corosync.conf,
 *   `pvecm nodes`, a quorum block: never the `Name:` line alone); members whose cluster name no
 *   source gave share one lane ("cluster of unknown name"), so they never reboot side by side.
 * - A member whose quorum cannot be read (`quorumUnknown`: corosync down, "Cannot initialize
 *   CMAP service") is not rebooted: it fails with the reason and how to check.
 * - Members of one cluster reboot at most `min(maxDownPerCluster, N - (floor(N/2)+1))` at a time
 *   (N = expected votes): a cluster of N votes stays quorate while floor(N/2)+1 are up. So three
 *   nodes → one at a time, five → at most two. A one-node cluster reboots like a standalone host;
 *   a two-node cluster (no QDevice) cannot lose a member without losing quorum, so its members
 *   are reported pending, not rebooted.
 * - Before each member's reboot the member is probed again: its cluster must be quorate and keep
 *   quorum without it (total votes - 1 >= quorum). Otherwise it waits, polling, up to the stage's
 *   reboot timeout, then fails that host and reboots no further member of that cluster.
 *   After the member is back (new boot_id), it must see a quorate cluster before its slot is given
 *   to the next member (bounded by the reboot timeout again).
 * - HA maintenance (`ha_maintenance: true`) is enabled before and disabled after each member.
 * - Running guests: `refuse` → pending with the guest list; `shutdown` → `qm|pct shutdown` each,
 *   wait until stopped, then reboot; `ignore` → reboot anyway. Guests are read from a fresh probe
 *   made just before the reboot. With HA maintenance on, HA-managed guests count as running too.
 * - A reboot is proven by a boot_id different from the one read just before, then a test command.
 *   A dropped connection is not proof, and neither is a reconnect to the old boot.
 * - A host not back within `reboot_timeout` of going down fails; in a cluster, the remaining
 *   members become pending ("cluster X: member Y did not come back").
 * - `--no-reboot`, check mode and `reboot: never` make every candidate pending, sending nothing.
 * - An aborted `signal` (Ctrl-C) starts no new reboot; hosts already down are still waited for.
 *   Guests shut down for a reboot that was not sent are started again; those left stopped are
 *   named in the outcome (`stoppedGuests`), for the report to say how to start them.
 *
 * The function never throws for a host's trouble: each candidate gets exactly one outcome.
 * Events emitted here: reboot-wait, reboot-prepare, reboot-start, reboot-down, reboot-up (and a warning when HA
 * maintenance cannot be left). The caller emits reboot-pending / reboot-failed from the outcomes.
 *
 * This file holds the lanes (who may reboot when); one host's reboot, phase by phase, is in
 * reboot-host.ts; the shared types and the quorum arithmetic in reboot-rules.ts.
 */
import type { Facts } from '../facts/types.ts';
import { rebootHost } from './reboot-host.ts';
import {
  clusterDownLimit,
  errMsg,
  quorumOf,
  type Lane,
  type RebootCandidate,
  type RebootOptions,
  type RebootOutcome,
} from './reboot-rules.ts';

export {
  REBOOT_COMMAND,
  clusterDownLimit,
  describeGuests,
  quorumOf,
  runningGuests,
  type RebootCandidate,
  type RebootOptions,
  type RebootOutcome,
} from './reboot-rules.ts';

/** FIFO slots of one cluster: who is allowed to be down (or about to be). */
class Slots {
  readonly holders: string[] = [];
  private queue: Array<{ host: string; grant: () => void; onWait: (holders: string[]) => void }> = [];
  constructor(readonly limit: number) {}

  acquire(host: string, onWait: (holders: string[]) => void): Promise<void> {
    if (this.holders.length < this.limit && this.queue.length === 0) {
      this.holders.push(host);
      return Promise.resolve();
    }
    return new Promise((grant) => {
      this.queue.push({ host, grant, onWait });
      onWait(this.holders.slice());
    });
  }

  release(host: string): void {
    const i = this.holders.indexOf(host);
    if (i >= 0) this.holders.splice(i, 1);
    while (this.holders.length < this.limit && this.queue.length) {
      const q = this.queue.shift()!;
      this.holders.push(q.host);
      q.grant();
    }
    for (const q of this.queue) q.onWait(this.holders.slice());
  }
}

export async function coordinateReboots(
  cands: RebootCandidate[],
  opts: RebootOptions,
): Promise<Map<string, RebootOutcome>> {
  const { stage, bus } = opts;
  const results = new Map<string, RebootOutcome>();
  const pending = (host: string, reason: string): void => {
    results.set(host, { host, status: 'pending', reason });
  };
  const why = (c: RebootCandidate): string => c.reasons.join('; ') || 'reboot requested';

  // Nothing to do but report.
  const blanket = opts.check
    ? 'check mode: would reboot'
    : opts.noReboot
      ? 'reboot pending (--no-reboot)'
      : stage.reboot === 'never'
        ? 'reboot pending (stage has reboot: never)'
        : null;
  if (blanket) {
    for (const c of cands) pending(c.host, `${blanket}: ${why(c)}`);
    return ordered(cands, results);
  }

  /** Every candidate ends with an outcome, whatever throws. */
  async function guard(c: RebootCandidate, lane?: Lane): Promise<void> {
    try {
      results.set(c.host, await rebootHost(c, opts, lane));
    } catch (e) {
      if (lane) lane.halted ??= `cluster ${lane.name}: the reboot of ${c.host} went wrong`;
      results.set(c.host, { host: c.host, status: 'failed', msg: `${c.host}: reboot: ${errMsg(e)}` });
    }
  }

  async function runCluster(name: string, members: RebootCandidate[]): Promise<void> {
    const votes = Math.max(
      ...members.map((m) => m.facts.cluster.expectedVotes || m.facts.cluster.nodes.length || 0),
      members.length,
    );
    const limit = clusterDownLimit(votes, stage.maxDownPerCluster);
    if (limit < 1) {
      for (const m of members) {
        pending(
          m.host,
          `cluster ${name} has ${votes} votes and needs ${quorumOf(votes)} up: any member down loses quorum; reboot by hand, or add a QDevice`,
        );
      }
      return;
    }
    const lane: Lane = { name, votes, limit, halted: opts.haltedClusters?.get(name) };
    const slots = new Slots(limit);
    await Promise.all(
      members.map(async (m) => {
        await slots.acquire(m.host, (holders) =>
          bus.emit({
            type: 'reboot-wait',
            stage: stage.name,
            host: m.host,
            reason: `cluster ${name}: at most ${limit} member${limit > 1 ? 's' : ''} down at once`,
            waitingFor: holders.join(', '),
          }),
        );
        try {
          if (lane.halted) pending(m.host, lane.halted);
          else await guard(m, lane);
        } finally {
          slots.release(m.host);
        }
      }),
    );
    if (lane.halted) opts.haltedClusters?.set(name, lane.halted);
  }

  const standalone: RebootCandidate[] = [];
  const clusters = new Map<string, RebootCandidate[]>();
  for (const c of cands) {
    const name = clusterLane(c.facts);
    if (name === null) standalone.push(c);
    else clusters.set(name, [...(clusters.get(name) ?? []), c]);
  }
  await Promise.all([
    ...standalone.map((c) => guard(c)),
    ...[...clusters].map(([name, members]) => runCluster(name, members)),
  ]);
  return ordered(cands, results);
}

/** The lane of a host: its cluster's name, a shared lane for members of unknown name, null if standalone. */
export function clusterLane(f: Facts): string | null {
  const named = f.cluster.name !== null && f.cluster.name !== '';
  const member = f.cluster.member ?? named;
  if (!member) return null;
  return named ? f.cluster.name : UNKNOWN_CLUSTER;
}

/** The lane of members whose cluster name no source gave: one lane, so one reboot at a time. */
export const UNKNOWN_CLUSTER = '(of unknown name)';

function ordered(cands: RebootCandidate[], results: Map<string, RebootOutcome>): Map<string, RebootOutcome> {
  const out = new Map<string, RebootOutcome>();
  for (const c of cands) {
    const r = results.get(c.host);
    if (r) out.set(c.host, r);
  }
  return out;
}
