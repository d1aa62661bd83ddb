/**
 * One stage over its hosts: batches (serial), hosts in parallel up to --forks, then the
 * coordinated reboot of the hosts that need one, fresh facts, and the gates. A stage is a
 * barrier: it returns only when every host of every batch is done (or the batch policy stopped it).
 */
import type { Host, Stage, TaskResult } from '../model/types.ts';
import type { Connection } from '../transport/connection.ts';
import type { Facts } from '../facts/types.ts';
import { batchFailed, planBatches, policyStop } from './batches.ts';
import { forEachLimit } from './limit.ts';
import { coordinateReboots, type RebootCandidate } from './reboot.ts';
import { stoppedGuestsText } from './reboot-rules.ts';
import { runHostGates, runHostStage } from './host.ts';
import type { HostRunOptions, RunContext } from './settings.ts';
import type { HostObserver } from '../modules/observer.ts';

export type HostState = 'ok' | 'failed' | 'unreachable';

export interface StageOutcome {
  /** Final state of every host that took part. */
  hosts: Map<string, HostState>;
  /** A batch exceeded max_fail_percentage (or any_errors_fatal): the run stops here. */
  aborted: boolean;
}

export async function runStage(ctx: RunContext, stage: Stage, hostNames: string[]): Promise<StageOutcome> {
  const outcome: StageOutcome = { hosts: new Map(), aborted: false };
  ctx.bus.emit({ type: 'stage-start', stage: stage.name, hosts: hostNames });
  const batches = planBatches(hostNames, stage.serial);
  for (const [index, batch] of batches.entries()) {
    if (ctx.settings.signal?.aborted) break;
    ctx.bus.emit({ type: 'batch-start', stage: stage.name, hosts: batch, index, count: batches.length });
    const { states, stop } = await runBatch(ctx, stage, batch);
    for (const [h, s] of states) outcome.hosts.set(h, s);
    const failed = [...states.values()].filter((s) => s !== 'ok').length;
    const rest = batches.slice(index + 1).flat();
    if (stop) {
      outcome.aborted = true;
      ctx.bus.emit({ type: 'warning', msg: `stage "${stage.name}", batch ${index + 1}: ${stop}; stopping the run` });
      break;
    }
    // The policies that stop the run were handled above (stop); what is left stopping this
    // stage's later batches is the all-failed rule.
    if (rest.length && batchFailed(batch.length, failed, stage.maxFailPercentage, stage.anyErrorsFatal)) {
      ctx.bus.emit({
        type: 'warning',
        msg: `stage "${stage.name}": every host of batch ${index + 1} failed; not starting ${rest.join(', ')} (later stages go on)`,
      });
      break;
    }
  }
  ctx.bus.emit({ type: 'stage-end', stage: stage.name });
  return outcome;
}

interface HostWork {
  host: Host;
  conn?: Connection;
  facts?: Facts;
  state: HostState;
  registered: Record<string, unknown>;
  /** The host stage's reads (see HostStageOutcome.observer). */
  observer?: HostObserver;
  changed: number;
  rebootReasons: string[];
  /** Rebooted in this stage (a reboot in an earlier stage says nothing about this one's changes). */
  rebooted: boolean;
}

async function runBatch(
  ctx: RunContext,
  stage: Stage,
  batch: string[],
): Promise<{ states: Map<string, HostState>; stop: string | null }> {
  const work = new Map<string, HostWork>();
  for (const name of batch) {
    work.set(name, { host: ctx.settings.inventory.hosts.get(name)!, state: 'ok', registered: {}, changed: 0, rebootReasons: [], rebooted: false });
  }
  const opts = (w: HostWork): HostRunOptions => ({ ...ctx.settings, bus: ctx.bus, stage, host: w.host, conn: w.conn!, facts: w.facts! });


  // 1. Connect, probe, tasks, handlers: every host in parallel up to --forks.
  await forEachLimit(
    [...work.values()],
    ctx.settings.forks,
    async (w) => {
      ctx.bus.emit({ type: 'host-start', stage: stage.name, host: w.host.name });
      const ready = await ctx.prepareHost(stage, w.host);
      if (!ready.ok) {
        w.state = ready.state;
        emitAll(ctx, [ready.result]);
        ctx.bus.emit({ type: 'host-end', stage: stage.name, host: w.host.name, status: w.state });
        return;
      }
      w.conn = ready.conn;
      w.facts = ready.facts;
      const r = await runHostStage({ ...opts(w), observer: ready.observer });
      for (const res of r.results) ctx.record(res);
      w.state = r.status;
      w.registered = r.registered;
      w.observer = r.observer;
      w.changed = r.changed;
      w.rebootReasons = r.rebootReasons;
      if (w.state !== 'ok') ctx.bus.emit({ type: 'host-end', stage: stage.name, host: w.host.name, status: w.state });
    },
    ctx.settings.signal,
  );

  // 2. Reboots, coordinated across the batch (cluster quorum, guests, timeouts).
  const pending = new Map<string, string>();
  const reboot = async (cands: RebootCandidate[]): Promise<void> => {
    if (!cands.length) return;
    const outcomes = await coordinateReboots(cands, {
      stage,
      noReboot: ctx.settings.noReboot,
      check: ctx.settings.check,
      bus: ctx.bus,
      probe: (conn) => ctx.probe(conn),
      signal: ctx.settings.signal,
      haltedClusters: ctx.haltedClusters,
    });
    for (const [name, o] of outcomes) {
      const w = work.get(name)!;
      if (o.stoppedGuests?.length) {
        // Ctrl-C after the guests were shut down: the report names them and how to start them.
        const { msg, hint } = stoppedGuestsText(name, o.stoppedGuests);
        emitAll(ctx, [stageFailure(stage, name, 'start guests again', msg, hint)]);
      }
      if (o.status === 'rebooted') {
        w.facts = o.facts;
        w.rebooted = true;
        ctx.markRebooted(name);
      } else if (o.status === 'pending') {
        pending.set(name, o.reason);
        ctx.markRebootPending(name);
        ctx.bus.emit({ type: 'reboot-pending', stage: stage.name, host: name, reason: o.reason });
      } else {
        w.state = 'failed';
        emitAll(ctx, [stageFailure(stage, name, 'reboot', o.msg, o.hint)]);
        ctx.bus.emit({ type: 'reboot-failed', stage: stage.name, host: name, msg: o.msg });
        ctx.bus.emit({ type: 'host-end', stage: stage.name, host: name, status: 'failed' });
      }
    }
  };
  const candidate = (w: HostWork, reasons: string[]): RebootCandidate => ({
    host: w.host.name,
    conn: w.conn!,
    facts: w.facts!,
    reasons: [...new Set(reasons)],
  });
  const wanted = [...work.values()].filter(
    (w) => w.state === 'ok' && w.conn && w.facts && (stage.reboot === 'always' || w.rebootReasons.length > 0),
  );
  // A failure policy that trips here stops the run before anything else is rebooted.
  const failedNow = [...work.values()].filter((w) => w.state !== 'ok').length;
  const stop = policyStop(batch.length, failedNow, stage.maxFailPercentage, stage.anyErrorsFatal);
  if (stop) {
    for (const w of wanted) {
      pending.set(w.host.name, `not rebooted: ${stop}`);
      ctx.markRebootPending(w.host.name);
      ctx.bus.emit({ type: 'reboot-pending', stage: stage.name, host: w.host.name, reason: `not rebooted: ${stop}` });
    }
  } else {
    await reboot(wanted.map((w) => candidate(w, w.rebootReasons.length ? w.rebootReasons : ['reboot: always'])));
  }

  // 3. Gates on the booted kernel (fresh facts when something changed without a reboot).
  const verify = async (hosts: HostWork[], final: boolean): Promise<HostWork[]> => {
    const notBooted: HostWork[] = [];
    await forEachLimit(
      hosts.filter((w) => w.state === 'ok' && w.conn),
      ctx.settings.forks,
      async (w) => {
        try {
          // Also when the reboot is pending: the gates then say "configured but not booted"
          // from what the host is configured with now, not from the facts read before the run.
          if (w.changed > 0 && !ctx.settings.check && !w.rebooted) {
            w.facts = await ctx.probe(w.conn!);
          }
        } catch (e) {
          w.state = 'unreachable';
          emitAll(ctx, [stageFailure(stage, w.host.name, 'gather facts', `could not read facts again: ${(e as Error).message}`, undefined, 'unreachable')]);
          ctx.bus.emit({ type: 'host-end', stage: stage.name, host: w.host.name, status: w.state });
          return;
        }
        const reason = pending.get(w.host.name) ?? (ctx.settings.check && w.changed > 0 ? 'check mode: changes not applied' : null);
        // A no-op host (nothing changed, planned or run, not rebooted): the gates read what the
        // tasks read, from the same batch, instead of reading the host again.
        const reuse = w.changed === 0 && !w.rebooted && w.observer?.untouched() ? w.observer : undefined;
        const g = await runHostGates({ ...opts(w), facts: w.facts! }, w.registered, reason, reuse);
        // A gate found configuration that was applied (maybe in an earlier run) but not booted:
        // that is a reboot the host still needs. Reboot it, then verify again.
        const bootable = !ctx.settings.check && !ctx.settings.noReboot && !stop && stage.reboot !== 'never' && !w.rebooted;
        if (!final && g.pending && !reason && bootable && g.status === 'ok') {
          w.rebootReasons = [`configured but not booted yet (gate: ${g.results.find((r) => r.status === 'pending')?.task ?? '?'})`];
          notBooted.push(w);
          return;
        }
        emitAll(ctx, g.results);
        if (g.pending && !pending.has(w.host.name)) ctx.markRebootPending(w.host.name);
        w.state = g.status;
        ctx.bus.emit({ type: 'host-end', stage: stage.name, host: w.host.name, status: w.state });
      },
      ctx.settings.signal,
    );
    return notBooted;
  };
  const notBooted = await verify([...work.values()], false);
  if (notBooted.length) {
    await reboot(notBooted.map((w) => candidate(w, w.rebootReasons)));
    await verify(notBooted, true);
  }

  return { states: new Map([...work.entries()].map(([n, w]) => [n, w.state])), stop };
}

/** Record results and tell the reporters, in that order. */
function emitAll(ctx: RunContext, results: TaskResult[]): void {
  for (const r of results) {
    ctx.record(r);
    ctx.bus.emit({ type: 'task-result', result: r });
  }
}

function stageFailure(
  stage: Stage,
  host: string,
  task: string,
  msg: string,
  hint?: string,
  status: TaskResult['status'] = 'failed',
): TaskResult {
  return {
    host,
    stage: stage.name,
    role: '',
    task,
    kind: 'task',
    status,
    changed: false,
    diff: [],
    msg,
    hint,
    durationMs: 0,
  };
}
