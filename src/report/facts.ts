/**
 * What `passthru facts` shows: the probe's facts of one host turned into a summary a person reads
 * at a glance (CPU, kernel, Proxmox VE, bootloader, IOMMU, every GPU with its functions, groups,
 * isolation verdict, driver, boot display, reset) and the host variables to paste. Pure: facts
 * and host variables in, a plain `HostFacts` (the `--json` shape, FACTS_SCHEMA) and text out.
 * The verdicts come from the same configuration step the roles use (`passthroughConfig`), so what `facts` says is
 * what `check` and `apply` will do.
 */
import type { Facts, PciDevice } from '../facts/types.ts';
import { firmwareIommuName, iommuOnByDefault, kernelSupportsAcsOverride, passthroughConfig, vendorResetFamily, type PassthroughVars } from '../passthrough/index.ts';
import { yamlBool } from '../model/truth.ts';
import { paint, type Style } from './colour.ts';

export type IsolationVerdict = 'isolated' | 'fixable-with-acs-override' | 'not-fixable' | 'unknown';

export interface GpuFunction {
  address: string;
  id: string;
  class: string;
  name: string;
  driver: string | null;
  bootVga: boolean;
  resetMethod: string[];
  iommuGroup: number | null;
}

export interface GpuFacts {
  /** `0000:01:00` */
  slot: string;
  /** The slot as written in `passthrough_slots` (`01:00`, or with the domain when it is not 0000). */
  slotVar: string;
  name: string;
  functions: GpuFunction[];
  /** One of the functions is the boot display (the host console). */
  bootDisplay: boolean;
  /** How the card is reset between guests, in words (`flr`, `bus`, `vendor-reset (navi10)`, ...). */
  reset: string;
  isolation: {
    verdict: IsolationVerdict;
    /** Devices in the card's IOMMU groups that are neither its functions nor bridges. */
    sharesWith: string[];
    text: string;
  };
  /** Binding the card by `ids=` would take no other device; otherwise per-address binding is needed. */
  idsSafe: boolean;
  /** The devices `ids=` would also take, when not safe. */
  idsAlsoBinds: string[];
  /** Suggested for passing through (a GPU that is not the boot display, or the only GPU). */
  suggested: boolean;
}

export interface HostFacts {
  host: string;
  reachable: boolean;
  /** Why the host could not be probed (unreachable, probe failed), with a hint. */
  error?: { msg: string; hint?: string };
  hostname?: string;
  cpu?: { vendor: Facts['cpuVendor']; virtualization: boolean; flag: string };
  kernel?: { release: string; version: string };
  pve?: { version: string | null };
  bootloader?: { kind: Facts['bootloader']; evidence: string[] };
  cmdline?: { running: string; configured: string };
  iommu?: { active: boolean; present: boolean; irqRemapping: boolean; evidence: string[]; hint: string | null };
  acsOverrideSupported?: boolean;
  gpus?: GpuFacts[];
  /** The host variables to paste into the inventory (empty when there is nothing to pass through). */
  vars?: Record<string, unknown>;
  /** Why these variables, and what to know before pasting them. */
  notes?: string[];
}

/** `facts --json` prints `{ "schema": FACTS_SCHEMA_ID, "hosts": HostFacts[] }`; README documents the fields. */
export const FACTS_SCHEMA_ID = 'passthru-facts/1';

const isGpu = (d: PciDevice) => d.class.startsWith('03');
const slotVarOf = (slot: string) => (slot.startsWith('0000:') ? slot.slice(5) : slot);

function resetWords(fn0: PciDevice): string {
  const family = vendorResetFamily(fn0.id);
  if (family) return `vendor-reset needed (${family}; kernel methods: ${fn0.resetMethod.join(' ') || 'none'})`;
  if (fn0.resetMethod.length === 0) return 'none reported (the card may not reset between guests)';
  return fn0.resetMethod.join(' ');
}

function iommuHint(f: Facts): string | null {
  if (f.iommu.active) return null;
  const defaultOn = iommuOnByDefault(f);
  const firmware = firmwareIommuName(f);
  if (!f.iommu.present && defaultOn) return `no IOMMU unit on a kernel that turns it on by itself: enable ${firmware} in the firmware setup (no kernel parameter can fix this)`;
  if (!f.iommu.present) return `off: the playbook adds ${f.cpuVendor === 'amd' ? 'iommu=pt' : 'intel_iommu=on iommu=pt'} to the kernel command line; if it stays off after the reboot, enable ${firmware} in the firmware setup`;
  return 'an IOMMU unit is present but DMA translation is off: the playbook turns it on (kernel command line) and reboots';
}

/** The summary of one probed host, with its current host variables (for the isolation verdict). */
export function describeHost(host: string, f: Facts, vars: PassthroughVars = {}): HostFacts {
  const acsSupported = kernelSupportsAcsOverride(f, vars.acs_override_supported);
  const slots = [...new Set(f.pci.filter(isGpu).map((d) => d.address.slice(0, -2)))].sort();
  const gpus: GpuFacts[] = slots.map((slot) => {
    const fns = f.pci.filter((d) => d.address.startsWith(`${slot}.`)).sort((a, b) => a.address.localeCompare(b.address));
    const gpu = fns.find(isGpu) ?? fns[0];
    const slotVar = slotVarOf(slot);
    const plan = passthroughConfig(f, { passthrough_slots: [slotVar], acs_override: 'auto', acs_override_supported: vars.acs_override_supported });
    const sharesWith = plan.groups.flatMap((g) => g.foreign);
    const nameOf = (a: string) => {
      const d = f.pci.find((x) => x.address === a);
      return d?.name ? `${a.slice(5)} (${d.name})` : a.slice(5);
    };
    const others = sharesWith.map(nameOf).join(', ') || 'devices without a group';
    let verdict: IsolationVerdict;
    let text: string;
    const groups = [...new Set(fns.map((d) => d.iommuGroup).filter((g) => g !== null))];
    const groupWords = groups.length ? `group${groups.length > 1 ? 's' : ''} ${groups.join(', ')}` : 'no group';
    if (plan.isolated === null) {
      verdict = 'unknown';
      text = 'unknown until the IOMMU is on';
    } else if (plan.isolated) {
      verdict = 'isolated';
      text = `isolated (${groupWords})`;
    } else if (acsSupported) {
      verdict = 'fixable-with-acs-override';
      text = `shares ${groupWords} with ${others}: fixable with ACS override (acs_override: auto does it)`;
    } else {
      verdict = 'not-fixable';
      text = `shares ${groupWords} with ${others}: not fixable here (kernel ${f.kernelRelease} has no ACS override patch); move the card to another slot`;
    }
    const alsoBinds = f.pci.filter((d) => plan.ids.includes(d.id) && !d.address.startsWith(`${slot}.`)).map((d) => d.address);
    return {
      slot,
      slotVar,
      name: gpu.name && gpu.name !== 'Device' ? gpu.name : gpu.id,
      functions: fns.map((d) => ({
        address: d.address,
        id: d.id,
        class: d.class,
        name: d.name,
        driver: d.driver,
        bootVga: d.bootVga,
        resetMethod: d.resetMethod,
        iommuGroup: d.iommuGroup,
      })),
      bootDisplay: fns.some((d) => d.bootVga),
      reset: resetWords(gpu),
      isolation: { verdict, sharesWith, text },
      idsSafe: alsoBinds.length === 0,
      idsAlsoBinds: alsoBinds,
      suggested: false,
    };
  });

  const notes: string[] = [];
  let pick = gpus.filter((g) => !g.bootDisplay && g.isolation.verdict !== 'not-fixable');
  if (pick.length === 0 && gpus.length === 1 && gpus[0].isolation.verdict !== 'not-fixable') {
    pick = gpus;
    notes.push(`${gpus[0].slotVar} is the only GPU and the boot display: the host console goes with it (manage the host over SSH)`);
  }
  for (const g of gpus) if (g.bootDisplay && !pick.includes(g)) notes.push(`${g.slotVar} is the boot display: kept for the host`);
  for (const g of gpus) if (g.isolation.verdict === 'not-fixable') notes.push(`${g.slotVar} cannot be isolated on this kernel: not suggested`);
  for (const g of pick) g.suggested = true;
  const vars2: Record<string, unknown> = {};
  if (pick.length) {
    vars2.passthrough_slots = pick.map((g) => g.slotVar);
    // `ids=` of the picked cards would also take a device that is not picked (the host's own twin card).
    const picked = (a: string) => pick.some((g) => a.startsWith(`${g.slot}.`));
    const captured = [...new Set(pick.flatMap((g) => g.idsAlsoBinds).filter((a) => !picked(a)))];
    if (captured.length) {
      vars2.vfio_bind = 'address';
      notes.push(`ids= is not safe: it would also bind ${captured.join(', ')}; bind by PCI address instead (vfio_bind: address)`);
    } else {
      notes.push('ids= is safe: no other device on this host has the same vendor:device ids');
    }
    if (pick.some((g) => g.isolation.verdict === 'fixable-with-acs-override')) vars2.acs_override = 'auto';
    if (pick.some((g) => g.isolation.verdict === 'unknown')) notes.push('isolation is checked again once the IOMMU is on (the preflight and the gates do it)');
  } else if (gpus.length === 0) {
    notes.push('no GPU (PCI class 03xx) on this host: nothing to pass through');
  }

  return {
    host,
    reachable: true,
    hostname: f.hostname,
    cpu: { vendor: f.cpuVendor, virtualization: f.cpuVirtualization, flag: f.cpuVendor === 'amd' ? 'svm' : 'vmx' },
    kernel: { release: f.kernelRelease, version: f.kernelVersion },
    pve: { version: f.pveVersion },
    bootloader: { kind: f.bootloader, evidence: f.bootloaderEvidence },
    cmdline: { running: f.cmdlineRunning, configured: f.cmdlineConfigured },
    iommu: { active: f.iommu.active, present: f.iommu.present, irqRemapping: f.iommu.irqRemapping, evidence: f.iommu.evidence, hint: iommuHint(f) },
    acsOverrideSupported: acsSupported,
    gpus,
    vars: vars2,
    notes,
  };
}

/** A host that could not be probed. */
export function unreachableHost(host: string, msg: string, hint?: string): HostFacts {
  return { host, reachable: false, error: { msg, hint } };
}

/** A plain YAML scalar where it stays text when read back (not a YAML 1.1 boolean word, not null), else JSON. */
const yamlScalar = (v: unknown): string => (typeof v === 'string' && /^[A-Za-z][\w.-]*$/.test(v) && yamlBool(v) === undefined && !/^null$/i.test(v) ? v : JSON.stringify(v));

/** Variables as inventory YAML lines (flow lists, the shape of inventory.example.yaml). */
export function varsYaml(vars: Record<string, unknown>): string[] {
  return Object.entries(vars).map(([k, v]) => `${k}: ${Array.isArray(v) ? `[${v.map((x) => JSON.stringify(x)).join(', ')}]` : yamlScalar(v)}`);
}

/** The text block of one host, as `passthru facts` prints it. */
export function formatHostFacts(s: Style, h: HostFacts): string {
  const out: string[] = [];
  const label = (k: string) => paint(s, 'dim', k.padEnd(12));
  if (!h.reachable) {
    out.push(`${paint(s, 'bold', h.host)}  ${paint(s, 'red', 'UNREACHABLE')}`);
    out.push(`  ${h.error?.msg ?? ''}`);
    if (h.error?.hint) out.push(`  ${paint(s, 'cyan', 'hint:')} ${h.error.hint}`);
    return out.join('\n');
  }
  const yes = (b: boolean, t: string, f: string) => (b ? paint(s, 'green', t) : paint(s, 'red', f));
  out.push(`${paint(s, 'bold', h.host)}${h.hostname && h.hostname !== h.host ? ` (${h.hostname})` : ''}`);
  out.push(`  ${label('cpu')}${h.cpu!.vendor}, virtualisation ${yes(h.cpu!.virtualization, `on (${h.cpu!.flag})`, `not exposed (no ${h.cpu!.flag} flag)`)}`);
  out.push(`  ${label('kernel')}${h.kernel!.release}${h.acsOverrideSupported ? ' (ACS override patch: yes)' : ' (ACS override patch: no)'}`);
  out.push(`  ${label('proxmox ve')}${h.pve!.version ?? 'not installed'}`);
  out.push(`  ${label('bootloader')}${h.bootloader!.kind === 'unknown' ? paint(s, 'red', 'unknown') : h.bootloader!.kind}${h.bootloader!.evidence.length ? `  ${paint(s, 'dim', `(${h.bootloader!.evidence.join('; ')})`)}` : ''}`);
  const io = h.iommu!;
  out.push(`  ${label('iommu')}${io.active ? paint(s, 'green', 'on') : paint(s, 'red', 'off')}${io.active ? `, interrupt remapping ${io.irqRemapping ? 'on' : 'off'}` : ''}`);
  for (const e of io.evidence.filter((x) => !/Adding to iommu group/.test(x)).slice(0, 4)) out.push(`  ${' '.repeat(12)}${paint(s, 'dim', e)}`);
  if (io.hint) out.push(`  ${' '.repeat(12)}${paint(s, 'cyan', 'hint:')} ${io.hint}`);
  if (!h.gpus!.length) out.push(`  ${label('gpus')}none`);
  for (const g of h.gpus!) {
    const tags = [g.bootDisplay ? paint(s, 'yellow', 'boot display') : '', g.suggested ? paint(s, 'green', 'suggested') : ''].filter(Boolean).join(', ');
    out.push(`  ${label('gpu')}${paint(s, 'bold', g.slotVar)}  ${g.name}${tags ? `  [${tags}]` : ''}`);
    for (const fn of g.functions) {
      out.push(
        `  ${' '.repeat(14)}${fn.address.slice(5)}  ${fn.id}  group ${fn.iommuGroup ?? '-'}  driver ${fn.driver ?? '(none)'}${fn.bootVga ? '  boot_vga' : ''}`,
      );
    }
    const iso = g.isolation;
    const isoColor = iso.verdict === 'isolated' ? 'green' : iso.verdict === 'not-fixable' ? 'red' : 'yellow';
    out.push(`  ${' '.repeat(14)}isolation: ${paint(s, isoColor, iso.text)}`);
    out.push(`  ${' '.repeat(14)}reset: ${g.reset}`);
    out.push(
      `  ${' '.repeat(14)}ids=: ${g.idsSafe ? 'unique on this host (safe)' : `same vendor:device as ${g.idsAlsoBinds.map((a) => a.slice(5)).join(', ')}: passing one without the other needs per-device binding`}`,
    );
  }
  const v = varsYaml(h.vars ?? {});
  if (v.length) {
    out.push(`  ${paint(s, 'bold', 'host variables to paste')} (under ${h.host} in the inventory):`);
    for (const l of v) out.push(`    ${paint(s, 'cyan', l)}`);
  }
  for (const n of h.notes ?? []) out.push(`  ${paint(s, 'dim', `note: ${n}`)}`);
  return out.join('\n');
}
