/**
 * Choosing the devices to pass through, and everything that follows from the choice: the
 * `ids=` list, the host drivers to keep away (blacklist + softdep), IOMMU group isolation, the
 * ACS override decision, vendor-reset, and whether the hugepages request fits. Pure: facts and
 * host variables in, plain data out. The roles read this data through `passthrough_check`
 * (`register:`), the gates re-check it on the booted kernel.
 */
import semver from 'semver';
import type { Facts, PciDevice } from './types.ts';

/** Host variables that drive the choice (see inventory.example.yaml). */
export interface PassthroughVars {
  /** PCI slots (`01:00`, `0000:01:00`); every function of each slot is chosen. `01:00.1` chooses one function. */
  passthrough_slots?: string[] | null;
  /** Explicit `vendor:device` ids; every device with one of those ids is chosen. */
  vfio_ids?: string[] | null;
  acs_override?: 'off' | 'on' | 'auto';
  /** Force the "kernel carries the ACS override patch" answer (default: Proxmox kernels, `-pve`). */
  acs_override_supported?: boolean | null;
  vendor_reset?: 'off' | 'on' | 'auto';
  /** Modules to blacklist; default from the vendors of the chosen display devices. */
  blacklist_drivers?: string[] | null;
  vfio_disable_vga?: boolean;
  /**
   * How vfio-pci gets the chosen devices: `ids` (`options vfio-pci ids=`, every device with the
   * id), `address` (driver_override for exactly the chosen addresses, set in the initramfs) or
   * `auto` (default: ids unless ids= would also take a device that was not chosen).
   */
  vfio_bind?: 'auto' | 'ids' | 'address';
  hugepages?: { size?: string; count?: number | string } | null;
  /** Refuse hugepages above this share of MemTotal (0..1). */
  hugepages_max_share?: number | string;
}

export interface Problem {
  msg: string;
  hint: string;
}

export interface ChosenDevice {
  address: string;
  id: string;
  class: string;
  name: string;
  driver: string | null;
  iommuGroup: number | null;
  bootVga: boolean;
}

export interface GroupReport {
  group: number;
  members: string[];
  /** Members that are neither chosen nor PCI bridges. */
  foreign: string[];
  isolated: boolean;
}

export interface DevicePlan {
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
  sameId: Array<{ address: string; id: string; bootVga: boolean; driver: string | null }>;
  /** initramfs-tools init-top script that sets driver_override (address binding), '' otherwise. */
  overrideScript: string;
  blacklist: string[];
  softdeps: string[];
  notes: string[];
  groups: GroupReport[];
  /** null when the IOMMU is not active yet (groups unknown). */
  isolated: boolean | null;
  acs: { mode: string; needed: boolean; supported: boolean; enable: boolean; reason: string };
  vendorReset: {
    mode: string;
    enable: boolean;
    devices: Array<{ address: string; id: string; family: string }>;
    headersPackage: string;
    /** Every installed kernel (and the one that boots next): DKMS builds the module for each. */
    kernels: string[];
    /** Packages the build needs: dkms, git, build tools and the headers of every kernel in `kernels`. */
    aptPackages: string[];
    udevRules: string;
    reason: string;
  };
  /** Modules for /etc/modules, and those that must not be listed on this kernel. */
  modules: string[];
  modulesAbsent: string[];
  vfioConf: string;
  blacklistConf: string;
}

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

/**
 * AMD device ids the vendor-reset module handles, by family (from gnif/vendor-reset's
 * src/device-db.h: Polaris 10/11/12, Vega 10/20, Navi 10/12/14, Navi 23, Arcturus).
 */
export const VENDOR_RESET_FAMILIES: Record<string, string[]> = {
  polaris10: ['67c0', '67c1', '67c2', '67c4', '67c7', '67d0', '67df', '67c8', '67c9', '67ca', '67cc', '67cf', '6fdf'],
  polaris11: ['67e0', '67e3', '67e8', '67eb', '67ef', '67ff', '67e1', '67e7', '67e9'],
  polaris12: ['6980', '6981', '6985', '6986', '6987', '6995', '6997', '699f'],
  vega10: ['6860', '6861', '6862', '6863', '6864', '6867', '6868', '6869', '686a', '686b', '686c', '686d', '686e', '686f', '687f'],
  vega20: ['66a0', '66a1', '66a2', '66a3', '66a4', '66a7', '66af', '738c'],
  navi10: ['7310', '7312', '7318', '7319', '731a', '731b', '731e', '731f', '15bf', '15dd', '15de', '15e7', '1636', '1638', '164c'],
  navi12: ['7360', '7362'],
  navi14: ['7340', '7341', '7347', '734f'],
  navi23: ['73ff'],
};

export function vendorResetFamily(id: string): string | null {
  const [v, d] = id.toLowerCase().split(':');
  if (v !== '1002') return null;
  for (const [family, ids] of Object.entries(VENDOR_RESET_FAMILIES)) if (ids.includes(d)) return family;
  return null;
}

const modName = (s: string) => s.replace(/-/g, '_');
/** A kernel module name (MODULE_NAME_LEN is 56 with the NUL): nothing a modprobe.d line could misread. */
export const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,54}$/;
const uniq = <T>(xs: T[]) => [...new Set(xs)];

/** `01:00` | `0000:01:00` | `01:00.1` | `0000:01:00.1` → { slot: `0000:01:00`, fn: null | `1` }. */
export function normalizeSlot(s: string): { slot: string; fn: string | null } | null {
  const m = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2})(?:\.([0-7]))?$/i.exec(String(s).trim());
  if (!m) return null;
  return { slot: `${(m[1] ?? '0000').toLowerCase()}:${m[2].toLowerCase()}`, fn: m[3] ?? null };
}

function asList(v: unknown): string[] {
  if (v === null || v === undefined || v === '') return [];
  if (Array.isArray(v)) return v.map(String).filter((x) => x.trim() !== '');
  return String(v).split(/[,\s]+/).filter(Boolean);
}

/** The kernel release carries the out-of-tree ACS override patch (Proxmox kernels do). */
export function kernelSupportsAcsOverride(facts: Facts, override?: boolean | null): boolean {
  if (typeof override === 'boolean') return override;
  return /-pve$/.test(facts.kernelRelease);
}

/** Is the kernel (its release coerced to semver, e.g. `6.8.12-4-pve` → 6.8.12) at least `version`? */
export function kernelAtLeast(kernelVersion: string, version: string): boolean {
  const v = semver.coerce(kernelVersion);
  return v !== null && semver.gte(v, version);
}

/** `vfio_virqfd` exists only below 6.2 (merged into `vfio`); listing it on 6.2+ breaks systemd-modules-load. */
export function needsVfioVirqfd(kernelVersion: string): boolean {
  return semver.coerce(kernelVersion) !== null && !kernelAtLeast(kernelVersion, '6.2.0');
}

export function headersPackage(facts: Facts, release = facts.kernelRelease): string {
  const r = release;
  if (facts.pveMajor !== null && facts.pveMajor >= 8) return `proxmox-headers-${r}`;
  if (facts.pveMajor !== null) return `pve-headers-${r}`;
  return `linux-headers-${r}`;
}

/** Name of the init-top script (under /etc/initramfs-tools/scripts/init-top/) that binds by address. */
export const OVERRIDE_SCRIPT_NAME = 'passthru-vfio-override';

/**
 * Per-device binding: an initramfs-tools init-top script that writes `vfio-pci` to
 * `driver_override` of exactly the chosen functions.
 *
 * Why this mechanism (on Proxmox kernels): driver_override must be set before the host driver
 * probes the device. init-top scripts run first in the initramfs, before local-top and the root
 * mount, so before the real root's udev ever loads nouveau/amdgpu/snd_hda_intel. A udev rule in
 * /etc/udev/rules.d is not copied into the initramfs (the udev hook takes a fixed list of rules),
 * so it comes too late whenever the GPU driver is in the initramfs; a modprobe `install` rule
 * depends on the driver being a module loaded through modprobe and makes every later load of
 * that driver run a shell. init-top is the one place that runs early on every kernel the
 * initramfs is built for (`update-initramfs -u -k all`). initramfs-tools orders init-top scripts
 * with tsort, so this one may still run after the initramfs udev coldplug: when a host driver
 * already holds a chosen function, the script unbinds it and asks the kernel to re-probe, and
 * driver_override then leaves vfio-pci as the only driver that may take it (vfio-pci loads from
 * /etc/modules, or earlier through the softdep lines). Other devices with the same
 * vendor:device pair are never touched.
 */
export function overrideScriptText(chosen: Array<Pick<PciDevice, 'address' | 'id' | 'name'>>): string {
  const lines = [
    '#!/bin/sh',
    '# Managed by passthru: bind exactly these PCI functions to vfio-pci (driver_override),',
    '# before their host drivers; other devices with the same vendor:device keep their driver.',
    'PREREQ=""',
    'prereqs() { echo "$PREREQ"; }',
    'case "$1" in',
    'prereqs) prereqs; exit 0 ;;',
    'esac',
  ];
  for (const d of chosen) {
    lines.push(`# ${d.address} [${d.id}] ${d.name.replace(/[^\x20-\x7e]/g, '?')}`);
    lines.push(`[ -e /sys/bus/pci/devices/${d.address} ] && echo vfio-pci > /sys/bus/pci/devices/${d.address}/driver_override`);
  }
  lines.push(
    '# A host driver that probed first lets go; driver_override leaves only vfio-pci.',
    `for d in ${chosen.map((d) => d.address).join(' ')}; do`,
    '  p=/sys/bus/pci/devices/$d',
    '  if [ -e "$p/driver" ] && [ ! -e "/sys/bus/pci/drivers/vfio-pci/$d" ]; then',
    '    echo "$d" > "$p/driver/unbind"',
    '    echo "$d" > /sys/bus/pci/drivers_probe',
    '  fi',
    'done',
    'exit 0',
  );
  return lines.join('\n') + '\n';
}

/**
 * A switch variable (`acs_override`, `vendor_reset`, `intel_iommu_on`): `on` or `off`, with YAML
 * 1.1's booleans (an unquoted on/off in an inventory is true/false, as Ansible reads it) and any
 * aliases the variable has (`always`/`never`); anything else is `auto`. The argument specs refuse
 * other values at load.
 */
export function switchMode(raw: unknown, aliases: { on?: string; off?: string } = {}): 'on' | 'off' | 'auto' {
  if (raw === true || raw === 'on' || (aliases.on !== undefined && raw === aliases.on)) return 'on';
  if (raw === false || raw === 'off' || (aliases.off !== undefined && raw === aliases.off)) return 'off';
  return 'auto';
}

export function planDevices(facts: Facts, vars: PassthroughVars): DevicePlan {
  const deviceProblems: Problem[] = [];
  const captureProblems: Problem[] = [];
  const notes: string[] = [];
  const slots = asList(vars.passthrough_slots);
  const wantIds = asList(vars.vfio_ids).map((x) => x.toLowerCase());
  const byAddr = new Map(facts.pci.map((d) => [d.address, d]));

  let chosen: PciDevice[] = [];
  if (slots.length === 0 && wantIds.length === 0) {
    deviceProblems.push({
      msg: 'expected passthrough_slots or vfio_ids in the host variables, found neither',
      hint: 'set passthrough_slots: ["01:00"] (every function of the slot) or vfio_ids: ["10de:2684", "10de:22ba"]; `lspci -nn` lists them',
    });
  }
  for (const s of slots) {
    const n = normalizeSlot(s);
    if (!n) {
      deviceProblems.push({ msg: `expected a PCI slot like 01:00 in passthrough_slots, found '${s}'`, hint: 'write the bus:device part of `lspci` addresses, e.g. "01:00"' });
      continue;
    }
    const fns = facts.pci.filter((d) => d.address.startsWith(`${n.slot}.`) && (n.fn === null || d.address.endsWith(`.${n.fn}`)));
    if (fns.length === 0) {
      const present = uniq(facts.pci.filter((d) => d.class.startsWith('03')).map((d) => `${d.slot} (${d.id})`));
      deviceProblems.push({
        msg: `expected a PCI device in slot ${s}, found none`,
        hint: `display devices on this host: ${present.join(', ') || 'none'}; check the slot with \`lspci -nn\``,
      });
    }
    chosen.push(...fns);
  }
  for (const id of wantIds) {
    if (!/^[0-9a-f]{4}:[0-9a-f]{4}$/.test(id)) {
      deviceProblems.push({ msg: `expected vendor:device like 10de:2684 in vfio_ids, found '${id}'`, hint: 'copy the [vvvv:dddd] pair from `lspci -nn`' });
      continue;
    }
    const ds = facts.pci.filter((d) => d.id === id);
    if (ds.length === 0) deviceProblems.push({ msg: `expected a PCI device with id ${id}, found none`, hint: 'check the id with `lspci -nn`' });
    chosen.push(...ds);
  }
  chosen = uniq(chosen).sort((a, b) => a.address.localeCompare(b.address));
  const chosenAddrs = new Set(chosen.map((d) => d.address));
  const ids = uniq(chosen.map((d) => d.id));

  // `ids=` binds every device with the id, chosen or not. When that would take a device that
  // was not chosen (a second identical card, above all the boot display), bind by address.
  const sameIdDevs = facts.pci.filter((d) => ids.includes(d.id) && !chosenAddrs.has(d.address));
  const sameId = sameIdDevs.map((d) => ({ address: d.address, id: d.id, bootVga: d.bootVga, driver: d.driver }));
  const bindRaw = vars.vfio_bind === undefined || vars.vfio_bind === null ? 'auto' : String(vars.vfio_bind);
  let bind: 'ids' | 'address' = 'ids';
  let bindReason = '';
  if (!['auto', 'ids', 'address'].includes(bindRaw)) {
    deviceProblems.push({ msg: `expected vfio_bind auto, ids or address, found '${bindRaw}'`, hint: 'auto (default) binds by address only when ids= would take a device that was not chosen' });
  } else if (bindRaw === 'address') {
    bind = 'address';
    bindReason = 'vfio_bind is address';
  } else if (bindRaw === 'auto' && sameIdDevs.length > 0) {
    bind = 'address';
    bindReason = `ids=${uniq(sameIdDevs.map((d) => d.id)).join(',')} would also take ${sameIdDevs.map((d) => `${d.address}${d.bootVga ? ' (boot display)' : ''}`).join(', ')}: bound by address (driver_override)`;
  } else {
    bindReason = bindRaw === 'ids' ? 'vfio_bind is ids' : 'every chosen id is unique on this host';
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
  for (const d of chosen) if (d.bootVga) notes.push(`${d.address} is the boot display: the host console goes with it`);

  // Drivers: blacklist display drivers by vendor, softdep all of them plus companions.
  const userBlacklist = vars.blacklist_drivers === null || vars.blacklist_drivers === undefined ? null : asList(vars.blacklist_drivers);
  // each name becomes a `blacklist NAME` line in modprobe.d: a module name by the kernel's rules, nothing else
  for (const m of userBlacklist ?? []) {
    if (!MODULE_NAME.test(m)) {
      deviceProblems.push({ msg: `expected kernel module names in blacklist_drivers, found ${JSON.stringify(m.length > 60 ? `${m.slice(0, 57)}...` : m)}`, hint: 'module names are letters, digits, _ and - (not first), at most 55 characters, as `lsmod` shows them' });
    }
  }
  let blacklist = (userBlacklist ?? []).some((m) => !MODULE_NAME.test(m)) ? [] : userBlacklist ?? uniq(chosen.filter((d) => d.class.startsWith('03')).flatMap((d) => DISPLAY_DRIVERS_BY_VENDOR[d.vendor] ?? []));
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

  // IOMMU groups.
  const groups: GroupReport[] = [];
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

  // YAML `acs_override: true/false` (and `yes`/`no` read as booleans by YAML 1.1 habits) mean on/off.
  const acsMode = switchMode(vars.acs_override);
  const supported = kernelSupportsAcsOverride(facts, vars.acs_override_supported);
  const needed = isolated === false;
  const enable = acsMode === 'on' ? supported : acsMode === 'auto' ? needed && supported : false;
  const acsReason =
    acsMode === 'off'
      ? 'acs_override is off'
      : acsMode === 'on'
        ? supported
          ? 'acs_override is on'
          : `acs_override is on, but kernel ${facts.kernelRelease} does not carry the ACS override patch`
        : needed
          ? supported
            ? `group ${groups.filter((g) => !g.isolated).map((g) => `${g.group} also holds ${g.foreign.join(', ')}`).join('; ')}: override needed`
            : `override needed, but kernel ${facts.kernelRelease} does not carry the ACS override patch`
          : isolated === null
            ? 'groups unknown until the IOMMU is active: not enabled'
            : 'every chosen group is isolated: not needed';

  const vrMode = switchMode(vars.vendor_reset);
  const vrDevices = chosen.flatMap((d) => {
    const family = vendorResetFamily(d.id);
    return family ? [{ address: d.address, id: d.id, family }] : [];
  });
  const vrEnable = vrMode === 'on' || (vrMode === 'auto' && vrDevices.length > 0);
  const udevRules = vrDevices.length
    ? '# Managed by passthru: vendor-reset only acts when the reset method is device_specific (kernel >= 5.15).\n' +
      uniq(vrDevices.map((d) => d.id))
        .map((id) => {
          const [v, dv] = id.split(':');
          return `ACTION=="add", SUBSYSTEM=="pci", ATTR{vendor}=="0x${v}", ATTR{device}=="0x${dv}", RUN+="/bin/sh -c 'echo device_specific > /sys$env{DEVPATH}/reset_method'"`;
        })
        .join('\n') +
      '\n'
    : '';

  // A kernel upgrade installs a kernel that boots next: the module must be there for it too.
  const vrKernels = uniq([facts.kernelRelease, facts.kernelNext, ...facts.kernelsInstalled].filter((k) => !!k));

  const virqfd = needsVfioVirqfd(facts.kernelVersion);
  const modules = ['vfio', 'vfio_iommu_type1', 'vfio_pci', ...(virqfd ? ['vfio_virqfd'] : [])];
  const modulesAbsent = virqfd ? [] : ['vfio_virqfd'];

  const disableVga = vars.vfio_disable_vga === undefined ? true : Boolean(vars.vfio_disable_vga);
  const vfioOptions = bind === 'ids' ? [`ids=${ids.join(',')}`, ...(disableVga ? ['disable_vga=1'] : [])] : disableVga ? ['disable_vga=1'] : [];
  const vfioConf = ids.length
    ? (bind === 'ids'
        ? '# Managed by passthru: bind the chosen devices to vfio-pci before their host drivers.\n'
        : `# Managed by passthru: the chosen devices are bound by address (${OVERRIDE_SCRIPT_NAME} in the initramfs), not by vendor:device.\n`) +
      (vfioOptions.length ? `options vfio-pci ${vfioOptions.join(' ')}\n` : '') +
      softdeps.map((m) => `softdep ${m} pre: vfio-pci\n`).join('')
    : '';
  const overrideScript = bind === 'address' && chosen.length > 0 ? overrideScriptText(chosen) : '';
  const blacklistConf = blacklist.length
    ? '# Managed by passthru: host drivers kept off the devices passed through.\n' + blacklist.map((m) => `blacklist ${m}\n`).join('')
    : '';

  return {
    devices: chosen.map((d) => ({
      address: d.address,
      id: d.id,
      class: d.class,
      name: d.name,
      driver: d.driver,
      iommuGroup: d.iommuGroup,
      bootVga: d.bootVga,
    })),
    ids,
    deviceProblems,
    captureProblems,
    bind,
    bindReason,
    sameId,
    overrideScript,
    blacklist,
    softdeps,
    notes,
    groups,
    isolated,
    acs: { mode: acsMode, needed, supported, enable, reason: acsReason },
    vendorReset: {
      mode: vrMode,
      enable: vrEnable,
      devices: vrDevices,
      headersPackage: headersPackage(facts),
      kernels: vrKernels,
      aptPackages: ['dkms', 'git', 'build-essential', ...vrKernels.map((k) => headersPackage(facts, k))],
      udevRules,
      reason:
        vrMode === 'off'
          ? 'vendor_reset is off'
          : vrDevices.length
            ? `${vrDevices.map((d) => `${d.address} (${d.family})`).join(', ')} need vendor-reset`
            : vrMode === 'on'
              ? 'vendor_reset is on (no chosen device is in its device list)'
              : 'no chosen device is in vendor-reset\'s device list',
    },
    modules,
    modulesAbsent,
    vfioConf,
    blacklistConf,
  };
}

// ---------------------------------------------------------------- hugepages

export const DEFAULT_HUGEPAGES_MAX_SHARE = 0.75;

export interface HugepagesPlan {
  mode: 'off' | 'runtime' | 'boot';
  size: '2M' | '1G' | null;
  sizeKb: number;
  count: number;
  requestedKb: number;
  limitKb: number;
  share: number;
  /** Kernel parameters for boot-time reservation (1G). */
  cmdline: string[];
  problem: Problem | null;
}

export function planHugepages(facts: Facts, vars: PassthroughVars): HugepagesPlan {
  const hp = vars.hugepages ?? {};
  // a whole number or its digits; `true` is not 1
  const rawCount: unknown = hp.count ?? 0;
  const count = typeof rawCount === 'number' ? rawCount : typeof rawCount === 'string' && /^\s*\d{1,15}\s*$/.test(rawCount) ? Number(rawCount) : Number.NaN;
  const share = vars.hugepages_max_share === undefined ? DEFAULT_HUGEPAGES_MAX_SHARE : Number(vars.hugepages_max_share);
  const limitKb = Math.floor(facts.memory.totalKb * share);
  const rawSize = String(hp.size ?? '2M').trim().toUpperCase().replace(/B$/, '');
  const size = rawSize === '2M' || rawSize === '2048K' ? '2M' : rawSize === '1G' || rawSize === '1024M' ? '1G' : null;
  const base: HugepagesPlan = { mode: 'off', size, sizeKb: 0, count: 0, requestedKb: 0, limitKb, share, cmdline: [], problem: null };
  if (!Number.isInteger(count) || count < 0) {
    return { ...base, problem: { msg: `expected hugepages.count to be a whole number >= 0, found '${hp.count}'`, hint: 'hugepages: { size: 2M, count: 1024 }' } };
  }
  if (size === null) {
    return { ...base, problem: { msg: `expected hugepages.size 2M or 1G, found '${hp.size}'`, hint: 'x86-64 hugepages are 2M (runtime) or 1G (boot time)' } };
  }
  if (count === 0) return base;
  const sizeKb = size === '2M' ? 2048 : 1048576;
  const requestedKb = sizeKb * count;
  const plan: HugepagesPlan = {
    ...base,
    mode: size === '1G' ? 'boot' : 'runtime',
    sizeKb,
    count,
    requestedKb,
    cmdline: size === '1G' ? ['default_hugepagesz=1G', 'hugepagesz=1G', `hugepages=${count}`] : [],
  };
  if (!(share > 0 && share <= 1)) {
    plan.problem = { msg: `expected hugepages_max_share between 0 and 1, found '${vars.hugepages_max_share}'`, hint: 'the default is 0.75' };
  } else if (facts.memory.totalKb === 0) {
    plan.problem = { msg: 'expected MemTotal in /proc/meminfo, found none', hint: 'the probe could not read /proc/meminfo' };
  } else if (requestedKb > limitKb) {
    const gib = (kb: number) => (kb / 1048576).toFixed(1);
    plan.problem = {
      msg: `expected at most ${gib(limitKb)} GiB of hugepages (${Math.round(share * 100)}% of MemTotal ${gib(facts.memory.totalKb)} GiB), found a request for ${count} x ${size} = ${gib(requestedKb)} GiB`,
      hint: `lower hugepages.count to at most ${Math.floor(limitKb / sizeKb)}, or raise hugepages_max_share knowingly: reserved pages are lost to the host`,
    };
  }
  return plan;
}
