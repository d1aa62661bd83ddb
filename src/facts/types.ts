/**
 * Facts: what one probe (a single remote exec) reads of a host, parsed by pure functions in
 * `facts/`. Templates see them as `facts.<name>`. Every field is present; unknowns are null
 * or empty, never undefined, so templates and `when:` expressions can rely on the shape.
 */
import type { DriNode, GuestConfig, PciMapping } from './guests.ts';

export interface PciDevice {
  /** Full address, `0000:01:00.0`. */
  address: string;
  /** Slot without domain and function, `01:00`. */
  slot: string;
  /** `10de` */
  vendor: string;
  /** `2684` */
  device: string;
  /** `vendor:device`, `10de:2684` */
  id: string;
  /** Class code without the 0x and the prog-if, `0300`. */
  class: string;
  /** Kernel driver in use, null when none. */
  driver: string | null;
  /** Module that provides the driver in use (`bochs` for driver `bochs-drm`), null when built in or none. */
  driverModule?: string | null;
  /** true when `/sys/bus/pci/devices/<addr>/boot_vga` is 1. */
  bootVga: boolean;
  /** Contents of `reset_method` (space separated), [] when absent. */
  resetMethod: string[];
  /** IOMMU group number, null when the IOMMU is off. */
  iommuGroup: number | null;
  /** Name from `lspci -nn` when available. */
  name: string;
  /** `subsystem_vendor:subsystem_device` (`1043:889c`), null when none or unknown. */
  subsystemId?: string | null;
  /** SR-IOV: `sriov_totalvfs` (null when the device cannot), `sriov_numvfs` (VFs now). */
  sriovTotalVfs?: number | null;
  sriovNumVfs?: number | null;
  /** SR-IOV: the VFs that exist now (`virtfnN` links of a physical function, in N order), [] when none. */
  sriovVfs?: string[];
}

export type Bootloader = 'grub-bios' | 'grub-uefi' | 'systemd-boot' | 'unknown';

export interface Facts {
  hostname: string;
  /** `intel` | `amd` | `other` from /proc/cpuinfo vendor_id. */
  cpuVendor: 'intel' | 'amd' | 'other';
  /** vmx/svm flag present. */
  cpuVirtualization: boolean;
  /** `uname -r`, e.g. `6.8.12-4-pve`. */
  kernelRelease: string;
  /** Kernel release coerced to semver, `6.8.12`. */
  kernelVersion: string;
  /** Installed kernels (`/boot/vmlinuz-*`), newest first; the running one always included. */
  kernelsInstalled: string[];
  /** The kernel the next boot starts: a proxmox-boot-tool pin (next-boot first), else the newest installed. */
  kernelNext: string;
  /** `pve-manager` version (`8.2.4`), null when not a Proxmox VE host. */
  pveVersion: string | null;
  /** Major of pveVersion, null when not Proxmox VE. */
  pveMajor: number | null;
  bootloader: Bootloader;
  /** Why we think so: the lines of `proxmox-boot-tool status` / `efibootmgr -v` that decided. */
  bootloaderEvidence: string[];
  /** The kernel command line the bootloader is configured with (GRUB_CMDLINE_LINUX_DEFAULT + GRUB_CMDLINE_LINUX after drop-ins, or /etc/kernel/cmdline). */
  cmdlineConfigured: string;
  /** `/proc/cmdline` */
  cmdlineRunning: string;
  iommu: {
    active: boolean;
    /** Lines from the kernel log or sysfs that show it. */
    evidence: string[];
    /** Interrupt remapping reported enabled. */
    irqRemapping: boolean;
    /** An IOMMU unit exists (`/sys/class/iommu/*`), even if translation is off. */
    present: boolean;
  };
  /** group number → device addresses. */
  iommuGroups: Record<string, string[]>;
  pci: PciDevice[];
  /** Loaded modules (`lsmod`/`/proc/modules`). */
  modules: string[];
  memory: {
    totalKb: number;
    hugepagesTotal: number;
    hugepagesFree: number;
    hugepageSizeKb: number;
  };
  /** Installed packages: name → version. */
  packages: Record<string, string>;
  /** DKMS: module name → kernel releases it is installed for. */
  dkms: Record<string, string[]>;
  docker: {
    installed: boolean;
    runtimes: string[];
  };
  cluster: {
    /**
     * Cluster name (`Name:` of `pvecm status`, else `cluster_name` of corosync.conf); null for a
     * standalone node, and for a member whose name no source gave (see `member`).
     */
    name: string | null;
    /**
     * A member of a Proxmox cluster, from evidence that does not need the `Name:` line: a
     * corosync.conf in /etc/pve or /etc/corosync, `pvecm nodes`, or a quorum block in
     * `pvecm status`. Absent in hand-made facts: then `name !== null` decides.
     */
    member?: boolean;
    /** Why the member's quorum could not be read (corosync down: "Cannot initialize CMAP service"). */
    quorumUnknown?: string;
    quorate: boolean;
    expectedVotes: number;
    totalVotes: number;
    /** Member names (`pvecm nodes`, else the corosync.conf nodelist), never corosync addresses. */
    nodes: string[];
  };
  /** Running guests. */
  guests: Array<{ kind: 'qm' | 'pct'; id: string; name: string; status: string }>;
  /** `/proc/sys/kernel/random/boot_id` */
  bootId: string;
  /** VM configs (`/etc/pve/qemu-server/*.conf`) of this node, running or not. */
  vms: GuestConfig[];
  /** Container configs (`/etc/pve/lxc/*.conf`) of this node. */
  containers: GuestConfig[];
  /** Proxmox VE node names of the cluster (`/etc/pve/nodes/*`), [] when not Proxmox VE. */
  pveNodes: string[];
  /** The cluster's PCI resource mappings (`/etc/pve/mapping/pci.cfg`). */
  pciMappings: PciMapping[];
  /** DRM nodes (`/dev/dri`), with their stable `/dev/dri/by-path` names. */
  dri: DriNode[];
}
