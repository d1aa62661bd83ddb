/**
 * passthrough_check: the preflight checks (before anything changes) and the gates (after the
 * reboot, on the booted kernel) of GPU passthrough. Read-only: it judges the host's facts and
 * variables (`passthrough_slots`, `vfio_ids`, `acs_override`, `vendor_reset`, `hugepages`, …),
 * and passes with what it proved (`noop`, its data registered for the role's later tasks) or
 * fails with "expected …, found …" and the likely cause and fix.
 */
import type { Facts } from '../facts/types.ts';
import { assignablePlan } from '../passthrough/assignable.ts';
import { passthroughConfig } from '../passthrough/config.ts';
import { CHECK_NAMES, CHECKS_BY_NAME, checkFor, type CheckInput, type CheckName, type CheckResult } from '../passthrough/gates/index.ts';
import type { PassthroughVars } from '../passthrough/vars.ts';
import { DEBIAN_SOURCES, SOURCES_LIST } from '../passthrough/apt-sources.ts';
import { NVIDIA_SMI_QUERY } from '../passthrough/gates/nvidia-driver.ts';
import { SRIOV_UNIT_READ } from '../passthrough/sriov.ts';
import type { Module, Plan, PlanContext, Read } from './contract.ts';

/** Files preflight-nvidia-driver reads: the distribution and the APT sources that may hold the Debian archive. */
const NVIDIA_DRIVER_FILES = ['/etc/os-release', SOURCES_LIST, DEBIAN_SOURCES];


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

/**
 * gate-assignable: the VFIO probe's command for this host, or null when it is not to run (an undo,
 * the IOMMU off, or the facts already show the devices cannot be assigned: the gate says why).
 */
export function assignableCommand(facts: Facts, vars: PassthroughVars & Record<string, unknown>): string | null {
  if (vars.passthrough === 'absent' || !facts.iommu.active) return null;
  const p = passthroughConfig(facts, vars);
  return p.devices.length ? assignablePlan(facts, p).command : null;
}

/** Run the named check (src/passthrough/gates) on the host's facts and variables. */
export function runCheck(
  args: PassthroughCheckArgs,
  facts: Facts,
  vars: PassthroughVars & Record<string, unknown>,
  extra: Pick<CheckInput, 'nvidiaSmi' | 'nvidiaCtk' | 'nvidiaSmiQuery' | 'osRelease' | 'aptSources' | 'sriovUnit' | 'vfioProbe'> = {},
): Plan {
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
    'binding, blacklist, vendor-reset, hugepages, the container toolkit and, in a guest, the NVIDIA driver (nvidia-smi); when asked, that the chosen devices can be assigned (gate-assignable: ' +
    'the VFIO sequence a VM start runs, probed on the host with perl). Passes with what it proved (registered as data), fails with ' +
    '"expected …, found …" and a hint.',
  spec: {
    options: {
      check: { type: 'str', required: true, choices: CHECKS, description: 'Which check to run.' },
      params: { type: 'list', elements: 'str', default: [], description: 'gate-cmdline: parameters that must be on /proc/cmdline.' },
    },
  },
  reads(args, facts, vars): Read[] {
    if (args.check === 'gate-assignable') {
      const command = vars ? assignableCommand(facts, vars as PassthroughVars & Record<string, unknown>) : null;
      return command ? [{ kind: 'cmd', command }] : [];
    }
    if (args.check === 'gate-container-toolkit') {
      return [
        { kind: 'cmd', command: 'nvidia-smi -L' },
        { kind: 'cmd', command: 'nvidia-ctk --version' },
      ];
    }
    if (args.check === 'preflight-nvidia-driver') return NVIDIA_DRIVER_FILES.map((path) => ({ kind: 'file', path }));
    if (args.check === 'gate-nvidia-driver') return [{ kind: 'cmd', command: NVIDIA_SMI_QUERY }];
    if (args.check === 'gate-sriov') return [{ kind: 'cmd', command: SRIOV_UNIT_READ }];
    return [];
  },
  async plan(args, ctx) {
    const vars = pvars(ctx) as PassthroughVars & Record<string, unknown>;
    let extra: Parameters<typeof runCheck>[3] = {};
    if (args.check === 'gate-container-toolkit') {
      extra = { nvidiaSmi: await ctx.observe.cmd('nvidia-smi -L'), nvidiaCtk: await ctx.observe.cmd('nvidia-ctk --version') };
    } else if (args.check === 'preflight-nvidia-driver') {
      const files = await Promise.all(NVIDIA_DRIVER_FILES.map(async (p) => [p, await ctx.observe.file(p)] as const));
      const text = (p: string) => {
        const f = files.find(([x]) => x === p)![1];
        return f.exists && !f.isDir ? f.content : null;
      };
      extra = { osRelease: text('/etc/os-release'), aptSources: { [SOURCES_LIST]: text(SOURCES_LIST), [DEBIAN_SOURCES]: text(DEBIAN_SOURCES) } };
    } else if (args.check === 'gate-nvidia-driver') {
      extra = { nvidiaSmiQuery: await ctx.observe.cmd(NVIDIA_SMI_QUERY) };
    } else if (args.check === 'gate-sriov') {
      extra = { sriovUnit: await ctx.observe.cmd(SRIOV_UNIT_READ) };
    } else if (args.check === 'gate-assignable') {
      const command = assignableCommand(ctx.facts, vars);
      if (command) extra = { vfioProbe: await ctx.observe.cmd(command) };
    }
    return runCheck(args, ctx.facts, vars, extra);
  },
};
