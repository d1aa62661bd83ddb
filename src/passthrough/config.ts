/**
 * The passthrough configuration of one host: what to bind and how, which drivers to keep away,
 * isolation and ACS override, vendor-reset, the vfio modules, and the text of every file the
 * roles write. Pure: facts and host variables in, plain data out. The roles get it as the data
 * of the `preflight-devices` / `preflight-acs` / `preflight-vendor-reset` checks (`register:`);
 * the gates compute it again on the booted kernel and compare.
 */
import type { Facts } from '../facts/types.ts';
import { blacklistConfText, overrideScriptText, vfioConfText } from './config-text.ts';
import { keepDriversAway } from './drivers.ts';
import { acsDecision, groupIsolation, type AcsDecision, type GroupReport } from './isolation.ts';
import { vfioModules } from './kernel.ts';
import { chooseBinding, selectDevices, type SameIdDevice } from './selection.ts';
import type { PassthroughVars, Problem } from './vars.ts';
import { vendorResetConfig, type VendorResetConfig } from './vendor-reset.ts';

export interface ChosenDevice {
  address: string;
  id: string;
  class: string;
  name: string;
  driver: string | null;
  iommuGroup: number | null;
  bootVga: boolean;
}

export interface PassthroughConfig {
  devices: ChosenDevice[];
  /** Unique ids, in device order: what goes into `options vfio-pci ids=`. */
  ids: string[];
  /** Problems that stop the choice itself (nothing chosen, slot missing). */
  deviceProblems: Problem[];
  /** `ids=` would bind devices that were not chosen (the boot display above all) and ids binding was forced. */
  captureProblems: Problem[];
  /** How the chosen devices are bound: `ids=` or driver_override by address. */
  bind: 'ids' | 'address';
  bindReason: string;
  /** Devices not chosen that share an id with a chosen one: they must keep their own driver. */
  sameId: SameIdDevice[];
  /** initramfs-tools init-top script that sets driver_override (address binding), '' otherwise. */
  overrideScript: string;
  blacklist: string[];
  softdeps: string[];
  notes: string[];
  groups: GroupReport[];
  /** null when the IOMMU is not active yet (groups unknown). */
  isolated: boolean | null;
  acs: AcsDecision;
  vendorReset: VendorResetConfig;
  /** Modules for /etc/modules, and those that must not be listed on this kernel. */
  modules: string[];
  modulesAbsent: string[];
  vfioConf: string;
  blacklistConf: string;
}

/** Every variable the configuration is made from (the compiler keeps the list complete). */
const VAR_NAMES = Object.keys({
  passthrough_slots: 1,
  vfio_ids: 1,
  acs_override: 1,
  acs_override_supported: 1,
  vendor_reset: 1,
  blacklist_drivers: 1,
  vfio_disable_vga: 1,
  vfio_bind: 1,
  hugepages: 1,
  hugepages_max_share: 1,
} satisfies Record<keyof PassthroughVars, 1>) as Array<keyof PassthroughVars>;

/** Configurations made, by facts, then by the variables' values. */
const made = new WeakMap<Facts, Map<string, PassthroughConfig>>();

/**
 * Compute the passthrough configuration of a host from its facts and variables. Every preflight
 * and gate of a host asks for it, with the same facts and variables: it is made once for them
 * (a pure function of both), and frozen, since every caller shares it.
 */
export function passthroughConfig(facts: Facts, vars: PassthroughVars): PassthroughConfig {
  // undefined, NaN and ±Infinity kept apart from null (JSON would make them all null).
  const key = JSON.stringify(VAR_NAMES.map((k) => vars[k]), (_k, v: unknown) =>
    v === undefined ? '\0undefined' : typeof v === 'number' && !Number.isFinite(v) ? `\0${v}` : typeof v === 'string' ? `'${v}` : v,
  );
  let byVars = made.get(facts);
  if (!byVars) made.set(facts, (byVars = new Map()));
  let config = byVars.get(key);
  if (!config) byVars.set(key, (config = deepFreeze(makeConfig(facts, vars))));
  return config;
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

function makeConfig(facts: Facts, vars: PassthroughVars): PassthroughConfig {
  const sel = selectDevices(facts, vars);
  const binding = chooseBinding(facts, vars, sel);
  const bootNotes = sel.chosen.filter((d) => d.bootVga).map((d) => `${d.address} is the boot display: the host console goes with it`);
  const drivers = keepDriversAway(facts, vars, sel);
  const iso = groupIsolation(facts, sel);
  const { modules, modulesAbsent } = vfioModules(facts.kernelVersion);
  const disableVga = vars.vfio_disable_vga === undefined ? true : Boolean(vars.vfio_disable_vga);
  return {
    devices: sel.chosen.map((d) => ({
      address: d.address,
      id: d.id,
      class: d.class,
      name: d.name,
      driver: d.driver,
      iommuGroup: d.iommuGroup,
      bootVga: d.bootVga,
    })),
    ids: sel.ids,
    deviceProblems: [...sel.problems, ...binding.problems, ...drivers.problems],
    captureProblems: binding.captureProblems,
    bind: binding.bind,
    bindReason: binding.reason,
    sameId: binding.sameId,
    overrideScript: binding.bind === 'address' && sel.chosen.length > 0 ? overrideScriptText(sel.chosen) : '',
    blacklist: drivers.blacklist,
    softdeps: drivers.softdeps,
    notes: [...bootNotes, ...drivers.notes, ...iso.notes],
    groups: iso.groups,
    isolated: iso.isolated,
    acs: acsDecision(facts, vars, iso),
    vendorReset: vendorResetConfig(facts, vars, sel),
    modules,
    modulesAbsent,
    vfioConf: vfioConfText({ bind: binding.bind, ids: sel.ids, disableVga, softdeps: drivers.softdeps }),
    blacklistConf: blacklistConfText(drivers.blacklist),
  };
}
