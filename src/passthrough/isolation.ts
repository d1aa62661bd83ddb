/**
 * IOMMU group isolation of the chosen devices, and the ACS override decision that follows.
 */
import type { Facts } from '../facts/types.ts';
import { kernelSupportsAcsOverride } from './kernel.ts';
import type { Selection } from './selection.ts';
import { switchMode, uniq, type PassthroughVars } from './vars.ts';

export interface GroupReport {
  group: number;
  members: string[];
  /** Members that are neither chosen nor PCI bridges. */
  foreign: string[];
  isolated: boolean;
}

export interface Isolation {
  groups: GroupReport[];
  /** null when the IOMMU is not active yet (groups unknown). */
  isolated: boolean | null;
  notes: string[];
}

export interface AcsDecision {
  mode: string;
  needed: boolean;
  supported: boolean;
  enable: boolean;
  reason: string;
}

/** Each chosen device's group may hold only chosen functions and PCI bridges (class 0604). */
export function groupIsolation(facts: Facts, sel: Selection): Isolation {
  const { chosen, chosenAddrs } = sel;
  const byAddr = new Map(facts.pci.map((d) => [d.address, d]));
  const groups: GroupReport[] = [];
  const notes: string[] = [];
  let isolated: boolean | null = null;
  if (facts.iommu.active && chosen.length > 0) {
    for (const g of uniq(chosen.map((d) => d.iommuGroup).filter((g): g is number => g !== null))) {
      const members = facts.iommuGroups[String(g)] ?? [];
      const foreign = members.filter((a) => !chosenAddrs.has(a) && byAddr.get(a)?.class !== '0604');
      groups.push({ group: g, members, foreign, isolated: foreign.length === 0 });
    }
    isolated = groups.every((g) => g.isolated);
    const ungrouped = chosen.filter((d) => d.iommuGroup === null);
    if (ungrouped.length > 0) {
      isolated = false;
      notes.push(`no IOMMU group for ${ungrouped.map((d) => d.address).join(', ')}`);
    }
  }
  return { groups, isolated, notes };
}

/** acs_override (off | on | auto) against the groups and the kernel's ACS override patch. */
export function acsDecision(facts: Facts, vars: PassthroughVars, iso: Isolation): AcsDecision {
  // YAML `acs_override: true/false` (and `yes`/`no` read as booleans by YAML 1.1 habits) mean on/off.
  const mode = switchMode(vars.acs_override);
  const supported = kernelSupportsAcsOverride(facts, vars.acs_override_supported);
  const needed = iso.isolated === false;
  const enable = mode === 'on' ? supported : mode === 'auto' ? needed && supported : false;
  const reason =
    mode === 'off'
      ? 'acs_override is off'
      : mode === 'on'
        ? supported
          ? 'acs_override is on'
          : `acs_override is on, but kernel ${facts.kernelRelease} does not carry the ACS override patch`
        : needed
          ? supported
            ? `group ${iso.groups.filter((g) => !g.isolated).map((g) => `${g.group} also holds ${g.foreign.join(', ')}`).join('; ')}: override needed`
            : `override needed, but kernel ${facts.kernelRelease} does not carry the ACS override patch`
          : iso.isolated === null
            ? 'groups unknown until the IOMMU is active: not enabled'
            : 'every chosen group is isolated: not needed';
  return { mode, needed, supported, enable, reason };
}
