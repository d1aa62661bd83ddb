/**
 * Guest-side facts: the VM and container configurations of a Proxmox VE node, the PCI devices
 * they use, subsystem ids and SR-IOV of each PCI device, and the DRM nodes. Pure parsers, plus
 * the probe sections that print what they read. Property strings live in property-string.ts and
 * the cluster's PCI mappings (`/etc/pve/mapping/pci.cfg`) in pci-mapping.ts; both are exported
 * from here too.
 *
 * Formats, as Proxmox itself reads and writes them:
 * - VM config (`/etc/pve/qemu-server/<vmid>.conf`): qemu-server `PVE::QemuServer::parse_vm_config`
 *   / `write_vm_config`: `key: value` lines sorted by key, `#` lines at the top are the
 *   description, then `[PENDING]` (with `delete: a,b`), `[special:cloudinit]` and one `[name]`
 *   section per snapshot.
 * - Container config (`/etc/pve/lxc/<vmid>.conf`): pve-container `PVE::LXC::Config::parse_pct_config`:
 *   the same, `lxc.*` raw keys kept in order, pending changes under `[pve:pending]`.
 * - `hostpciN`: qemu-server `PVE::QemuServer::PCI` `$hostpci_fmt`, a property string whose
 *   default key is `host` (`0000:01:00;0000:02:00.1`) unless `mapping=NAME` is given.
 */
import { createHash } from 'node:crypto';
import { parsePciMappingCfg, type PciMapping } from './pci-mapping.ts';
import { parsePropertyString } from './property-string.ts';
import { catSh, lines, lsSh } from './text.ts';

export * from './pci-mapping.ts';
export * from './property-string.ts';

// ---------------------------------------------------------------- guest configs

export interface GuestConfig {
  kind: 'qm' | 'pct';
  id: string;
  /** `/etc/pve/qemu-server/100.conf` */
  path: string;
  /** The current configuration (main section). */
  config: Record<string, string>;
  /** `[PENDING]` / `[pve:pending]`: values that apply at the next start. */
  pending: Record<string, string>;
  /** Keys the pending section deletes (`delete: a,b`). */
  pendingDelete: string[];
  /** Snapshot names. */
  snapshots: string[];
  /** Containers: raw `lxc.*` lines of the main section, in order. */
  lxc: Array<[string, string]>;
  description: string;
  /** SHA-1 of the file, as Proxmox's `digest`. */
  digest: string;
}

/**
 * A VM (`kind: 'qm'`) or container (`kind: 'pct'`) config file. Unknown or malformed lines are
 * skipped, as Proxmox does when not strict.
 */
export function parseGuestConfig(text: string, kind: 'qm' | 'pct', path = ''): GuestConfig {
  const id = /\/(\d+)\.conf$/.exec(path)?.[1] ?? '';
  const res: GuestConfig = {
    kind,
    id,
    path,
    config: {},
    pending: {},
    pendingDelete: [],
    snapshots: [],
    lxc: [],
    description: '',
    digest: createHash('sha1').update(text).digest('hex'),
  };
  type Sec = 'main' | 'pending' | 'snapshot' | 'special' | 'skip';
  let sec: Sec = 'main';
  const descr: string[] = [];
  const pendingRe = kind === 'qm' ? /^\[PENDING\]\s*$/i : /^\[pve:pending\]\s*$/i;
  for (const line of lines(text)) {
    if (/^\s*$/.test(line)) continue;
    if (pendingRe.test(line)) {
      sec = 'pending';
      continue;
    }
    if (kind === 'qm' && /^\[special:[a-z]+\]\s*$/i.test(line)) {
      sec = 'special';
      continue;
    }
    const snap = /^\[([a-z][a-z0-9_-]+)\]\s*$/i.exec(line);
    if (snap) {
      sec = 'snapshot';
      res.snapshots.push(snap[1]);
      continue;
    }
    if (/^\[[^\]]*\]\s*$/.test(line)) {
      sec = 'skip';
      continue;
    }
    if (sec !== 'main' && sec !== 'pending') continue;
    const target = sec === 'main' ? res.config : res.pending;
    const c = /^#(.*)$/.exec(line);
    if (c) {
      if (sec === 'main') descr.push(c[1]);
      continue;
    }
    if (kind === 'pct') {
      const raw = /^(lxc\.[a-z0-9_.-]+)(?::|\s*=)\s*(.*?)\s*$/.exec(line);
      if (raw) {
        if (sec === 'main') res.lxc.push([raw[1], raw[2]]);
        continue;
      }
    }
    const del = /^delete:\s*(.*\S)\s*$/.exec(line);
    if (del) {
      if (sec === 'pending') res.pendingDelete = del[1].split(/[,;\s]+/).filter(Boolean);
      continue;
    }
    const kv = /^([a-z][a-z_-]*\d*):\s*(.+?)\s*$/.exec(line);
    if (kv) target[kv[1]] = kv[2];
  }
  res.description = descr.join('\n').replace(/\s+$/, '');
  return res;
}

/** A config as `key: value` lines sorted by key, without the digest: the text of a config diff. */
export function configText(c: Record<string, string>): string {
  return Object.keys(c)
    .filter((k) => k !== 'digest')
    .sort()
    .map((k) => `${k}: ${c[k]}\n`)
    .join('');
}

/** The configuration with the pending changes applied (what `qm config` prints by default). */
export function effectiveConfig(g: Pick<GuestConfig, 'config' | 'pending' | 'pendingDelete'>): Record<string, string> {
  const out: Record<string, string> = { ...g.config, ...g.pending };
  for (const k of g.pendingDelete) delete out[k];
  return out;
}

export interface HostpciUse {
  /** `hostpci0` */
  key: string;
  /** Raw addresses (`0000:01:00`, `01:00.0`), null with a mapping. */
  host: string[] | null;
  mapping: string | null;
  options: Record<string, string>;
}

/** `hostpciN` values of a config (`0000:01:00,pcie=1,x-vga=1` or `mapping=NAME,pcie=1`). */
export function hostpciOf(config: Record<string, string>): HostpciUse[] {
  return Object.entries(config)
    .filter(([k]) => /^hostpci\d+$/.test(k))
    .sort(([a], [b]) => Number(a.slice(7)) - Number(b.slice(7)))
    .map(([key, v]) => {
      const o = parsePropertyString(v, 'host');
      return { key, host: o.host ? o.host.split(';') : null, mapping: o.mapping ?? null, options: o };
    });
}

/** `0000:01:00.1` or `01:00` → `0000:01:00` (the slot with its domain). */
export function slotOf(addr: string): string {
  const a = addr.toLowerCase();
  const full = /^[0-9a-f]{4,}:/.test(a) && a.split(':').length === 3 ? a : `0000:${a}`;
  return full.replace(/\.[0-7]$/, '');
}

/** The probe's `pve-guests` section: `@@file <path>` then the file, for each guest config. */
export function parseGuestFiles(text: string): GuestConfig[] {
  const out: GuestConfig[] = [];
  const parts = text.split(/^@@file (.+)$/m);
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const path = parts[i].trim();
    const body = parts[i + 1].replace(/^\n/, '');
    const kind = /\/lxc\/\d+\.conf$/.test(path) ? 'pct' : /\/qemu-server\/\d+\.conf$/.test(path) ? 'qm' : null;
    if (kind) out.push(parseGuestConfig(body, kind, path));
  }
  return out.sort((a, b) => (a.kind === b.kind ? Number(a.id) - Number(b.id) : a.kind === 'qm' ? -1 : 1));
}


// ---------------------------------------------------------------- PCI extras, DRM

export interface PciExtra {
  /** `1043:889c` (`0000:0000` when the device has none), null when sysfs has no such file. */
  subsystemId: string | null;
  sriovTotalVfs: number | null;
  sriovNumVfs: number | null;
  /** The VFs of a physical function (`virtfnN` → `../0000:00:02.1`), in N order. */
  sriovVfs: string[];
}

/**
 * `grep -H . /sys/bus/pci/devices/ * /{subsystem_vendor,subsystem_device,sriov_totalvfs,sriov_numvfs}`,
 * then one `<pf>/virtfnN:<link target>` line per VF link → address → extras.
 */
export function parsePciExtra(text: string): Record<string, PciExtra> {
  const raw: Record<string, Record<string, string>> = {};
  const vfs: Record<string, Array<[number, string]>> = {};
  for (const line of lines(text)) {
    const v = /\/devices\/([0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\/virtfn(\d+):(?:.*\/)?([0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\s*$/i.exec(line);
    if (v) {
      (vfs[v[1].toLowerCase()] ??= []).push([Number(v[2]), v[3].toLowerCase()]);
      raw[v[1].toLowerCase()] ??= {};
      continue;
    }
    const m = /\/devices\/([0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\/([a-z_]+):(.*)$/i.exec(line);
    if (m) (raw[m[1].toLowerCase()] ??= {})[m[2]] = m[3].trim();
  }
  const hex = (v: string | undefined) => (v ? v.replace(/^0x/i, '').toLowerCase().padStart(4, '0') : null);
  const int = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : null);
  const out: Record<string, PciExtra> = {};
  for (const [addr, r] of Object.entries(raw)) {
    const sv = hex(r.subsystem_vendor);
    const sd = hex(r.subsystem_device);
    out[addr] = {
      // 0000:0000 is a value too: Proxmox's mapping check (PVE::SysFSTools::pci_device_info) expects it.
      subsystemId: sv && sd ? `${sv}:${sd}` : null,
      sriovTotalVfs: int(r.sriov_totalvfs),
      sriovNumVfs: int(r.sriov_numvfs),
      sriovVfs: (vfs[addr] ?? []).sort((a, b) => a[0] - b[0]).map(([, a]) => a),
    };
  }
  return out;
}

export interface DriNode {
  /** `renderD128` or `card0` */
  name: string;
  /** `/dev/dri/renderD128` */
  path: string;
  major: number;
  minor: number;
  /** Owning group name (`render`, `video`). */
  group: string;
  gid: number;
  /** `/dev/dri/by-path/pci-0000:00:02.0-render`, null when no stable name points at it. */
  byPath: string | null;
  /** PCI address behind it, from the by-path name. */
  pciAddress: string | null;
}

/**
 * The `dri` section: `ls -l /dev/dri/by-path` (symlinks `pci-0000:00:02.0-render -> ../renderD128`),
 * then a line `@@stat`, then `stat -c '%n %t %T %G %g' /dev/dri/*` (major/minor in hex).
 */
export function parseDri(text: string): DriNode[] {
  const [ls, st = ''] = text.split(/^@@stat$/m);
  const links = new Map<string, string>();
  for (const line of lines(ls)) {
    const m = /\s(pci-\S+)\s+->\s+\.\.\/(\S+)\s*$/.exec(line);
    if (m) links.set(m[2], m[1]);
  }
  const out: DriNode[] = [];
  for (const line of lines(st)) {
    const m = /^(\/dev\/dri\/(card\d+|renderD\d+))\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(\S+)\s+(\d+)\s*$/i.exec(line);
    if (!m) continue;
    const bp = links.get(m[2]) ?? null;
    out.push({
      name: m[2],
      path: m[1],
      major: Number.parseInt(m[3], 16),
      minor: Number.parseInt(m[4], 16),
      group: m[5],
      gid: Number(m[6]),
      byPath: bp ? `/dev/dri/by-path/${bp}` : null,
      pciAddress: bp ? (/^pci-([0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])-/i.exec(bp)?.[1] ?? null) : null,
    });
  }
  return out;
}

// ---------------------------------------------------------------- probe sections

/** Probe sections of the guest side (section name → POSIX sh snippet; each exits 0, reads no stdin). */
export const GUEST_SECTIONS: Array<[string, string]> = [
  [
    'pve-guests',
    `for f in /etc/pve/qemu-server/*.conf /etc/pve/lxc/*.conf; do [ -f "$f" ] && { printf '@@file %s\\n' "$f"; ${catSh('"$f"')}; echo; }; done`,
  ],
  // Shell builtins for the small files and the listing (no process: catSh, lsSh).
  ['pve-nodes', `[ -d /etc/pve/nodes ] && ${lsSh('/etc/pve/nodes')}`],
  ['pci-mapping', `[ -f /etc/pve/mapping/pci.cfg ] && ${catSh('/etc/pve/mapping/pci.cfg')}`],
  [
    'pci-extra',
    `grep -s -H . /sys/bus/pci/devices/*/subsystem_vendor /sys/bus/pci/devices/*/subsystem_device /sys/bus/pci/devices/*/sriov_totalvfs /sys/bus/pci/devices/*/sriov_numvfs; ` +
      `for l in /sys/bus/pci/devices/*/virtfn*; do [ -L "$l" ] && printf '%s:%s\\n' "$l" "$(readlink "$l")"; done; true`,
  ],
  ['dri', `if [ -d /dev/dri ]; then ls -l /dev/dri/by-path 2>/dev/null; echo @@stat; stat -c '%n %t %T %G %g' /dev/dri/card* /dev/dri/renderD* 2>/dev/null; fi`],
];

export interface GuestFacts {
  vms: GuestConfig[];
  containers: GuestConfig[];
  /** Names of the cluster's nodes (`/etc/pve/nodes/*`); the node itself alone when standalone. */
  pveNodes: string[];
  pciMappings: PciMapping[];
  pciExtra: Record<string, PciExtra>;
  dri: DriNode[];
}

/** The guest-side facts from the probe's sections. Pure. */
export function parseGuestSections(sec: (k: string) => string): GuestFacts {
  const all = parseGuestFiles(sec('pve-guests'));
  return {
    vms: all.filter((g) => g.kind === 'qm'),
    containers: all.filter((g) => g.kind === 'pct'),
    pveNodes: sec('pve-nodes').split('\n').map((l) => l.trim()).filter(Boolean).sort(),
    pciMappings: parsePciMappingCfg(sec('pci-mapping')).mappings,
    pciExtra: parsePciExtra(sec('pci-extra')),
    dri: parseDri(sec('dri')),
  };
}
