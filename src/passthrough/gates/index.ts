/**
 * Every check by name: the preflights (before anything changes) and the gates (after the
 * reboot). `passthrough_check` dispatches through this map, so its `check:` choices are the keys
 * in this order.
 */
import { gateAssignable, gateBlacklist, gateCmdline, gateContainerToolkit, gateHugepages, gateIommu, gateIommuCmdline, gateIsolation, gateUndoneCmdline, gateUndoneDrivers, gateVendorReset, gateVfio } from './booted.ts';
import { pass, type Check } from './check.ts';
import { gateIgpuLxc, preflightIgpuHost } from './guest.ts';
import {
  preflightAcs,
  preflightBootloader,
  preflightContainerToolkit,
  preflightCpu,
  preflightDevices,
  preflightHugepages,
  preflightIsolation,
  preflightVendorReset,
} from './preflight.ts';
import { gateSriov, preflightSriov } from './sriov.ts';
import { gateNvidiaDriver, preflightNvidiaDriver } from './nvidia-driver.ts';

export const CHECKS_BY_NAME = {
  'preflight-cpu': preflightCpu,
  'preflight-bootloader': preflightBootloader,
  'preflight-devices': preflightDevices,
  'preflight-isolation': preflightIsolation,
  'preflight-acs': preflightAcs,
  'preflight-vendor-reset': preflightVendorReset,
  'preflight-hugepages': preflightHugepages,
  'preflight-container-toolkit': preflightContainerToolkit,
  'preflight-sriov': preflightSriov,
  'preflight-igpu-host': preflightIgpuHost,
  'preflight-nvidia-driver': preflightNvidiaDriver,
  'gate-cmdline': gateCmdline,
  'gate-iommu-cmdline': gateIommuCmdline,
  'gate-iommu': gateIommu,
  'gate-isolation': gateIsolation,
  'gate-vfio': gateVfio,
  'gate-assignable': gateAssignable,
  'gate-blacklist': gateBlacklist,
  'gate-vendor-reset': gateVendorReset,
  'gate-hugepages': gateHugepages,
  'gate-container-toolkit': gateContainerToolkit,
  'gate-sriov': gateSriov,
  'gate-nvidia-driver': gateNvidiaDriver,
  'gate-undone-cmdline': gateUndoneCmdline,
  'gate-undone-drivers': gateUndoneDrivers,
  'gate-igpu-lxc': gateIgpuLxc,
} as const satisfies Record<string, Check>;

export type CheckName = keyof typeof CHECKS_BY_NAME;

/**
 * What each gate proves: the configuration (`configure`), its undo (`undo`, with `passthrough:
 * absent`), or a guest's state that the undo leaves alone (`any`). A complete record, so a new gate
 * cannot be added without saying which.
 */
const GATE_MODE: Record<Extract<CheckName, `gate-${string}`>, 'configure' | 'undo' | 'any'> = {
  'gate-cmdline': 'configure',
  'gate-iommu-cmdline': 'configure',
  'gate-iommu': 'configure',
  'gate-isolation': 'configure',
  'gate-vfio': 'configure',
  'gate-assignable': 'configure',
  'gate-blacklist': 'configure',
  'gate-vendor-reset': 'configure',
  'gate-hugepages': 'configure',
  'gate-container-toolkit': 'any',
  'gate-sriov': 'configure',
  'gate-nvidia-driver': 'any',
  'gate-undone-cmdline': 'undo',
  'gate-undone-drivers': 'undo',
  'gate-igpu-lxc': 'any',
};

/**
 * The check to run for a host in its mode: every gate runs whatever the mode (a gate is a proof,
 * never skipped), but proves only what that mode did. With `passthrough: absent` the configure
 * gates pass with that reason and the undo gates prove the undo; otherwise the undo gates pass
 * with theirs. Preflights run as they are (their tasks carry the mode's `when:`).
 */
export function checkFor(name: CheckName): Check {
  const mode = (GATE_MODE as Record<string, 'configure' | 'undo' | 'any' | undefined>)[name] ?? 'any';
  return (input) => {
    const undoing = input.vars.passthrough === 'absent';
    if (mode === 'undo' && !undoing) return pass('passthrough is not absent: nothing of it was undone');
    if (mode === 'configure' && undoing) return pass('passthrough: absent: this setting is being taken back, not proven');
    return CHECKS_BY_NAME[name](input);
  };
}

/** The check names, preflights first, in the order above. */
export const CHECK_NAMES = Object.keys(CHECKS_BY_NAME) as CheckName[];

export * from './booted.ts';
export * from './check.ts';
export * from './nvidia-driver.ts';
export * from './preflight.ts';
export * from './sriov.ts';
export * from './guest.ts';
