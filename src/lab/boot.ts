/**
 * The boot logic of a lab node, pure: what a node looks like after a boot derives only from
 * what was configured AND applied (bootloader config as last generated, the initramfs snapshot
 * as last built, sysctl.d, udev rules/units, DKMS builds) plus the hardware profile.
 * A setting written but not applied has no effect. The parsers of those files are in
 * boot-config.ts (re-exported here); this module turns them and the profile into a boot.
 */
import type { Profile, ProfileDevice } from './profile.ts';
import { bootSriov, type BootSriov } from './sriov.ts';
import { nvidiaBoot } from './boot-nvidia.ts';
import { cmdlineParam, hugepagesFromCmdline, kernelAtLeast, liveModFiles, norm, parseGrubCfg, parseLoaderEntries, parseModConfig, parseSnapshot, sysctlFromFiles, vfioIds, type LoaderState, type NodeView } from './boot-config.ts';

// The parsers of the applied configuration, for the importers of this module.
export * from './boot-config.ts';

export interface BootDevice {
  address: string;
  vendor: string;
  device: string;
  class: string;
  bootVga: boolean;
  driver: string | null;
  group: number | null;
  resetMethod: string[];
}

export interface BootResult {
  kernelRelease: string;
  cmdline: string;
  iommu: { present: boolean; active: boolean; acsOverride: boolean };
  devices: BootDevice[];
  groups: Record<string, string[]>;
  modules: string[];
  hugepages: { defaultSizeKb: number; pools: Record<string, number> };
  failedUnits: string[];
  dockerRuntimes: string[] | null;
  /** Kernel log lines (without timestamps). */
  log: string[];
  /** SR-IOV: each PF's sriov_numvfs and the VFs the boot's units created (src/lab/sriov.ts). */
  sriov?: BootSriov;
}

// ---------- boot ----------

export function driverModule(d: ProfileDevice): string | null {
  if (!d.driver) return null;
  const mods = (d.modules ?? []).map(norm);
  const drv = norm(d.driver);
  if (mods.includes(drv)) return drv;
  return mods[mods.length - 1] ?? drv;
}

/** DKMS-provided kernel modules: kernel module name → dkms module name. */
const DKMS_MODULES: Record<string, string> = { vendor_reset: 'vendor-reset' };

/** DKMS modules installed for a kernel: /var/lib/dkms/<mod>/<ver>/<kver>/<arch>/module/*.ko */
export function dkmsBuilt(view: NodeView, kernel: string): Set<string> {
  const built = new Set<string>();
  for (const mod of view.list('/var/lib/dkms')) {
    for (const ver of view.list(`/var/lib/dkms/${mod}`)) {
      if (ver === 'source' || ver.startsWith('kernel-')) continue;
      const kos = view.list(`/var/lib/dkms/${mod}/${ver}/${kernel}/x86_64/module`);
      for (const ko of kos) if (ko.endsWith('.ko') || ko.endsWith('.ko.xz')) built.add(norm(ko.replace(/\.ko(\.xz)?$/, '')));
    }
  }
  return built;
}

function resetRuleActive(view: NodeView): boolean {
  const sets = (t: string) => /reset_method/.test(t) && /device_specific/.test(t);
  for (const f of view.list('/etc/udev/rules.d')) if (f.endsWith('.rules') && sets(view.read(`/etc/udev/rules.d/${f}`) ?? '')) return true;
  const units = view.list('/etc/systemd/system').filter((f) => f.endsWith('.service'));
  const wants = view.list('/etc/systemd/system').filter((f) => f.endsWith('.wants'));
  for (const u of units) {
    if (!sets(view.read(`/etc/systemd/system/${u}`) ?? '')) continue;
    if (wants.some((w) => view.list(`/etc/systemd/system/${w}`).includes(u))) return true;
  }
  return false;
}

export function isInstalled(view: NodeView, pkg: string): boolean {
  const status = view.read('/var/lib/dpkg/status') ?? '';
  return new RegExp(`^Package: ${pkg.replace(/[.+]/g, '\\$&')}\\n(?:[^\\n]+\\n)*?Status: install ok installed`, 'm').test(status);
}

export function boot(profile: Profile, view: NodeView): BootResult {
  const log: string[] = [];
  const failedUnits: string[] = [];

  // 1. bootloader: only the one this board boots with counts.
  let loader: LoaderState | null;
  if (profile.bootloader === 'systemd-boot') loader = parseLoaderEntries(view);
  else loader = parseGrubCfg(view.read('/boot/grub/grub.cfg') ?? '');
  if (!loader) {
    loader = { kernel: profile.kernel.release, cmdline: `BOOT_IMAGE=/boot/vmlinuz-${profile.kernel.release} root=${profile.root.device} ro` };
    log.push('lab: no bootloader configuration found, booted the fallback entry');
  }
  const kernel = loader.kernel;
  const cmdline = loader.cmdline;
  log.push(`Linux version ${kernel} (build@lab) #1 SMP PREEMPT_DYNAMIC`);
  log.push(`Command line: ${cmdline}`);

  // 2. IOMMU.
  const vendor = profile.cpu.vendor;
  const present = profile.firmware.iommu;
  const intelParam = cmdlineParam(cmdline, 'intel_iommu');
  const amdParam = cmdlineParam(cmdline, 'amd_iommu');
  let active = false;
  if (present) {
    if (vendor === 'intel') {
      const on = intelParam?.split(',').includes('on') ?? false;
      const off = intelParam?.split(',').includes('off') ?? false;
      active = !off && (on || kernelAtLeast(kernel, 6, 8));
      if (on) log.push('DMAR: IOMMU enabled');
      if (active) log.push('DMAR-IR: Enabled IRQ remapping in x2apic mode');
    } else {
      active = amdParam !== 'off';
      if (active) log.push('AMD-Vi: Interrupt remapping enabled');
    }
  } else if (profile.kind === 'pve') {
    log.push(vendor === 'intel' ? 'DMAR: IOMMU not found (disabled in firmware)' : 'AMD-Vi: AMD IOMMUv2 functionality not available on this system');
  }
  const pt = cmdlineParam(cmdline, 'iommu') === 'pt';
  if (active) log.push(`iommu: Default domain type: ${pt ? 'Passthrough' : 'Translated'}${pt ? ' (set via kernel command line)' : ''}`);
  const acsOverride = active && profile.kernel.acs_patch && cmdlineParam(cmdline, 'pcie_acs_override') !== null;
  if (acsOverride) log.push('Warning: PCIe ACS overrides enabled; This may allow non-IOMMU protected peer-to-peer DMA');
  if (cmdlineParam(cmdline, 'pcie_acs_override') !== null && !profile.kernel.acs_patch)
    log.push(`Unknown kernel command line parameters "pcie_acs_override=${cmdlineParam(cmdline, 'pcie_acs_override')}", will be passed to user space.`);

  // 3. Modules: binding per the initramfs snapshot of the booted kernel.
  const initrdPath = profile.bootloader === 'systemd-boot' ? `/boot/efi/EFI/proxmox/${kernel}/initrd.img-${kernel}` : `/boot/initrd.img-${kernel}`;
  const snap = parseModConfig(parseSnapshot(view.read(initrdPath)));
  const live = parseModConfig(liveModFiles(view));
  const ids = vfioIds(snap);
  const dkms = dkmsBuilt(view, kernel);
  const exists = (m: string): boolean => {
    if (m === 'vfio_virqfd') return !kernelAtLeast(kernel, 6, 2);
    if (m in DKMS_MODULES) return dkms.has(m);
    return true;
  };
  // ids= binding needs vfio-pci loaded before the host driver: from the initramfs' module list
  // or pulled in first by a softdep of the host driver.
  const earlyVfio = snap.load.includes('vfio_pci') || [...snap.softdepPre.values()].some((pre) => pre.includes('vfio_pci'));
  // driver_override (written in the initramfs, before any driver probed): the kernel lets only
  // the named driver bind that device, whenever that driver loads (now or from /etc/modules).
  const vfioEverLoads = earlyVfio || live.load.includes('vfio_pci') || [...live.softdepPre.values()].some((pre) => pre.includes('vfio_pci'));

  const loaded = new Set<string>((profile.modules ?? []).map(norm));
  const devices: BootDevice[] = [];
  for (const d of profile.pci) {
    const id = `${d.vendor}:${d.device}`.toLowerCase();
    const hostMod = driverModule(d);
    const blacklisted = hostMod !== null && snap.blacklist.has(hostMod);
    const softdep = hostMod !== null && (snap.softdepPre.get(hostMod) ?? []).includes('vfio_pci');
    const override = snap.overrides.has(d.address.toLowerCase());
    let driver: string | null = d.driver ?? null;
    const wantsVfio = ids.has(id) && (blacklisted || softdep);
    if (override) {
      log.push(`pci ${d.address}: driver_override=vfio-pci`);
      if (vfioEverLoads && active) {
        driver = 'vfio-pci';
        log.push(`vfio-pci ${d.address}: enabling device`);
        if (d.class.startsWith('03')) log.push(`vfio-pci ${d.address}: vgaarb: deactivate vga console`);
        if (d.boot_vga) log.push(`vfio-pci ${d.address}: boot display claimed by vfio-pci: host console lost`);
      } else {
        driver = null;
        if (vfioEverLoads) log.push(`vfio-pci: probe of ${d.address} failed with error -22`);
      }
    } else if (earlyVfio && wantsVfio && active) {
      driver = 'vfio-pci';
      log.push(`vfio-pci ${d.address}: enabling device`);
      if (d.class.startsWith('03')) log.push(`vfio-pci ${d.address}: vgaarb: deactivate vga console`);
      if (d.boot_vga) log.push(`vfio-pci ${d.address}: boot display claimed by vfio-pci: host console lost`);
    } else if (earlyVfio && wantsVfio && !active) {
      driver = blacklisted ? null : driver;
      log.push(`vfio-pci: probe of ${d.address} failed with error -22`);
    } else if (blacklisted) {
      driver = null;
    }
    if (driver && driver !== 'vfio-pci' && hostMod) loaded.add(hostMod);
    if (driver === 'vfio-pci') for (const m of ['vfio', 'vfio_iommu_type1', 'vfio_pci', 'vfio_pci_core']) loaded.add(m);
    const group = active ? ((acsOverride ? (d.acs_group ?? d.group) : d.group) ?? null) : null;
    devices.push({
      address: d.address,
      vendor: d.vendor,
      device: d.device,
      class: d.class,
      bootVga: !!d.boot_vga,
      driver,
      group,
      resetMethod: d.reset ?? (d.class.startsWith('03') ? ['bus'] : ['flr', 'bus']),
    });
  }
  if (earlyVfio) for (const m of ['vfio', 'vfio_iommu_type1', 'vfio_pci', 'vfio_pci_core']) loaded.add(m);
  // A guest's NVIDIA driver, per its installed packages and DKMS builds (boot-nvidia.ts).
  nvidiaBoot(profile, view, kernel, devices, loaded, log, snap.blacklist);

  // systemd-modules-load: live /etc/modules and modules-load.d, after the root fs is mounted.
  const missing: string[] = [];
  for (const m of new Set([...live.load, ...snap.load])) {
    if (exists(m)) loaded.add(m);
    else missing.push(m);
  }
  for (const m of missing) log.push(`systemd-modules-load[312]: Failed to find module '${m}'`);
  if (missing.length) failedUnits.push('systemd-modules-load.service');

  // vendor-reset: module loaded and a rule/unit sets the reset method.
  if (loaded.has('vendor_reset')) {
    log.push('vendor_reset_hook: enabled');
    if (resetRuleActive(view)) {
      for (const dev of devices) {
        const pd = profile.pci.find((p) => p.address === dev.address);
        if (pd?.vendor_reset) dev.resetMethod = ['device_specific'];
      }
    }
  }

  // 4. Hugepages.
  const hp = hugepagesFromCmdline(cmdline);
  const sysctl = sysctlFromFiles(view);
  const nr = sysctl.get('vm.nr_hugepages');
  if (nr !== undefined && hp.defaultSizeKb === 2048 && /^\d+$/.test(nr)) hp.pools['2048'] = Number(nr);
  for (const [k, n] of Object.entries(hp.pools)) {
    const maxPages = Math.floor((profile.memory_kb * 0.9) / Number(k));
    if (n > maxPages) {
      hp.pools[k] = maxPages;
      log.push(`HugeTLB: allocating ${n} of page size ${Number(k) >= 1048576 ? '1.00 GiB' : '2.00 MiB'} failed.  Only allocated ${maxPages} hugepages.`);
    }
  }

  // 5. IOMMU groups.
  const groups: Record<string, string[]> = {};
  for (const dev of devices) {
    if (dev.group === null) continue;
    (groups[String(dev.group)] ??= []).push(dev.address);
    log.push(`pci ${dev.address}: Adding to iommu group ${dev.group}`);
  }

  // 5b. SR-IOV: the enabled units that write sriov_numvfs run once the drivers are bound.
  const sriov = bootSriov(profile, view, devices, active);
  log.push(...sriov.log);
  failedUnits.push(...sriov.failedUnits);
  for (const vf of sriov.vfs) if (vf.group !== null) (groups[String(vf.group)] ??= []).push(vf.address);

  // 6. docker reads daemon.json when it starts at boot.
  let dockerRuntimes: string[] | null = null;
  const dockerInstalled = isInstalled(view, 'docker-ce') || isInstalled(view, 'docker.io') || !!profile.docker?.installed;
  if (dockerInstalled) dockerRuntimes = dockerRuntimesFrom(view.read('/etc/docker/daemon.json'));

  return {
    kernelRelease: kernel,
    cmdline,
    iommu: { present, active, acsOverride },
    devices,
    groups,
    modules: [...loaded].sort(),
    hugepages: hp,
    failedUnits,
    dockerRuntimes,
    log,
    sriov,
  };
}

export function dockerRuntimesFrom(json: string | null): string[] {
  const rts = ['io.containerd.runc.v2', 'runc'];
  if (!json) return rts;
  try {
    const j = JSON.parse(json) as { runtimes?: Record<string, unknown> };
    for (const k of Object.keys(j.runtimes ?? {})) if (!rts.includes(k)) rts.push(k);
  } catch {
    /* docker would refuse to start; keep defaults */
  }
  return rts;
}
