/**
 * A DRM node (the iGPU's render node) given to an LXC container on Proxmox VE: which node, how the
 * container's config says it, and whether a config already says it. Pure functions; the module
 * `pve_ct_dev` (src/modules/pve_ct_dev.ts) and the gate `gate-igpu-lxc` use them.
 *
 * Two forms, as pve-container reads them (src/PVE/LXC/Config.pm):
 * - `devN: /dev/dri/renderD128,gid=104[,mode=0660][,uid=0]` (`$dev_desc`, N < 256; set through
 *   `pct set`, which checks the path starts with /dev/, has no `.`/`..` component and is a block or
 *   character device on the node: PVE::LXC::Tools::get_device_mode_and_rdev). Added in
 *   pve-container 5.0.7 (shipped with Proxmox VE 8.1); the GUI offers it from 8.2.
 * - before that, two raw lines `pct` cannot set (they are written into the file):
 *   `lxc.cgroup2.devices.allow: c 226:128 rwm` and
 *   `lxc.mount.entry: /dev/dri/renderD128 dev/dri/renderD128 none bind,optional,create=file`.
 *
 * Card numbering (`card0`/`renderD128`) can change between boots; the node is chosen through its
 * stable name `/dev/dri/by-path/pci-<address>-render`, never assumed.
 */
import type { DriNode } from '../facts/guests.ts';
import { parsePropertyString } from '../facts/property-string.ts';
import type { Facts } from '../facts/types.ts';
import { compareVersions } from '../model/version.ts';
import { fullFunction } from './selection.ts';

/** pve-container's `$MAX_DEVICES`: dev0 … dev255. */
export const MAX_DEVICES = 256;

/** The DRM node of a PCI function: its render node (`renderD*`) or its card node (`card*`), found through by-path. */
export function driNodeFor(dri: DriNode[], slot: string, kind: 'render' | 'card' = 'render'): DriNode | null {
  const addr = fullFunction(slot);
  if (!addr) return null;
  const prefix = kind === 'render' ? 'renderD' : 'card';
  return dri.find((d) => d.pciAddress === addr && d.name.startsWith(prefix)) ?? null;
}

/**
 * Which form this node takes: `dev` when pve-container is 5.0.7 or later (from the package
 * database), or, when that version is unknown, Proxmox VE 8.2 or later; otherwise `lxc`.
 * Null: not Proxmox VE, or older than 7 (cgroup v1: neither form here applies).
 */
export function devMethod(facts: Pick<Facts, 'pveVersion' | 'pveMajor' | 'packages'>): 'dev' | 'lxc' | null {
  if (facts.pveVersion === null || (facts.pveMajor ?? 0) < 7) return null;
  const pc = facts.packages?.['pve-container'];
  if (pc) return compareVersions(pc, '5.0.7') >= 0 ? 'dev' : 'lxc';
  return compareVersions(facts.pveVersion, '8.2') >= 0 ? 'dev' : 'lxc';
}

export interface DevWant {
  path: string;
  /** Another name of the same node an existing entry may use (its /dev/dri/by-path name). */
  alsoPath?: string | null;
  gid?: number | null;
  uid?: number | null;
  mode?: string | null;
}

/** The `devN` value: `path,gid=G[,mode=M][,uid=U]` (the path is the default key). */
export function devValue(w: DevWant): string {
  const parts = [w.path];
  if (w.gid !== undefined && w.gid !== null) parts.push(`gid=${w.gid}`);
  if (w.mode) parts.push(`mode=${w.mode}`);
  if (w.uid !== undefined && w.uid !== null) parts.push(`uid=${w.uid}`);
  return parts.join(',');
}

/** A `devN` value parsed (path the default key); null when it is not a property string with a path. */
export function parseDev(value: string): Record<string, string> | null {
  try {
    const p = parsePropertyString(value, 'path');
    return p.path ? p : null;
  } catch {
    return null;
  }
}

/** Whether an existing `devN` value gives what is wanted (same path, gid, uid, mode; deny-write off). */
export function devSatisfies(have: string, want: DevWant): boolean {
  const h = parseDev(have);
  if (!h || (h.path !== want.path && (!want.alsoPath || h.path !== want.alsoPath))) return false;
  const num = (v: string | undefined) => (v === undefined ? null : Number(v));
  if (num(h.gid) !== (want.gid ?? null)) return false;
  if (num(h.uid) !== (want.uid ?? null)) return false;
  if ((h.mode ?? null) !== (want.mode || null)) return false;
  return !/^(1|yes|on|true)$/i.test(h['deny-write'] ?? '');
}

/** The `devN` keys of a config, in index order. */
export function devKeys(config: Record<string, string>): string[] {
  return Object.keys(config)
    .filter((k) => /^dev\d+$/.test(k))
    .sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
}

/** The key of the `devN` entry that names this node, by its path or its stable by-path name (any options), else null. */
export function devKeyFor(config: Record<string, string>, node: Pick<DriNode, 'path' | 'byPath'>): string | null {
  return devKeys(config).find((k) => {
    const p = parseDev(config[k]!)?.path;
    return p !== undefined && (p === node.path || (node.byPath !== null && p === node.byPath));
  }) ?? null;
}

/** The first `devN` not used by any of the configs (current and pending), null when all 256 are. */
export function freeDevKey(...configs: Array<Record<string, string>>): string | null {
  for (let i = 0; i < MAX_DEVICES; i++) if (!configs.some((c) => `dev${i}` in c)) return `dev${i}`;
  return null;
}

/** The two raw lines that give a container a character device before `devN` existed. */
export function lxcLines(node: Pick<DriNode, 'path' | 'major' | 'minor'>): Array<[string, string]> {
  return [
    ['lxc.cgroup2.devices.allow', `c ${node.major}:${node.minor} rwm`],
    ['lxc.mount.entry', `${node.path} ${node.path.slice(1)} none bind,optional,create=file`],
  ];
}

/** `c 226:128 rwm` → {type, major, minor, access}; null when not that shape. */
export function parseDeviceAllow(v: string): { type: string; major: number; minor: number; access: string } | null {
  const m = /^([abc])\s+(\d+):(\d+)\s+([rwm]+)$/.exec(v.trim());
  return m ? { type: m[1]!, major: Number(m[2]), minor: Number(m[3]), access: m[4]! } : null;
}

/** The source and target of a `lxc.mount.entry` value. */
export function parseMountEntry(v: string): { source: string; target: string; options: string[] } | null {
  const f = v.trim().split(/\s+/);
  if (f.length < 4) return null;
  return { source: f[0]!, target: f[1]!, options: f[3]!.split(',') };
}

/** Whether the raw lines already give this device: an allow rule with its major:minor and rw, and a bind mount of its path. */
export function lxcSatisfied(lxc: Array<[string, string]>, node: Pick<DriNode, 'path' | 'major' | 'minor'>): { allow: boolean; mount: boolean } {
  const allow = lxc.some(([k, v]) => {
    if (k !== 'lxc.cgroup2.devices.allow') return false;
    const a = parseDeviceAllow(v);
    return !!a && a.type === 'c' && a.major === node.major && a.minor === node.minor && a.access.includes('r') && a.access.includes('w');
  });
  const mount = lxc.some(([k, v]) => {
    if (k !== 'lxc.mount.entry') return false;
    const m = parseMountEntry(v);
    return !!m && m.source === node.path && m.target === node.path.slice(1) && m.options.includes('bind');
  });
  return { allow, mount };
}

/**
 * The config file with the missing raw lines added at the end of its main section (where
 * pve-container writes `lxc.*` lines), before `[pve:pending]` and snapshot sections. A mount entry
 * for the same target in the container (a stale source) is replaced in place.
 */
export function withLxcLines(text: string, add: Array<[string, string]>): string {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  let end = lines.findIndex((l) => /^\[[^\]]*\]\s*$/.test(l));
  if (end < 0) end = lines.length;
  // the main section ends before the blank lines that precede a section header
  while (end > 0 && /^\s*$/.test(lines[end - 1]!)) end--;
  const main = lines.slice(0, end);
  const rest = lines.slice(end);
  for (const [k, v] of add) {
    if (k === 'lxc.mount.entry') {
      const target = parseMountEntry(v)?.target;
      const i = main.findIndex((l) => {
        const m = /^lxc\.mount\.entry(?::|\s*=)\s*(.*)$/.exec(l);
        return !!m && parseMountEntry(m[1]!)?.target === target;
      });
      if (i >= 0) {
        main[i] = `${k}: ${v}`;
        continue;
      }
    }
    main.push(`${k}: ${v}`);
  }
  return [...main, ...rest].join('\n') + '\n';
}
