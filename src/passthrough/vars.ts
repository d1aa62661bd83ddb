/**
 * The host variables that drive passthrough (see inventory.example.yaml), and the small readings
 * of them that every step shares.
 */

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

/** Something that stops the configuration: "expected …, found …" and the likely fix. */
export interface Problem {
  msg: string;
  hint: string;
}

export const uniq = <T>(xs: T[]): T[] => [...new Set(xs)];

/** A list variable: a YAML list, or one string split on commas and blanks; null/'' is empty. */
export function asList(v: unknown): string[] {
  if (v === null || v === undefined || v === '') return [];
  if (Array.isArray(v)) return v.map(String).filter((x) => x.trim() !== '');
  return String(v).split(/[,\s]+/).filter(Boolean);
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
