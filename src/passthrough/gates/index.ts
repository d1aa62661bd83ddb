/**
 * Every check by name: the preflights (before anything changes) and the gates (after the
 * reboot). `passthrough_check` dispatches through this map, so its `check:` choices are the keys
 * in this order.
 */
import { gateBlacklist, gateCmdline, gateContainerToolkit, gateHugepages, gateIommu, gateIommuCmdline, gateIsolation, gateUndoneCmdline, gateUndoneDrivers, gateVendorReset, gateVfio } from './booted.ts';
import type { Check } from './check.ts';
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

/** The check names, preflights first, in the order above. */
export const CHECK_NAMES = Object.keys(CHECKS_BY_NAME) as CheckName[];

export * from './booted.ts';
export * from './check.ts';
export * from './preflight.ts';
