/**
 * The reads a stage will need on a host, worked out before its facts so that they ride along
 * with the facts probe (one exec for both): see speculativeReads below.
 */
import type { Host, Stage, Vars } from '../model/types.ts';
import type { Module, Read } from '../modules/contract.ts';
import { readKey } from '../modules/observer.ts';
import { evaluate, render, truthy } from '../template/index.ts';
import { checkArgs } from '../spec/check.ts';
import { withoutStacks } from '../model/errors.ts';
import type { Facts } from '../facts/types.ts';
import { parseProbe, PROBE_COMMANDS } from '../facts/probe.ts';
import type { ArgumentSpec, OptionSpec } from '../spec/types.ts';
import type { RunSettings } from './settings.ts';
import { perReference, selectedSteps, type Step } from './steps.ts';
import { taskVars } from './vars.ts';
import { pendingHandlersPath } from './pending-handlers.ts';

/**
 * The reads a stage will need on a host, known before its facts: they ride along with the facts
 * probe (one exec for both). Each task's and gate's arguments are rendered without facts and
 * without registered results; an argument that does not render (it depends on them) gets a
 * placeholder, twice with different values, and only the reads that come out the same both times
 * are kept (they do not depend on it). A module whose reads depend on facts (kernel_cmdline's
 * bootloader) is asked once per candidate bootloader: the few candidate files are read, and the
 * wrong ones cost only their bytes. What this misses is read after the probe, as before.
 */
export function speculativeReads(o: RunSettings & { stage: Stage; host: Host }): Read[] {
  return withoutStacks(() => readsAhead(o));
}

function readsAhead(o: RunSettings & { stage: Stage; host: Host }): Read[] {
  const steps = [...selectedSteps(o.playbook, o.stage, 'tasks', o), ...selectedSteps(o.playbook, o.stage, 'gates', o)];
  const reads = new Map<string, Read>();
  const add = (r: Read) => reads.set(readKey(r), r);
  add({ kind: 'file', path: pendingHandlersPath(o.host) });
  // Without facts or results, a task's variables are its role reference's.
  const varsOf = perReference((step) =>
    taskVars({ role: step.role, ref: step.ref, stage: o.stage, host: o.host, inventory: o.inventory, facts: null, registered: {}, extra: o.extraVars, check: o.check }),
  );
  for (const { step, mod, vars } of readingSteps(steps, o.modules, varsOf)) {
    try {
      const rendered: Record<string, unknown> = {};
      const open: string[] = [];
      for (const [k, v] of Object.entries(step.task.args)) {
        try {
          rendered[k] = render(v, vars, step.task.pos);
        } catch {
          open.push(k);
        }
      }
      const variant = (which: 0 | 1): Map<string, Read> => {
        const args = { ...rendered };
        for (const k of open) args[k] = placeholder(optionOf(mod.spec, k), which);
        const checked = checkArgs(mod.spec, args, { pos: step.task.pos, module: mod.name });
        const out = new Map<string, Read>();
        for (const facts of CANDIDATE_FACTS) for (const r of mod.reads(checked, facts, vars)) out.set(readKey(r), r);
        return out;
      };
      const a = variant(0);
      const b = open.length ? variant(1) : a;
      // A dict placeholder is the same both times: what depends on it is not told apart, so
      // only reads of paths (never a command) are kept then.
      const pathsOnly = open.some((k) => (optionOf(mod.spec, k)?.type ?? 'dict') === 'dict');
      for (const [key, r] of a) if (b.has(key) && !(pathsOnly && r.kind === 'cmd')) add(r);
    } catch {
      // Arguments that cannot be checked without facts or results: read after the probe.
    }
  }
  // What the probe runs itself (dpkg-query) is not read twice: its answer is the read (probeCommandResults).
  return [...reads.values()].filter((r) => !(r.kind === 'cmd' && PROBE_COMMANDS.includes(r.command)));
}

/** Facts that differ only where a module's reads() looks at them: one per bootloader. */
const CANDIDATE_FACTS: Facts[] = (['grub-bios', 'grub-uefi', 'systemd-boot', 'unknown'] as const).map((bootloader) => ({ ...parseProbe(''), bootloader }));

function optionOf(spec: ArgumentSpec, key: string): OptionSpec | undefined {
  return spec.options[key] ?? Object.values(spec.options).find((o) => o.aliases?.includes(key));
}

/** A value of the option's type that stands for one not known yet; `which` gives a second, different one. */
function placeholder(opt: OptionSpec | undefined, which: 0 | 1): unknown {
  if (opt?.choices?.length) return opt.choices[Math.min(which, opt.choices.length - 1)];
  const word = `passthru-speculative-${which}`;
  const of = (type: OptionSpec['type'] | undefined): unknown => {
    switch (type) {
      case 'int':
      case 'float':
        return which + 1;
      case 'bool':
        return which === 1;
      case 'dict':
        return {};
      case 'path':
        return `/${word}`;
      case 'list':
        return [of(opt?.elements === 'list' ? 'str' : (opt?.elements ?? 'str'))];
      default:
        return word;
    }
  };
  return of(opt?.type);
}

/**
 * The steps whose module reads the host, each with its module and variables, but those whose
 * `when:` is already false from the variables (nothing of them is read) and those whose variables
 * cannot be made yet (read when they run).
 */
export function* readingSteps(
  steps: Step[],
  modules: RunSettings['modules'],
  varsOf: (step: Step) => Vars,
): Generator<{ step: Step; mod: Module & { reads: NonNullable<Module['reads']> }; vars: Vars }> {
  for (const step of steps) {
    const mod = modules.get(step.task.module);
    if (!mod?.reads) continue;
    let vars: Vars;
    try {
      vars = varsOf(step);
    } catch {
      continue;
    }
    if (step.task.when !== undefined && whenFalse(step.task.when, vars, step.task.pos)) continue;
    yield { step, mod: mod as Module & { reads: NonNullable<Module['reads']> }, vars };
  }
}

/**
 * A `when:` that is already false from what is known (before the facts: the host's variables
 * alone, e.g. `passthrough != 'absent'` on a host that undoes): the task will be skipped, so
 * nothing of it is read. A condition that needs what is not known yet does not evaluate, and the
 * task's reads are read as usual. A wrong guess either way costs only time: what is not read
 * ahead is read when the task runs.
 */
export function whenFalse(when: string, vars: Parameters<typeof evaluate>[1], pos: Parameters<typeof evaluate>[2]): boolean {
  try {
    return !truthy(evaluate(when, vars, pos));
  } catch {
    return false;
  }
}
