/**
 * What the running and installed kernels decide: version comparisons, the vfio module list, the
 * ACS override patch, the headers package, and the IOMMU parameters for the command line.
 */
import type { Facts } from '../facts/types.ts';
import { kernelAtLeast, kernelVersion as versionOf } from '../model/version.ts';
import { switchMode } from './vars.ts';

export { kernelAtLeast };

/** `vfio_virqfd` exists only below 6.2 (merged into `vfio`); listing it on 6.2+ breaks systemd-modules-load. */
export function needsVfioVirqfd(kernelVersion: string): boolean {
  return versionOf(kernelVersion) !== '' && !kernelAtLeast(kernelVersion, '6.2.0');
}

/** Modules for /etc/modules, and those that must not be listed on this kernel. */
export function vfioModules(kernelVersion: string): { modules: string[]; modulesAbsent: string[] } {
  const virqfd = needsVfioVirqfd(kernelVersion);
  return {
    modules: ['vfio', 'vfio_iommu_type1', 'vfio_pci', ...(virqfd ? ['vfio_virqfd'] : [])],
    modulesAbsent: virqfd ? [] : ['vfio_virqfd'],
  };
}

/** The kernel release carries the out-of-tree ACS override patch (Proxmox kernels do). */
export function kernelSupportsAcsOverride(facts: Facts, override?: boolean | null): boolean {
  if (typeof override === 'boolean') return override;
  return /-pve$/.test(facts.kernelRelease);
}

export function headersPackage(facts: Facts, release = facts.kernelRelease): string {
  const r = release;
  if (facts.pveMajor !== null && facts.pveMajor >= 8) return `proxmox-headers-${r}`;
  if (facts.pveMajor !== null) return `pve-headers-${r}`;
  return `linux-headers-${r}`;
}

/**
 * The IOMMU parameters for the kernel command line, kernel-aware. Intel: `intel_iommu=on` only
 * while some kernel that may boot (the running one, the next one, any installed one) is older
 * than 6.8: from 6.8 the Intel IOMMU is on by default (pve-docs qm-pci-passthrough), so on a host
 * whose every kernel is 6.8+ the parameter changes nothing and is not written; with an older
 * kernel still installed (a fallback boot entry) it is written, or that kernel boots without an
 * IOMMU. `intel_iommu_on: always | never` overrides the choice. AMD: the IOMMU is on by default.
 */
/** Does this kernel turn the IOMMU on by itself (AMD always; Intel from 6.8, as the Proxmox docs say)? */
export function iommuOnByDefault(f: Facts): boolean {
  return f.cpuVendor === 'amd' || kernelAtLeast(f.kernelVersion, '6.8.0');
}

/** The firmware setting that enables the IOMMU, in the words of the board's setup screens. */
export function firmwareIommuName(f: Facts): string {
  return f.cpuVendor === 'amd' ? 'AMD-Vi/IOMMU (and SVM)' : 'VT-d';
}

export function iommuParams(f: Facts, vars: Record<string, unknown>): { params: string[]; reason: string } {
  const list = (v: unknown, d: string[]) => (Array.isArray(v) ? v.map(String) : typeof v === 'string' && v.trim() ? v.split(/[,\s]+/).filter(Boolean) : d);
  if (f.cpuVendor !== 'intel') return { params: list(vars.iommu_params_amd, ['iommu=pt']), reason: 'AMD: the IOMMU is on by default when the firmware enables it' };
  const base = list(vars.iommu_params_intel, ['iommu=pt']);
  const mode = { on: 'always', off: 'never', auto: 'auto' }[switchMode(vars.intel_iommu_on, { on: 'always', off: 'never' })];
  const kernels = [...new Set([f.kernelRelease, f.kernelNext, ...f.kernelsInstalled].filter(Boolean))];
  const old = kernels.filter((k) => !kernelAtLeast(k, '6.8.0'));
  const want = mode === 'always' || (mode === 'auto' && old.length > 0);
  const params = want ? ['intel_iommu=on', ...base.filter((p) => p !== 'intel_iommu=on')] : base;
  const reason =
    mode !== 'auto'
      ? `intel_iommu_on: ${mode}`
      : want
        ? `intel_iommu=on: ${old.join(', ')} ${old.length === 1 ? 'is' : 'are'} older than 6.8 (the Intel IOMMU is off by default there)`
        : `no intel_iommu=on: every kernel (${kernels.join(', ')}) is 6.8 or newer, where the Intel IOMMU is on by default`;
  return { params, reason };
}
