/**
 * Hardware profiles of the lab: data files in `lab/profiles/<name>.yaml`, one per scenario.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export interface ProfileDevice {
  address: string;
  class: string;
  vendor: string;
  device: string;
  name: string;
  rev?: string;
  subsystem?: string;
  /** IOMMU group when the IOMMU is on (null/absent: the device is not in a group). */
  group?: number | null;
  /** Group when the ACS override is active (defaults to `group`). */
  acs_group?: number | null;
  /** Driver the host binds when nothing else claims the device. */
  driver?: string | null;
  /** `Kernel modules:` of `lspci -k`. */
  modules?: string[];
  boot_vga?: boolean;
  /** reset_method without vendor-reset (default: `bus`). */
  reset?: string[];
  /** Device is in vendor-reset's list of supported IDs. */
  vendor_reset?: boolean;
  /** DRM nodes while a DRM driver holds it: card<card> and renderD<render> (src/lab/dev.ts). */
  drm?: { card: number; render?: number };
}

export interface ProfileGuest {
  kind: 'qm' | 'pct';
  id: number;
  name: string;
  status: 'running' | 'stopped';
  onboot?: boolean;
  mem?: number;
  disk?: string | number;
}

export interface Profile {
  name: string;
  kind: 'pve' | 'guest';
  hostname: string;
  /** Number of nodes this profile stands for (a cluster profile: its members). */
  count?: number;
  cluster?: { name: string } | null;
  cpu: { vendor: 'intel' | 'amd'; model: string; cores: number; hypervisor?: boolean };
  firmware: { iommu: boolean; uefi: boolean; secure_boot?: boolean };
  bootloader: 'grub-bios' | 'grub-uefi' | 'systemd-boot';
  esps?: string[];
  root: { fs: string; device: string };
  memory_kb: number;
  kernel: { release: string; installed: string[]; acs_patch: boolean };
  pve?: { manager: string; hash: string };
  /** Initial GRUB_CMDLINE_LINUX_DEFAULT or /etc/kernel/cmdline extra arguments. */
  cmdline: string;
  /** Modules loaded besides device drivers. */
  modules?: string[];
  packages?: Record<string, string>;
  pci: ProfileDevice[];
  guests?: ProfileGuest[];
  nvidia?: { driver: string; cuda: string; gpu: string; memory_mib: number };
  docker?: { version: string; installed: boolean };
  /** gids of the groups owning /dev/dri/card* (video) and renderD* (render) (src/lab/dev.ts). */
  dri_groups?: { video?: number; render?: number };
  /** Inventory host variables for this node. */
  vars?: Record<string, unknown>;
  /**
   * The node's APT source files, path → lines, instead of the default /etc/apt/sources.list
   * (e.g. a deb822 /etc/apt/sources.list.d/debian.sources without non-free). Lines, not one text:
   * the stubs' profile.tsv holds no newline.
   */
  apt_sources?: Record<string, string[]>;
  /** /etc/os-release of the node, its lines (default for a guest: Debian 12's). */
  os_release?: string[];
}

export const LAB_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../lab');
export const PROFILES_DIR = join(LAB_ROOT, 'profiles');

export function listProfiles(): string[] {
  return readdirSync(PROFILES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -5))
    .sort();
}

export function loadProfile(name: string): Profile {
  const names = listProfiles();
  if (!names.includes(name)) {
    throw new Error(`unknown lab scenario '${name}': known scenarios are ${names.join(', ')}`);
  }
  const p = parse(readFileSync(join(PROFILES_DIR, `${name}.yaml`), 'utf8')) as Profile;
  p.name = name;
  p.pci ??= [];
  p.guests ??= [];
  p.modules ??= [];
  return p;
}

/** Main profiles in the order of a default mixed lab. */
export const MAIN_PROFILES = [
  'intel-grub-pve8-rtx4090',
  'amd-systemdboot-zfs-pve8-rx6800',
  'pve7-kernel515',
  'shared-group-usb',
  'two-identical-gpus-bootvga',
  'iommu-off-firmware',
  'cluster3',
  'debian-guest-nvidia-docker',
];
