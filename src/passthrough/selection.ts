/**
 * Which PCI functions to pass through (`passthrough_slots`, `vfio_ids` → functions) and how
 * vfio-pci gets them: `ids=` (every device with the vendor:device pair) or by address
 * (driver_override), with the detection of a device that `ids=` would capture without being
 * chosen (a second identical card, above all the boot display).
 */
import type { Facts, PciDevice } from '../facts/types.ts';
import { asList, uniq, type PassthroughVars, type Problem } from './vars.ts';

/** `01:00` | `0000:01:00` | `01:00.1` | `0000:01:00.1` → { slot: `0000:01:00`, fn: null | `1` }. */
export function normalizeSlot(s: string): { slot: string; fn: string | null } | null {
  const m = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2})(?:\.([0-7]))?$/i.exec(String(s).trim());
  if (!m) return null;
  return { slot: `${(m[1] ?? '0000').toLowerCase()}:${m[2].toLowerCase()}`, fn: m[3] ?? null };
}

/** `00:02.0` | `0000:00:02.0` → `0000:00:02.0` (lowercase); null when it is not one function's address. */
export function fullFunction(s: string): string | null {
  const n = normalizeSlot(s);
  return n && n.fn !== null ? `${n.slot}.${n.fn}` : null;
}

export interface Selection {
  /** The chosen functions, by address. */
  chosen: PciDevice[];
  chosenAddrs: Set<string>;
  /** Unique ids, in device order: what goes into `options vfio-pci ids=`. */
  ids: string[];
  /** Problems that stop the choice itself (nothing chosen, slot missing, bad id). */
  problems: Problem[];
}

/** passthrough_slots and vfio_ids → the chosen functions, sorted by address. */
export function selectDevices(facts: Facts, vars: PassthroughVars): Selection {
  const problems: Problem[] = [];
  const slots = asList(vars.passthrough_slots);
  const wantIds = asList(vars.vfio_ids).map((x) => x.toLowerCase());
  let chosen: PciDevice[] = [];
  if (slots.length === 0 && wantIds.length === 0) {
    problems.push({
      msg: 'expected passthrough_slots or vfio_ids in the host variables, found neither',
      hint: 'set passthrough_slots: ["01:00"] (every function of the slot) or vfio_ids: ["10de:2684", "10de:22ba"]; `lspci -nn` lists them',
    });
  }
  for (const s of slots) {
    const n = normalizeSlot(s);
    if (!n) {
      problems.push({ msg: `expected a PCI slot like 01:00 in passthrough_slots, found '${s}'`, hint: 'write the bus:device part of `lspci` addresses, e.g. "01:00"' });
      continue;
    }
    const fns = facts.pci.filter((d) => d.address.startsWith(`${n.slot}.`) && (n.fn === null || d.address.endsWith(`.${n.fn}`)));
    if (fns.length === 0) {
      const present = uniq(facts.pci.filter((d) => d.class.startsWith('03')).map((d) => `${d.slot} (${d.id})`));
      problems.push({
        msg: `expected a PCI device in slot ${s}, found none`,
        hint: `display devices on this host: ${present.join(', ') || 'none'}; check the slot with \`lspci -nn\``,
      });
    }
    chosen.push(...fns);
  }
  for (const id of wantIds) {
    if (!/^[0-9a-f]{4}:[0-9a-f]{4}$/.test(id)) {
      problems.push({ msg: `expected vendor:device like 10de:2684 in vfio_ids, found '${id}'`, hint: 'copy the [vvvv:dddd] pair from `lspci -nn`' });
      continue;
    }
    const ds = facts.pci.filter((d) => d.id === id);
    if (ds.length === 0) problems.push({ msg: `expected a PCI device with id ${id}, found none`, hint: 'check the id with `lspci -nn`' });
    chosen.push(...ds);
  }
  chosen = uniq(chosen).sort((a, b) => a.address.localeCompare(b.address));
  return { chosen, chosenAddrs: new Set(chosen.map((d) => d.address)), ids: uniq(chosen.map((d) => d.id)), problems };
}

export interface SameIdDevice {
  address: string;
  id: string;
  bootVga: boolean;
  driver: string | null;
}

export interface Binding {
  /** How the chosen devices are bound: `ids=` or driver_override by address. */
  bind: 'ids' | 'address';
  reason: string;
  /** Devices not chosen that share an id with a chosen one: they must keep their own driver. */
  sameId: SameIdDevice[];
  /** A vfio_bind value that is none of auto, ids, address. */
  problems: Problem[];
  /** `ids=` would bind devices that were not chosen (the boot display above all) and ids binding was forced. */
  captureProblems: Problem[];
}

/**
 * `ids=` binds every device with the id, chosen or not. When that would take a device that was
 * not chosen (a second identical card, above all the boot display), bind by address.
 */
export function chooseBinding(facts: Facts, vars: PassthroughVars, sel: Selection): Binding {
  const { ids, chosenAddrs } = sel;
  const problems: Problem[] = [];
  const captureProblems: Problem[] = [];
  const sameIdDevs = facts.pci.filter((d) => ids.includes(d.id) && !chosenAddrs.has(d.address));
  const sameId = sameIdDevs.map((d) => ({ address: d.address, id: d.id, bootVga: d.bootVga, driver: d.driver }));
  const bindRaw = vars.vfio_bind === undefined || vars.vfio_bind === null ? 'auto' : String(vars.vfio_bind);
  let bind: 'ids' | 'address' = 'ids';
  let reason = '';
  if (!['auto', 'ids', 'address'].includes(bindRaw)) {
    problems.push({ msg: `expected vfio_bind auto, ids or address, found '${bindRaw}'`, hint: 'auto (default) binds by address only when ids= would take a device that was not chosen' });
  } else if (bindRaw === 'address') {
    bind = 'address';
    reason = 'vfio_bind is address';
  } else if (bindRaw === 'auto' && sameIdDevs.length > 0) {
    bind = 'address';
    reason = `ids=${uniq(sameIdDevs.map((d) => d.id)).join(',')} would also take ${sameIdDevs.map((d) => `${d.address}${d.bootVga ? ' (boot display)' : ''}`).join(', ')}: bound by address (driver_override)`;
  } else {
    reason = bindRaw === 'ids' ? 'vfio_bind is ids' : 'every chosen id is unique on this host';
  }
  if (bind === 'ids') {
    for (const id of ids) {
      const others = sameIdDevs.filter((d) => d.id === id);
      if (others.length === 0) continue;
      const boot = others.filter((d) => d.bootVga);
      const what = boot.length > 0 ? `the boot display ${boot.map((d) => d.address).join(', ')}` : `${others.map((d) => d.address).join(', ')} (not chosen)`;
      captureProblems.push({
        msg: `expected ids=${id} to match only the chosen devices, found it would also bind ${what} (vfio_bind: ids)`,
        hint:
          `\`options vfio-pci ids=\` matches every device with that vendor:device pair, so the host would lose ${boot.length > 0 ? 'its console' : 'that device'}. ` +
          `Set vfio_bind: address (or auto, the default) to bind ${[...chosenAddrs].join(', ')} by address: driver_override set early in boot.`,
      });
    }
  }
  return { bind, reason, sameId, problems, captureProblems };
}
