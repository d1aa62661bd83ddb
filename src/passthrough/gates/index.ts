/**
 * Every check by name: the preflights (before anything changes) and the gates (after the
 * reboot). `passthrough_check` dispatches through this map, so its `check:` choices are the keys
 * in this order.
 */
import { gateBlacklist, gateCmdline, gateContainerToolkit, gateHugepages, gateIommu, gateIommuCmdline, gateIsolation, gateUndoneCmdline, gateUndoneDrivers, gateVendorReset, gateVfio } from './booted.ts';
import { pass, type Check } from './check.ts';
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

export const CHECKS_BY_NAME = {
  'preflight-cpu': preflightCpu,
  'preflight-bootloader': preflightBootloader,
  'preflight-devices': preflightDevices,
  'preflight-isolation': preflightIsolation,
  'preflight-acs': preflightAcs,
  'preflight-vendor-reset': preflightVendorReset,
  'preflight-hugepages': preflightHugepages,
  'preflight-container-toolkit': preflightContainerToolkit,
  'gate-cmdline': gateCmdline,
  'gate-iommu-cmdline': gateIommuCmdline,
  'gate-iommu': gateIommu,
  'gate-isolation': gateIsolation,
  'gate-vfio': gateVfio,
  'gate-blacklist': gateBlacklist,
  'gate-vendor-reset': gateVendorReset,
  'gate-hugepages': gateHugepages,
  'gate-container-toolkit': gateContainerToolkit,
  'gate-undone-cmdline': gateUndoneCmdline,
  'gate-undone-drivers': gateUndoneDrivers,
} as const satisfies Record<string, Check>;

export type CheckName = keyof typeof CHECKS_BY_NAME;

/**
 * The check to run for a host in its mode: every gate runs whatever the mode (a gate is a proof,
 * never skipped), but proves only what that mode did. With `passthrough: absent` the configure
 * gates pass with that reason and the undo gates (`gate-undone-*`) prove the undo; otherwise the
 * undo gates pass with theirs.
 */
export function checkFor(name: CheckName): Check {
  const undoGate = name.startsWith('gate-undone-');
  const configureGate = name.startsWith('gate-') && !undoGate && name !== 'gate-container-toolkit';
  return (input) => {
    const undoing = input.vars.passthrough === 'absent';
    if (undoGate && !undoing) return pass('passthrough is not absent: nothing of it was undone');
    if (configureGate && undoing) return pass('passthrough: absent: this setting is being taken back, not proven');
    return CHECKS_BY_NAME[name](input);
  };
}

/** The check names, preflights first, in the order above. */
export const CHECK_NAMES = Object.keys(CHECKS_BY_NAME) as CheckName[];

export * from './booted.ts';
export * from './check.ts';
export * from './preflight.ts';
