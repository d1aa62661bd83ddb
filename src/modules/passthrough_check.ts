/**
 * passthrough_check: the preflight checks (before anything changes) and the gates (after the
 * reboot, on the booted kernel) of GPU passthrough. Read-only: it judges the host's facts and
 * variables (`passthrough_slots`, `vfio_ids`, `acs_override`, `vendor_reset`, `hugepages`, …),
 * and passes with what it proved (`noop`, its data registered for the role's later tasks) or
 * fails with "expected …, found …" and the likely cause and fix.
 */
import type { Facts } from '../facts/types.ts';
import { CHECK_NAMES, CHECKS_BY_NAME, checkFor, type CheckInput, type CheckName, type CheckResult } from '../passthrough/gates/index.ts';
import type { PassthroughVars } from '../passthrough/vars.ts';
import type { Module, Plan, PlanContext } from './contract.ts';
import { SRIOV_UNIT_PATH } from '../passthrough/sriov.ts';

/** gate-sriov reads the unit on the host: a count the unit asks for but the kernel lacks is a reboot pending. */
const SRIOV_UNIT_CAT = `cat ${SRIOV_UNIT_PATH}`;

export { iommuParams } from '../passthrough/kernel.ts';
export type { CheckName } from '../passthrough/gates/index.ts';

/** Every check, preflights first (src/passthrough/gates: one named function each). */
export const CHECKS = CHECK_NAMES;

export interface PassthroughCheckArgs {
  check: CheckName;
  /** gate-cmdline: parameters that must be on the running kernel's command line. */
  params: string[];
}

function pvars(ctx: PlanContext): PassthroughVars {
  return ctx.vars as PassthroughVars;
}

/** A check's result as the module's plan: pass → noop (with its data), fail → fail. */
function toPlan(r: CheckResult): Plan {
  if (r.ok) return { kind: 'noop', reason: r.reason, data: r.data };
  return r.pending ? { kind: 'fail', msg: r.msg, hint: r.hint, data: r.data, pending: true } : { kind: 'fail', msg: r.msg, hint: r.hint, data: r.data };
}

/** Run the named check (src/passthrough/gates) on the host's facts and variables. */
export function runCheck(args: PassthroughCheckArgs, facts: Facts, vars: PassthroughVars & Record<string, unknown>, extra: Pick<CheckInput, 'nvidiaSmi' | 'nvidiaCtk' | 'sriovUnit'> = {}): Plan {
  const check = CHECKS_BY_NAME[args.check] ? checkFor(args.check) : undefined;
  if (!check) return { kind: 'fail', msg: `unknown check ${String(args.check)}`, hint: `one of: ${CHECKS.join(', ')}` };
  return toPlan(check({ facts, vars, params: args.params, ...extra }));
}

export const passthroughCheckModule: Module<PassthroughCheckArgs> = {
  name: 'passthrough_check',
  readOnly: true,
  doc:
    'GPU passthrough preflight checks (before changes) and gates (after the reboot): CPU, bootloader, chosen devices and the ids= capture of ' +
    'the boot display, IOMMU group isolation and ACS override, vendor-reset, hugepages fit; then the booted command line, IOMMU, vfio-pci ' +
    'binding, blacklist, vendor-reset, hugepages and the container toolkit. Passes with what it proved (registered as data), fails with ' +
    '"expected …, found …" and a hint.',
  spec: {
    options: {
      check: { type: 'str', required: true, choices: CHECKS, description: 'Which check to run.' },
      params: { type: 'list', elements: 'str', default: [], description: 'gate-cmdline: parameters that must be on /proc/cmdline.' },
    },
  },
  reads(args) {
    if (args.check === 'gate-sriov') return [{ kind: 'cmd', command: SRIOV_UNIT_CAT }];
    return args.check === 'gate-container-toolkit'
      ? [
          { kind: 'cmd', command: 'nvidia-smi -L' },
          { kind: 'cmd', command: 'nvidia-ctk --version' },
        ]
      : [];
  },
  async plan(args, ctx) {
    const extra =
      args.check === 'gate-container-toolkit'
        ? { nvidiaSmi: await ctx.observe.cmd('nvidia-smi -L'), nvidiaCtk: await ctx.observe.cmd('nvidia-ctk --version') }
        : args.check === 'gate-sriov'
          ? { sriovUnit: await ctx.observe.cmd(SRIOV_UNIT_CAT) }
          : {};
    return runCheck(args, ctx.facts, pvars(ctx) as PassthroughVars & Record<string, unknown>, extra);
  },
};
