/**
 * One host through one stage: the stage's tasks in order, then its notified handlers, or its
 * gates. Reads come from one batched prefetch (made along with the facts probe when the reads were
 * known before the facts: speculativeReads); each task plans against the Observer; changes
 * are applied unless in check mode; results go out as events.
 */
import type { TaskResult, Vars } from '../model/types.ts';
import { ConfigError, UnreachableError, withoutStacks } from '../model/errors.ts';
import { CommandError } from '../transport/connection.ts';
import type { Plan, Read } from '../modules/contract.ts';
import { HostObserver } from '../modules/observer.ts';
import { applyActions } from '../modules/apply.ts';
import { describeRun } from '../modules/command.ts';
import { evaluate, render, truthy } from '../template/index.ts';
import { checkArgs, checkRoleVars } from '../spec/check.ts';
import type { HostRunOptions } from './settings.ts';
import { taskVars } from './vars.ts';
import { handlerRuns, notifyTargets, stageHandlers } from './handlers.ts';
import { parsePendingHandlers, pendingHandlersPath, savePendingHandlers } from './pending-handlers.ts';

import { perReference, selectedSteps, type Step } from './steps.ts';

export type { HostRunOptions } from './settings.ts';
export { selectedSteps } from './steps.ts';
export { speculativeReads } from './speculative-reads.ts';
import { readingSteps } from './speculative-reads.ts';

export interface HostStageOutcome {
  status: 'ok' | 'failed' | 'unreachable';
  results: TaskResult[];
  rebootReasons: string[];
  changed: number;
  /** Registered variables, carried to the gates of the same stage. */
  registered: Vars;
  /**
   * What the stage read on the host, gates' reads included: the gates reuse it when nothing was
   * planned, run or rebooted on the host (a no-op), instead of reading the same files again.
   */
  observer: HostObserver;
}

export async function runHostStage(o: HostRunOptions): Promise<HostStageOutcome> {
  // Seeded by the facts probe when the stage's reads rode along with it (speculativeReads).
  const observer = o.observer ?? new HostObserver(o.conn, { timeoutMs: o.commandTimeoutMs });
  const out: HostStageOutcome = { status: 'ok', results: [], rebootReasons: [], changed: 0, registered: {}, observer };
  const steps = selectedSteps(o.playbook, o.stage, 'tasks', o);
  // The gates' reads ride along: on a no-op the gates then need no read of their own.
  const gateSteps = selectedSteps(o.playbook, o.stage, 'gates', o);
  const notified = new Set<string>();

  // Handlers notified by an earlier run that was stopped before they ran (see pending-handlers.ts).
  const stateFile = pendingHandlersPath(o.host);
  await prefetch(o, observer, [...steps, ...gateSteps], out.registered, [{ kind: 'file', path: stateFile }]);
  const handlers = stageHandlers(o.playbook, o.stage);
  const stageKeys = new Set(handlers.map((h) => h.key));
  let recorded: string[] = [];
  try {
    recorded = parsePendingHandlers((await observer.file(stateFile)).content);
  } catch {
    // unreadable state: nothing recorded
  }
  const carried = recorded.filter((k) => !stageKeys.has(k)); // other stages' handlers stay recorded
  for (const k of recorded) if (stageKeys.has(k)) notified.add(k);
  let saved = recorded.length;

  for (const step of steps) {
    if (o.signal?.aborted) break;
    const r = await runStep(o, observer, step, out.registered);
    out.results.push(r.result);
    if (r.result.status === 'changed') {
      out.changed++;
      const before = notified.size;
      for (const n of step.task.notify) for (const k of notifyTargets(handlers, step.task.role, n)) notified.add(k);
      out.rebootReasons.push(...r.rebootReasons);
      if (!o.check && notified.size > before) {
        try {
          await savePendingHandlers(o.conn, stateFile, [...carried, ...notified]);
          saved = carried.length + notified.size;
        } catch {
          // best effort: the handlers still run at the end of this stage
        }
      }
    }
    if (r.result.status === 'failed' || r.result.status === 'unreachable') {
      out.status = r.result.status;
      break;
    }
  }
  // Unreachable: nothing more can run. Failed: the handlers already notified still run (as with
  // Ansible's force_handlers), so a file written before the failure is also applied (update-grub,
  // update-initramfs) and a rerun does not find it written but never applied. Ctrl-C: nothing new.
  if (out.status === 'unreachable' || o.signal?.aborted) return out;

  // Handlers: once per host, in definition order; `listen` shares one across roles (handlers.ts).
  for (const h of handlerRuns(handlers, notified)) {
    if (o.signal?.aborted) break;
    if (h.ranFor !== undefined) {
      const result: TaskResult = {
        host: o.host.name, stage: o.stage.name, role: h.role.name, task: h.handler.name, kind: 'handler',
        status: 'ok', changed: false, diff: [], msg: `the same handler already ran for ${h.ranFor} (listen: ${h.handler.listen!.join(', ')})`, durationMs: 0,
      };
      o.bus.emit({ type: 'task-result', result });
      out.results.push(result);
      continue;
    }
    const r = await runStep(o, observer, { task: h.handler, role: h.role, ref: h.ref, kind: 'handler' }, out.registered);
    out.results.push(r.result);
    if (r.result.status === 'changed') {
      out.changed++;
      out.rebootReasons.push(...r.rebootReasons);
    }
    if (r.result.status === 'failed' || r.result.status === 'unreachable') {
      out.status = r.result.status;
      return out; // the record stays: the next run runs these handlers again
    }
  }
  if (saved > 0 && !o.check && !o.signal?.aborted) {
    try {
      await savePendingHandlers(o.conn, stateFile, carried);
    } catch {
      // the handlers ran; a stale record only makes the next run run them once more
    }
  }
  return out;
}

/**
 * Gates: read-only checks on the (re)booted host. When the host still has a reboot pending
 * (`pendingReason`: --no-reboot, guests under `refuse`, check mode with changes), or a gate
 * itself finds configuration not yet booted, the failed gates are reported as `pending`.
 * Results are returned, not emitted: the stage decides whether they are final (a host whose
 * configuration is not booted yet is rebooted and verified again) and then emits them.
 */
export async function runHostGates(
  o: HostRunOptions,
  registered: Vars,
  pendingReason: string | null,
  /** The tasks' observer, when nothing was planned, run or rebooted on the host since it read. */
  reuse?: HostObserver,
): Promise<{ status: 'ok' | 'failed' | 'unreachable'; results: TaskResult[]; pending: string | null }> {
  const observer = reuse ?? new HostObserver(o.conn, { timeoutMs: o.commandTimeoutMs });
  const steps = selectedSteps(o.playbook, o.stage, 'gates', o);
  const results: TaskResult[] = [];
  await prefetch(o, observer, steps, registered);
  let pending = pendingReason;
  for (const step of steps) {
    if (o.signal?.aborted) break;
    const r = await runStep(o, observer, step, registered, { emit: false });
    if (r.pendingBoot && !pending) pending = 'configured but not booted yet';
    results.push(r.result);
    if (r.result.status === 'unreachable') break;
  }
  let status: 'ok' | 'failed' | 'unreachable' = 'ok';
  for (const res of results) {
    if (res.status === 'failed' && pending) {
      res.status = 'pending';
      res.msg = `${res.msg} (pending: ${pending})`;
    }
    if (res.status === 'failed' && status === 'ok') status = 'failed';
    if (res.status === 'unreachable') status = 'unreachable';
  }
  return { status, results, pending };
}

/** One batched read for every task whose arguments can be rendered before the run. */
async function prefetch(o: HostRunOptions, observer: HostObserver, steps: Step[], registered: Vars, extra: Read[] = []): Promise<void> {
  const reads: Read[] = [...extra];
  // Nothing is registered while this runs: a task's variables are its role reference's.
  const varsOf = perReference((step) => varsFor(o, step, registered));
  // Arguments that do not render yet raise errors that are dropped: no stacks for them.
  withoutStacks(() => {
    for (const { step, mod, vars } of readingSteps(steps, o.modules, varsOf)) {
      try {
        const args = checkArgs(mod.spec, render(step.task.args, vars, step.task.pos) as Record<string, unknown>, {
          pos: step.task.pos,
          module: mod.name,
        });
        reads.push(...mod.reads(args, o.facts, vars));
      } catch {
        // Depends on a result registered later: read lazily when the task runs.
      }
    }
  });
  if (reads.length) {
    try {
      await observer.prefetch(reads);
    } catch {
      // A failed prefetch is retried lazily per task, where the error gets its task's name.
    }
  }
}

/** The values of a role's variables last found good, per host run and role. */
const checkedVars = new WeakMap<HostRunOptions, Map<object, unknown[]>>();

/**
 * checkRoleVars, skipped when the role's variables hold the very values found good for an earlier
 * task of the role on this host (most do: only a template or a registered result can change one).
 */
function checkRoleVarsOnce(o: HostRunOptions, spec: Parameters<typeof checkRoleVars>[0], vars: Vars): void {
  const values = Object.keys(spec.options).map((n) => vars[n]);
  let seen = checkedVars.get(o);
  if (!seen) checkedVars.set(o, (seen = new Map()));
  const good = seen.get(spec);
  if (good && good.every((v, i) => Object.is(v, values[i]))) return;
  checkRoleVars(spec, vars);
  seen.set(spec, values);
}

function varsFor(o: HostRunOptions, step: Step, registered: Vars): Vars {
  return taskVars({
    role: step.role,
    ref: step.ref,
    stage: o.stage,
    host: o.host,
    inventory: o.inventory,
    facts: o.facts,
    registered,
    extra: o.extraVars,
    check: o.check,
  });
}

async function runStep(
  o: HostRunOptions,
  observer: HostObserver,
  step: Step,
  registered: Vars,
  opts: { emit: boolean } = { emit: true },
): Promise<{ result: TaskResult; rebootReasons: string[]; pendingBoot?: boolean }> {
  const { task } = step;
  const started = Date.now();
  const base = {
    host: o.host.name,
    stage: o.stage.name,
    role: task.role,
    task: task.name,
    kind: step.kind,
  };
  o.bus.emit({ type: 'task-start', stage: o.stage.name, host: o.host.name, role: task.role, task: task.name, kind: step.kind });
  type Outcome = Omit<TaskResult, keyof typeof base | 'durationMs'>;
  const finish = (r: Outcome, rebootReasons: string[] = [], data: unknown = null) => {
    const result: TaskResult = { ...base, ...r, durationMs: Date.now() - started };
    if (opts.emit) o.bus.emit({ type: 'task-result', result });
    if (task.register) {
      registered[task.register] = {
        changed: result.changed,
        failed: result.status === 'failed',
        skipped: result.status === 'skipped',
        msg: result.msg,
        data,
      };
    }
    return { result, rebootReasons };
  };

  let plan: Plan;
  try {
    const mod = o.modules.get(task.module);
    if (!mod) throw new ConfigError(`unknown module '${task.module}'`, task.pos);
    const vars = varsFor(o, step, registered);
    // values that were templates at load are checked here, rendered, by the same spec
    if (step.role?.argSpec) checkRoleVarsOnce(o, step.role.argSpec, vars);
    if (task.when !== undefined && !truthy(evaluate(task.when, vars, task.pos))) {
      return finish({ status: 'skipped', changed: false, diff: [], msg: `skipped: ${task.when} is false` });
    }
    const args = checkArgs(mod.spec, render(task.args, vars, task.pos) as Record<string, unknown>, {
      pos: task.pos,
      module: mod.name,
    });
    const invalid = mod.validate?.(args);
    if (invalid) throw new ConfigError(invalid, task.pos);
    plan = await mod.plan(args, { host: o.host.name, facts: o.facts, vars, observe: observer, check: o.check });
  } catch (e) {
    return finish(errorResult(e));
  }

  if (plan.kind === 'noop') {
    return finish({ status: 'ok', changed: false, diff: [], msg: plan.reason }, [], plan.data);
  }
  if (plan.kind === 'fail') {
    const failed = finish({ status: 'failed', changed: false, diff: [], msg: plan.msg, hint: plan.hint }, [], plan.data);
    return { ...failed, pendingBoot: plan.pending === true };
  }
  // Check mode: the plan is the answer. Otherwise apply exactly what the plan announced.
  let rebootReasons = plan.actions.flatMap((a) => (a.kind === 'request-reboot' ? [a.reason] : []));
  let msg = plan.msg;
  if (!o.check) {
    try {
      const applied = await applyActions(o.conn, plan.actions, { timeoutMs: o.commandTimeoutMs });
      rebootReasons = applied.rebootReasons;
      msg = describeRun(applied.execs) ?? msg;
      if (applied.backups.length) msg += ` (backup: ${applied.backups.join(', ')})`;
    } catch (e) {
      return finish(errorResult(e));
    }
  }
  observer.record(plan.actions);
  return finish({ status: 'changed', changed: true, diff: plan.diff, msg }, rebootReasons, plan.data);
}

function errorResult(e: unknown): Omit<TaskResult, 'host' | 'stage' | 'role' | 'task' | 'kind' | 'durationMs'> {
  if (e instanceof UnreachableError) {
    return { status: 'unreachable', changed: false, diff: [], msg: e.message, hint: e.hint };
  }
  if (e instanceof CommandError) {
    return {
      status: 'failed',
      changed: false,
      diff: [],
      msg: e.message,
      hint: 'the command failed on the host; its last output lines are above',
    };
  }
  if (e instanceof ConfigError) {
    const where = e.pos ? `${e.pos.file}:${e.pos.line}:${e.pos.col}: ` : '';
    return { status: 'failed', changed: false, diff: [], msg: `${where}${e.message}`, hint: e.hint };
  }
  const err = e as Error & { code?: string };
  if (isConnectionLoss(err)) {
    return {
      status: 'unreachable',
      changed: false,
      diff: [],
      msg: `connection lost: ${err.message}`,
      hint: 'the host went away mid-run; check it is up, then rerun it with --limit @<failed-hosts file>',
    };
  }
  return { status: 'failed', changed: false, diff: [], msg: err?.message ?? String(e) };
}

export function isConnectionLoss(e: Error & { code?: string; level?: string }): boolean {
  return (
    e?.level === 'client-socket' ||
    e?.level === 'client-timeout' ||
    ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(e?.code ?? '') ||
    /not connected|connection (lost|closed|reset)|No response from server|keepalive/i.test(e?.message ?? '')
  );
}
