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
 *
 * The function never throws for a host's trouble: each candidate gets exactly one outcome.
 * Events emitted here: reboot-wait, reboot-prepare, reboot-start, reboot-down, reboot-up (and a warning when HA
 * maintenance cannot be left). The caller emits reboot-pending / reboot-failed from the outcomes.
 */
import type { Connection } from '../transport/connection.ts';
import { cmd } from '../transport/connection.ts';
import type { Facts } from '../facts/types.ts';
import type { Stage } from '../model/types.ts';
import type { EventBus } from './events.ts';

export interface RebootCandidate {
  host: string;
  conn: Connection;
  facts: Facts;
  /** Why the host needs a reboot (handler names, "reboot: always"…). */
  reasons: string[];
}

export interface RebootOptions {
  /** Reboot policy, timeout, guestPolicy, haMaintenance, maxDownPerCluster. */
  stage: Stage;
  /** --no-reboot */
  noReboot: boolean;
  /** Check mode: never reboot, report "would reboot". */
  check: boolean;
  bus: EventBus;
  /** Gathers facts again (one exec). */
  probe: (conn: Connection) => Promise<Facts>;
  /** Ctrl-C: start no new reboot. */
  signal?: AbortSignal;
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

export type RebootOutcome =
  | { host: string; status: 'rebooted'; facts: Facts; downAt: number; upAt: number }
  | { host: string; status: 'pending'; reason: string }
  | { host: string; status: 'failed'; msg: string; hint?: string; downAt?: number };

/**
 * Sent to reboot: returns at once so the SSH command ends cleanly, the reboot follows a second
 * later, detached from the session.
 */
export const REBOOT_COMMAND = `sh -c 'sleep 1; reboot' >/dev/null 2>&1 </dev/null &`;

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

type Guest = Facts['guests'][number];

export function runningGuests(facts: Facts): Guest[] {
  return facts.guests.filter((g) => g.status === 'running');
}

/** `100 (win11), 101` */
export function describeGuests(guests: Guest[]): string {
  return guests.map((g) => (g.name ? `${g.id} (${g.name})` : g.id)).join(', ');
}

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

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

interface Lane {
  name: string;
  votes: number;
  limit: number;
  /** Set when no further member may be rebooted: the reason the rest become pending. */
  halted?: string;
}

export async function coordinateReboots(
  cands: RebootCandidate[],
  opts: RebootOptions,
): Promise<Map<string, RebootOutcome>> {
  const { stage, bus, probe, signal } = opts;
  const now = opts.now ?? Date.now;
  const pollMs = opts.pollMs ?? 1000;
  const timeoutMs = stage.rebootTimeoutS * 1000;
  const timeoutText = `${stage.rebootTimeoutS}s`;
  const results = new Map<string, RebootOutcome>();

  const pending = (host: string, reason: string): void => {
    results.set(host, { host, status: 'pending', reason });
  };
  const fail = (host: string, msg: string, hint?: string, downAt?: number): void => {
    results.set(host, { host, status: 'failed', msg, ...(hint ? { hint } : {}), ...(downAt !== undefined ? { downAt } : {}) });
  };
  const wait = (host: string, reason: string, waitingFor: string): void =>
    bus.emit({ type: 'reboot-wait', stage: stage.name, host, reason, waitingFor });
  const why = (c: RebootCandidate): string => c.reasons.join('; ') || 'reboot requested';
  const interrupted = 'interrupted: no new reboot started';

  /** Race a promise against an absolute deadline of `now()`. */
  const before = <T>(p: Promise<T>, deadline: number, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in time`)), Math.max(0, deadline - now()));
    });
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  };

  // ------------------------------------------------ nothing to do but report
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

  // ------------------------------------------------ one host
  async function rebootOne(c: RebootCandidate, lane?: Lane): Promise<void> {
    const { host, conn } = c;
    if (signal?.aborted) return pending(host, interrupted);
    bus.emit({ type: 'reboot-prepare', stage: stage.name, host, what: 'its turn: reading guests and quorum' });

    // Fresh state: guests and quorum are read just before the reboot.
    let facts: Facts;
    const gateDeadline = now() + timeoutMs;
    let announced = false;
    for (;;) {
      try {
        facts = await before(probe(conn), gateDeadline, `${host}: probe`);
      } catch (e) {
        return fail(host, `${host}: could not read its state before the reboot: ${errMsg(e)}`, 'check that the host is reachable, then rerun');
      }
      const running = runningGuests(facts);
      if (running.length && stage.guestPolicy === 'refuse') {
        return pending(host, `guests running: ${describeGuests(running)}; stop them or set guests: shutdown`);
      }
      if (!lane) break;
      if (facts.cluster.quorumUnknown !== undefined) {
        return fail(
          host,
          `${host}: not rebooted: it is a member of cluster ${lane.name}, but its quorum cannot be read (${facts.cluster.quorumUnknown}); rebooting it could cost the cluster its quorum`,
          'check `systemctl status corosync pve-cluster` and `pvecm status` on the host, bring corosync back, then rerun',
        );
      }
      const problem = quorumProblem(host, facts, lane);
      if (!problem) break;
      if (now() >= gateDeadline) {
        lane.halted = `cluster ${lane.name}: not quorate before the reboot of ${host}`;
        return fail(
          host,
          `${host}: not rebooted: cluster ${lane.name} ${problem}, still after waiting ${timeoutText}; rebooting it could lose quorum`,
          `check \`pvecm status\` on the members of ${lane.name}, bring missing members back, then rerun`,
        );
      }
      if (signal?.aborted) return pending(host, interrupted);
      if (!announced) {
        wait(host, `cluster ${lane.name} ${problem}`, `quorum of cluster ${lane.name}`);
        announced = true;
      }
      await sleep(Math.min(pollMs, gateDeadline - now()));
    }

    if (!facts.bootId) {
      return fail(host, `${host}: cannot read /proc/sys/kernel/random/boot_id, so a reboot could not be proven; not rebooting`);
    }
    const node = facts.hostname || host;
    const ha = !!lane && stage.haMaintenance;
    const haDisable = cmd('ha-manager', 'crm-command', 'node-maintenance', 'disable', node);
    const haHint = ha ? `; HA maintenance may still be on: \`${haDisable}\`` : '';
    const undoHa = async (): Promise<void> => {
      if (!ha) return;
      try {
        await conn.exec(haDisable);
      } catch (e) {
        bus.emit({ type: 'warning', host, msg: `${host}: could not leave HA maintenance: ${errMsg(e)}; run \`${haDisable}\`` });
      }
    };

    if (ha) {
      try {
        await conn.exec(cmd('ha-manager', 'crm-command', 'node-maintenance', 'enable', node));
      } catch (e) {
        return fail(host, `${host}: could not enable HA maintenance, not rebooting: ${errMsg(e)}`, 'check `ha-manager status`, or set ha_maintenance: false');
      }
    }

    // Guests: shut down under `shutdown`, then wait until none runs.
    let running = runningGuests(facts);
    if (running.length && stage.guestPolicy === 'shutdown') {
      bus.emit({ type: 'reboot-prepare', stage: stage.name, host, what: `shutting down ${running.length} guest${running.length > 1 ? 's' : ''}` });
      const shutDeadline = now() + timeoutMs;
      const secs = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
      await Promise.all(
        running.map((g) =>
          conn
            .exec(cmd(g.kind === 'pct' ? 'pct' : 'qm', 'shutdown', g.id, '--timeout', secs), { nothrow: true, timeoutMs: timeoutMs + 5000 })
            .catch(() => undefined),
        ),
      );
      for (;;) {
        try {
          facts = await before(probe(conn), shutDeadline, `${host}: probe`);
          running = runningGuests(facts);
          if (!running.length) break;
        } catch {
          // keep trying until the deadline
        }
        if (now() >= shutDeadline) {
          await undoHa();
          return fail(
            host,
            `${host}: guests still running ${timeoutText} after shutdown was asked: ${describeGuests(running)}; not rebooting`,
            'shut them down by hand, or set guests: ignore',
          );
        }
        await sleep(Math.min(pollMs, shutDeadline - now()));
      }
    }

    if (signal?.aborted) {
      await undoHa();
      return pending(host, interrupted);
    }

    // The reboot.
    const bootBefore = facts.bootId;
    bus.emit({ type: 'reboot-start', stage: stage.name, host, reason: why(c), at: now() });
    try {
      await conn.exec(REBOOT_COMMAND, { nothrow: true, timeoutMs: 15_000 });
    } catch {
      // the connection may drop under the command: proof comes from the boot_id only
    }
    const downAt = now();
    bus.emit({ type: 'reboot-down', stage: stage.name, host, at: downAt });
    const deadline = downAt + timeoutMs;

    let back: Facts | undefined;
    let lastErr = '';
    while (!back) {
      try {
        // Poll at a steady pace: a node that is back should be seen within a poll, not a backoff.
        await conn.reconnect({
          deadlineMs: Math.max(1, deadline - now()),
          initialDelayMs: Math.min(250, pollMs),
          maxDelayMs: pollMs,
        });
        const f = await before(probe(conn), deadline, `${host}: probe`);
        if (f.bootId && f.bootId !== bootBefore) {
          await before(conn.exec('true'), deadline, `${host}: test command`);
          back = f;
          break;
        }
        lastErr = `still running the boot from before (boot_id ${bootBefore}): did the reboot command take effect?`;
      } catch (e) {
        // down, booting, or the old boot still shutting down: try again
        lastErr = errMsg(e);
      }
      if (now() >= deadline) break;
      await sleep(Math.min(pollMs, deadline - now()));
    }
    if (!back) {
      if (lane) lane.halted = `cluster ${lane.name}: member ${host} did not come back`;
      return fail(
        host,
        `${host} did not come back within ${timeoutText} of going down at ${new Date(downAt).toISOString()}` +
          (lastErr ? ` (last error: ${lastErr.split('\n')[0]})` : ''),
        `check ${host}'s console; once it is up, rerun with --limit @<failed-hosts file>${haHint}`,
        downAt,
      );
    }
    const upAt = now();
    bus.emit({ type: 'reboot-up', stage: stage.name, host, at: upAt, downForMs: upAt - downAt, bootId: back.bootId });

    // A cluster member must see a quorate cluster again before the next one goes.
    if (lane) {
      const qDeadline = upAt + timeoutMs;
      let announcedQ = false;
      while (back.cluster.quorate !== true) {
        if (now() >= qDeadline) {
          lane.halted = `cluster ${lane.name}: member ${host} did not rejoin a quorate cluster`;
          return fail(
            host,
            `${host} came back (boot ${back.bootId}) but cluster ${lane.name} is not quorate from it after ${timeoutText}`,
            `check \`pvecm status\` on ${host} and corosync on the members${haHint}`,
            downAt,
          );
        }
        if (!announcedQ) {
          wait(host, `rebooted; waiting for cluster ${lane.name} to be quorate again`, `quorum of cluster ${lane.name}`);
          announcedQ = true;
        }
        await sleep(Math.min(pollMs, qDeadline - now()));
        try {
          back = await before(probe(conn), qDeadline, `${host}: probe`);
        } catch {
          // try again until the deadline
        }
      }
    }

    if (ha) {
      try {
        await conn.exec(haDisable);
      } catch (e) {
        return fail(host, `${host}: rebooted, but could not leave HA maintenance: ${errMsg(e)}`, `run \`${haDisable}\``, downAt);
      }
    }

    results.set(host, { host, status: 'rebooted', facts: back, downAt, upAt: now() });
  }

  function quorumProblem(host: string, f: Facts, lane: Lane): string | null {
    const { quorate, totalVotes } = f.cluster;
    const expected = f.cluster.expectedVotes || lane.votes;
    if (quorate !== true) return `is not quorate (seen from ${host}: ${totalVotes} of ${expected} votes)`;
    if (expected > 1 && totalVotes > 0 && totalVotes - 1 < quorumOf(expected)) {
      return `has ${totalVotes} of ${expected} votes; without ${host} it would fall below quorum (${quorumOf(expected)})`;
    }
    return null;
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
          wait(m.host, `cluster ${name}: at most ${limit} member${limit > 1 ? 's' : ''} down at once`, holders.join(', ')),
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

  /** Every candidate ends with an outcome, whatever throws. */
  async function guard(c: RebootCandidate, lane?: Lane): Promise<void> {
    try {
      await rebootOne(c, lane);
    } catch (e) {
      if (lane) lane.halted ??= `cluster ${lane.name}: the reboot of ${c.host} went wrong`;
      fail(c.host, `${c.host}: reboot: ${errMsg(e)}`);
    }
    if (!results.has(c.host)) fail(c.host, `${c.host}: reboot: no outcome`);
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
