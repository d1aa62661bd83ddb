/**
 * A whole run: resolve every stage's hosts (before any host is contacted), then the stages in
 * order, each a barrier; hosts that failed or were unreachable leave the run. Emits events and
 * returns the report; never prints.
 */
import { checkHostVars } from '../load/hostvars.ts';
import type { Host, HostRecap, Inventory, Playbook, RunReport, Stage, TaskResult } from '../model/types.ts';
import { EXIT } from '../model/types.ts';
import { ConfigError, UnreachableError } from '../model/errors.ts';
import { CommandError, type Connection } from '../transport/connection.ts';
import { factsFromOutput, gatherFacts, PROBE_TIMEOUT_MS, probeCommandResults, probeScript, type Facts } from '../facts/index.ts';
import { HostObserver } from '../modules/observer.ts';
import { matchHosts } from '../inventory/index.ts';
import { EventBus } from './events.ts';
import { runStage } from './stage.ts';
import { isConnectionLoss, speculativeReads } from './host.ts';
import { lockHost, type Along, type HostLock } from './host-lock.ts';
import { stateDir } from './pending-handlers.ts';
import type { RunContext, RunOptions } from './settings.ts';

export type { RunOptions } from './settings.ts';

export interface StagePlan {
  stage: Stage;
  hosts: string[];
  /** Why the stage has no host (its pattern names no host or group here): a warning, the stage is skipped. */
  warning?: string;
}

/**
 * Which hosts each stage runs on, with --limit applied. A stage whose pattern names no host or
 * group of this inventory is skipped with a warning, as Ansible does (the shipped playbook has a
 * guest stage that an inventory of Proxmox nodes only does not need); a stage left with no host
 * by --limit is skipped too. Throws ConfigError, before anything connects, for a --limit that
 * matches nothing and when no stage has any host at all.
 */
export function planRun(pb: Playbook, inv: Inventory, limit?: string): StagePlan[] {
  const limited = limit ? new Set(matchHosts(inv, limit)) : null;
  const plans: StagePlan[] = pb.stages.map((stage) => {
    try {
      const hosts = matchHosts(inv, stage.hosts, stage.pos, { allowEmpty: true }).filter((h) => !limited || limited.has(h));
      return hosts.length ? { stage, hosts } : { stage, hosts, warning: `stage "${stage.name}": no host matches '${stage.hosts}'${limit ? ` within --limit ${limit}` : ''}; skipped` };
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      const where = e.pos ? `${e.pos.file}:${e.pos.line}:${e.pos.col}: ` : '';
      return { stage, hosts: [], warning: `${where}stage "${stage.name}": ${e.message}${e.hint ? ` (${e.hint})` : ''}; skipped` };
    }
  });
  if (plans.length && plans.every((p) => p.hosts.length === 0)) {
    const first = pb.stages[0];
    throw new ConfigError(
      `no stage has a host to run on: ${plans.map((p) => `"${p.stage.name}" (hosts: ${p.stage.hosts})`).join(', ')}${limit ? ` within --limit ${limit}` : ''}`,
      first.pos,
      `the inventory ${inv.file} has the groups ${[...inv.groups.keys()].filter((g) => g !== 'all' && g !== 'ungrouped').join(', ') || '(none)'}; name them in the stages' hosts:, or put the hosts in the groups the playbook expects`,
    );
  }
  return plans;
}

export async function runPlaybook(o: RunOptions): Promise<RunReport> {
  const started = Date.now();
  const bus = o.bus ?? new EventBus();
  const plan = planRun(o.playbook, o.inventory, o.limit);
  checkHostVars(o.playbook, o.inventory, o.extraVars, plan); // before any connection
  const allHosts = [...new Set(plan.flatMap((p) => p.hosts))];
  const order = [...o.inventory.hosts.keys()];
  const conns = new Map<string, Promise<Connection>>();
  const locks = new Map<string, Promise<HostLock | null>>();
  const results = new Map<string, TaskResult[]>(allHosts.map((h) => [h, []]));
  const recap = new Map<string, HostRecap>(
    allHosts.map((h) => [h, { ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, rebootPending: false, rebooted: false }]),
  );
  const out = new Set<string>(); // failed or unreachable: no later stage
  const probe = o.probe ?? gatherFacts;

  type Prepared = Awaited<ReturnType<RunContext['prepareHost']>> & { durationMs?: number };
  // Check mode: a host of the next stage, probed for it while this stage runs (see ahead below).
  const early = new Map<string, { stage: Stage; prepared: Promise<Prepared> }>();

  /** Connect (once per run), lock (apply), probe with the stage's reads; no events. */
  async function prepare(stage: Stage, host: Host): Promise<Prepared> {
    const fail = (status: 'failed' | 'unreachable', msg: string, hint?: string) => ({
      ok: false as const,
      state: status,
      result: {
        host: host.name, stage: stage.name, role: '', task: status === 'unreachable' ? 'connect' : 'gather facts',
        kind: 'task' as const, status, changed: false, diff: [], msg, hint, durationMs: 0,
      },
    });
    let conn: Connection;
    try {
      if (!conns.has(host.name)) conns.set(host.name, o.connect(host));
      conn = await conns.get(host.name)!;
    } catch (e) {
      const err = e as Error & { hint?: string };
      return fail('unreachable', err.message, err.hint);
    }
    // The node lock (apply only). Taken by the first stage that reaches the host; when the
    // facts come from the built-in probe, the probe and the stage's reads run inside the lock's
    // own command once it holds the lock: one command, not two (HostLock.along).
    const hl = o.hostLock && !o.check ? o.hostLock : undefined;
    const takeLock = (along?: Along) => {
      const p = lockHost(conn, {
        dir: stateDir(host),
        owner: hl!.owner,
        waitS: hl!.waitS,
        warn: (msg) => bus.emit({ type: 'warning', msg, host: host.name }),
        along,
      });
      p.catch(() => {});
      locks.set(host.name, p);
      return p;
    };
    const foldIntoLock = Boolean(hl) && !locks.has(host.name) && !o.probe;
    // Set when the lock taken along with the probe could not be had (another run holds it).
    let lockError: (Error & { hint?: string }) | undefined;
    if (hl && !foldIntoLock) {
      try {
        await (locks.get(host.name) ?? takeLock());
      } catch (e) {
        const err = e as Error & { hint?: string };
        return fail('failed', err.message, err.hint);
      }
    }
    const t = Date.now();
    try {
      let facts: Facts;
      let observer: HostObserver | undefined;
      if (o.probe) facts = await o.probe(conn);
      else {
        // The stage's reads ride along with the probe: one exec for both (speculativeReads).
        observer = new HostObserver(conn, { timeoutMs: o.commandTimeoutMs });
        const seeded = observer;
        const timeoutMs = PROBE_TIMEOUT_MS + (o.commandTimeoutMs ?? PROBE_TIMEOUT_MS);
        const reads = speculativeReads({ ...o, stage, host });
        // The commands the probe runs itself (dpkg-query) answer those reads (left out of `reads`).
        const parse = (_: string, r: { code: number; stdout: string; stderr: string }): Facts => {
          const f = factsFromOutput(conn.host, r);
          for (const [command, state] of probeCommandResults(r.stdout)) seeded.seed({ kind: 'cmd', command }, state);
          return f;
        };
        // Inside the lock's command once it holds the lock; on its own when the node cannot be
        // locked (no flock) or the script is too long for a command line.
        const inLock = foldIntoLock
          ? async (script: string) => {
              const lock = await takeLock({ script, timeoutMs }).catch((e: Error & { hint?: string }) => {
                lockError = e;
                throw e;
              });
              return lock?.along ?? conn.exec('sh -s', { stdin: script, nothrow: true, timeoutMs });
            }
          : undefined;
        facts = await seeded.readAlong(probeScript(), reads, parse, timeoutMs, inLock).catch((e: Error) => {
          if (lockError) throw e;
          // Only a command cut short (reads that hung) is retried as the probe alone; a probe
          // that printed nothing usable, or a lost connection, would only fail a second time.
          if (!(e instanceof CommandError) || e instanceof UnreachableError || isConnectionLoss(e)) throw e;
          observer = undefined;
          return gatherFacts(conn);
        });
      }
      return { ok: true, conn, facts, observer, durationMs: Date.now() - t };
    } catch (e) {
      const err = e as Error;
      if (lockError) return fail('failed', lockError.message, lockError.hint);
      if (e instanceof UnreachableError || isConnectionLoss(err)) return fail('unreachable', err.message);
      return fail('failed', `could not read facts: ${err.message}`, 'the probe is plain POSIX sh: is /bin/sh present and the user root (or become: true)?');
    }
  }

  const ctx: RunContext = {
    settings: o,
    bus,
    probe,
    haltedClusters: new Map(),
    async prepareHost(stage, host) {
      const ahead = early.get(host.name);
      if (ahead?.stage === stage) early.delete(host.name);
      const { durationMs, ...r } = await (ahead?.stage === stage ? ahead.prepared : prepare(stage, host));
      if (r.ok) bus.emit({ type: 'facts', stage: stage.name, host: host.name, durationMs: durationMs ?? 0 });
      return r;
    },
    record(r) {
      results.get(r.host)?.push(r);
      const rc = recap.get(r.host);
      if (!rc) return;
      // As Ansible counts: ok is every task that succeeded, changed or not; changed is a subset.
      if (r.status === 'ok') rc.ok++;
      else if (r.status === 'changed') {
        rc.ok++;
        rc.changed++;
      }
      else if (r.status === 'failed') rc.failed++;
      else if (r.status === 'skipped') rc.skipped++;
      else if (r.status === 'unreachable') rc.unreachable++;
    },
    markRebooted(h) {
      const rc = recap.get(h);
      if (rc) {
        rc.rebooted = true;
        rc.rebootPending = false;
      }
    },
    markRebootPending(h) {
      const rc = recap.get(h);
      if (rc) rc.rebootPending = true;
    },
  };

  // Check mode: the next stage's hosts that no stage has reached yet (a guest after its Proxmox
  // node) are connected and probed, with that stage's reads, while this stage runs, up to --forks
  // of them: nothing a check does changes what they would answer. Their facts are shown when their
  // stage starts; a failure is reported by that stage, as before. Not in apply: a stage may shut a
  // guest down for its node's reboot, or create the VM the next stage logs into.
  const ahead = (next: { stage: Stage; hosts: string[] } | undefined): void => {
    if (!next) return;
    for (const h of next.hosts.filter((h) => !conns.has(h)).slice(0, o.forks)) {
      const host = o.inventory.hosts.get(h);
      if (host) early.set(h, { stage: next.stage, prepared: prepare(next.stage, host) });
    }
  };

  bus.emit({ type: 'run-start', playbook: o.playbook.file, check: o.check, hosts: allHosts });
  let aborted = false;
  // Stages each host still has to finish; after Ctrl-C the unfinished ones go to failedHosts too.
  const remaining = new Map(allHosts.map((h) => [h, plan.filter((p) => p.hosts.includes(h)).length]));
  try {
    for (const [i, { stage, hosts, warning }] of plan.entries()) {
      if (o.signal?.aborted || aborted) break;
      const active = hosts.filter((h) => !out.has(h));
      if (!active.length) {
        bus.emit({
          type: 'warning',
          msg: warning ?? `stage "${stage.name}": every host failed earlier; skipped`,
        });
        continue;
      }
      if (o.check) ahead(plan[i + 1]);
      const s = await runStage(ctx, stage, active);
      for (const [h, st] of s.hosts) {
        if (st !== 'ok') out.add(h);
        else if (!o.signal?.aborted) remaining.set(h, (remaining.get(h) ?? 1) - 1);
      }
      aborted = s.aborted;
    }
  } finally {
    await Promise.allSettled([...locks.values()].map(async (p) => (await p)?.release()));
    await Promise.allSettled(
      [...conns.values()].map(async (p) => {
        try {
          await (await p).close();
        } catch {
          // a connection that never opened has nothing to close
        }
      }),
    );
  }

  const unfinished = (h: string) => Boolean(o.signal?.aborted) && (remaining.get(h) ?? 0) > 0;
  const failedHosts = order.filter((h) => out.has(h) || unfinished(h));
  const anyFailed = [...recap.values()].some((r) => r.failed > 0);
  const anyUnreachable = [...recap.values()].some((r) => r.unreachable > 0);
  const anyChanged = [...recap.values()].some((r) => r.changed > 0);
  // Failed beats unreachable beats an aborted run (a batch policy stop counts as a failure only
  // when no host is to blame for it otherwise) beats drift beats a reboot still pending.
  const exitCode = o.signal?.aborted
    ? EXIT.interrupted
    : anyFailed
      ? EXIT.hostFailed
      : anyUnreachable
        ? EXIT.unreachable
        : aborted
          ? EXIT.hostFailed
          : o.check && anyChanged
            ? EXIT.drift
            : [...recap.values()].some((r) => r.rebootPending)
              ? EXIT.rebootPending
              : EXIT.ok;
  const report: RunReport = {
    playbook: o.playbook.file,
    check: o.check,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    recap: Object.fromEntries(order.filter((h) => recap.has(h)).map((h) => [h, recap.get(h)!])),
    hosts: Object.fromEntries(order.filter((h) => results.has(h)).map((h) => [h, { tasks: results.get(h)! }])),
    failedHosts,
    exitCode,
  };
  bus.emit({ type: 'run-end', report });
  return report;
}
