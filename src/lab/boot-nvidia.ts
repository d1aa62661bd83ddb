/**
 * The NVIDIA driver in a lab guest's boot, from what the node has installed (its dpkg status and
 * DKMS tree), not from its profile: Debian's nvidia-driver takes an NVIDIA GPU at boot when the
 * package is installed and DKMS built its module (nvidia-current) for the booted kernel, and
 * nouveau did not take the GPU first (the package's blacklist must be in the initramfs). A GPU
 * the profile says is on `nvidia` stands for a driver installed before the lab started (no DKMS
 * tree needed), as long as the package stays installed. Pure, over a NodeView.
 */
import type { BootDevice } from './boot.ts';
import type { NodeView } from './boot-config.ts';
import type { Profile } from './profile.ts';

/** The package that decides, and DKMS's module name for it on Debian. */
export const NVIDIA_PACKAGE = 'nvidia-driver';
export const NVIDIA_DKMS = 'nvidia-current';
const NVIDIA_MODULES = ['nvidia', 'nvidia_modeset', 'nvidia_drm', 'nvidia_uvm'];

/** The installed version of a package in the node's dpkg status, null when not installed. */
export function dpkgVersion(view: NodeView, pkg: string): string | null {
  const status = view.read('/var/lib/dpkg/status') ?? '';
  for (const stanza of status.split(/\n\s*\n/)) {
    const get = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(stanza)?.[1]?.trim();
    if (get('Package') === pkg && /install ok installed/.test(get('Status') ?? '')) return get('Version') ?? '';
  }
  return null;
}

/** The versions of nvidia-current DKMS built for `kernel` (/var/lib/dkms/nvidia-current/<ver>/<kernel>/x86_64/module/*.ko). */
export function nvidiaDkmsBuilt(view: NodeView, kernel: string): string | null {
  for (const ver of view.list(`/var/lib/dkms/${NVIDIA_DKMS}`)) {
    if (ver === 'source' || ver.startsWith('kernel-')) continue;
    if (view.list(`/var/lib/dkms/${NVIDIA_DKMS}/${ver}/${kernel}/x86_64/module`).some((f) => /\.ko(\.xz)?$/.test(f))) return ver;
  }
  return null;
}

/** `1:535.216.01-1~deb12u1` → `535.216.01`. */
const upstream = (v: string) => v.replace(/^\d+:/, '').replace(/-[^-]*$/, '');

/**
 * Decide the NVIDIA GPUs' driver after the host-side binding of boot.ts (vfio-pci, blacklists)
 * ran: mutates `devices` and `loaded`, appends kernel log lines.
 */
export function nvidiaBoot(profile: Profile, view: NodeView, kernel: string, devices: BootDevice[], loaded: Set<string>, log: string[], blacklist: Set<string>): void {
  const gpus = devices.filter((d) => d.vendor.toLowerCase() === '10de' && d.class.startsWith('03'));
  if (gpus.length === 0) return;
  const pkg = dpkgVersion(view, NVIDIA_PACKAGE);
  const built = nvidiaDkmsBuilt(view, kernel);
  const preinstalled = (d: BootDevice) => profile.pci.find((p) => p.address === d.address)?.driver === 'nvidia';
  let announced = false;
  for (const d of gpus) {
    if (d.driver === 'vfio-pci') continue;
    if (pkg === null) {
      // no driver package: whatever the profile says, the nvidia module is not there
      if (d.driver === 'nvidia') {
        const mods = profile.pci.find((p) => p.address === d.address)?.modules ?? [];
        d.driver = mods.includes('nouveau') && !blacklist.has('nouveau') ? 'nouveau' : null;
        if (d.driver === 'nouveau') loaded.add('nouveau');
      }
      continue;
    }
    const version = built ?? (preinstalled(d) ? (profile.nvidia?.driver ?? upstream(pkg)) : null);
    if (version === null) {
      if (!announced) log.push(`lab: ${NVIDIA_PACKAGE} ${pkg} installed but DKMS has no ${NVIDIA_DKMS} module for ${kernel}: modprobe: FATAL: Module nvidia not found in directory /lib/modules/${kernel}`);
      announced = true;
      if (d.driver === 'nvidia') d.driver = null;
      continue;
    }
    if (!announced) {
      log.push('nvidia: loading out-of-tree module taints kernel.');
      log.push(`NVRM: loading NVIDIA UNIX x86_64 Kernel Module  ${version}  (lab)`);
      for (const m of NVIDIA_MODULES) loaded.add(m);
      announced = true;
    }
    if (d.driver === 'nouveau') {
      log.push(`NVRM: GPU ${d.address}: GPU is already bound to nouveau.`);
      continue;
    }
    d.driver = 'nvidia';
  }
  if (pkg === null) for (const m of NVIDIA_MODULES) loaded.delete(m);
}
