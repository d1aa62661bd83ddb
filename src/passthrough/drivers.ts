/**
 * Which host drivers to keep away from the chosen devices: the display drivers of their vendor
 * (blacklisted unless a device that stays on the host uses them) and the drivers of the other
 * functions of a card (softdep only, never blacklisted).
 */
import type { Facts, PciDevice } from '../facts/types.ts';
import type { Selection } from './selection.ts';
import { asList, uniq, type PassthroughVars, type Problem } from './vars.ts';

/** Modules kept off by default, by PCI vendor, for display-class devices (class 03xx). */
export const DISPLAY_DRIVERS_BY_VENDOR: Record<string, string[]> = {
  '10de': ['nouveau', 'nvidia', 'nvidiafb', 'nvidia_drm'], // NVIDIA
  '1002': ['amdgpu', 'radeon'], // AMD/ATI
  '8086': ['i915', 'xe'], // Intel
  '1234': ['bochs'], // QEMU/Bochs display (lab stand-in)
  '1af4': ['virtio_gpu'],
  '1b36': ['qxl'],
};

/** Drivers of the other functions of a card: softdep only, never blacklisted (the host may need them). */
export function companionDrivers(d: Pick<PciDevice, 'vendor' | 'class'>): string[] {
  if (d.class === '0403') return ['snd_hda_intel']; // HD audio
  if (d.class === '0c03') return ['xhci_pci']; // USB controller (RTX 20xx USB-C)
  if (d.class === '0c80' && d.vendor === '10de') return ['i2c_nvidia_gpu']; // UCSI
  return [];
}

/** A kernel module name (MODULE_NAME_LEN is 56 with the NUL): nothing a modprobe.d line could misread. */
export const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,54}$/;

/** `snd-hda-intel` and `snd_hda_intel` are one module. */
export const modName = (s: string): string => s.replace(/-/g, '_');

export interface KeptAway {
  /** `blacklist NAME` lines: the chosen display devices' drivers that nothing left on the host uses. */
  blacklist: string[];
  /** `softdep NAME pre: vfio-pci` lines: every driver that could take a chosen device. */
  softdeps: string[];
  notes: string[];
  /** blacklist_drivers entries that are not module names. */
  problems: Problem[];
}

/** Drivers: blacklist display drivers by vendor, softdep all of them plus companions. */
export function keepDriversAway(facts: Facts, vars: PassthroughVars, { chosen, chosenAddrs }: Selection): KeptAway {
  const userBlacklist = vars.blacklist_drivers === null || vars.blacklist_drivers === undefined ? null : asList(vars.blacklist_drivers);
  // each name becomes a `blacklist NAME` line in modprobe.d: a module name by the kernel's rules, nothing else
  const problems: Problem[] = [];
  for (const m of userBlacklist ?? []) {
    if (!MODULE_NAME.test(m)) {
      problems.push({ msg: `expected kernel module names in blacklist_drivers, found ${JSON.stringify(m.length > 60 ? `${m.slice(0, 57)}...` : m)}`, hint: 'module names are letters, digits, _ and - (not first), at most 55 characters, as `lsmod` shows them' });
    }
  }
  let blacklist = (userBlacklist ?? []).some((m) => !MODULE_NAME.test(m)) ? [] : userBlacklist ?? uniq(chosen.filter((d) => d.class.startsWith('03')).flatMap((d) => DISPLAY_DRIVERS_BY_VENDOR[d.vendor] ?? []));
  const notes: string[] = [];
  const neededByHost = new Map<string, string>();
  for (const d of facts.pci) {
    if (chosenAddrs.has(d.address)) continue;
    for (const n of [d.driver, d.driverModule]) if (n && n !== 'vfio-pci') neededByHost.set(modName(n), d.address);
  }
  blacklist = blacklist.filter((m) => {
    const user = neededByHost.get(modName(m));
    if (user) notes.push(`not blacklisting ${m}: ${user} (not passed through) uses it; softdep keeps it off the chosen devices`);
    return !user;
  });
  for (const d of chosen) {
    const cur = d.driverModule ?? d.driver;
    if (cur && cur !== 'vfio-pci' && cur !== 'vfio_pci') {
      const known = [...blacklist, ...companionDrivers(d), ...(DISPLAY_DRIVERS_BY_VENDOR[d.vendor] ?? [])].map(modName);
      if (!known.includes(modName(cur))) notes.push(`${d.address} is bound to ${cur}, which no softdep covers: add it to blacklist_drivers if vfio-pci loses the race`);
    }
  }
  const softdeps = uniq([
    ...chosen.filter((d) => d.class.startsWith('03')).flatMap((d) => DISPLAY_DRIVERS_BY_VENDOR[d.vendor] ?? []),
    ...blacklist,
    ...chosen.flatMap(companionDrivers),
  ]);
  return { blacklist, softdeps, notes, problems };
}
