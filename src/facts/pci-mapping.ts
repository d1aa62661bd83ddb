/**
 * The cluster's PCI resource mappings, `/etc/pve/mapping/pci.cfg`: pve-common
 * `PVE::SectionConfig` with pve-guest-common `PVE::Mapping::PCI`: the mapping id alone on a
 * line, then tab-indented `key value` properties, `map` once per entry (a property string of
 * node, path, id, subsystem-id, iommugroup, description); the digest is the SHA-1 of the whole
 * file. Parsed for the facts, printed again by the `pci_mapping` module.
 */
import { createHash } from 'node:crypto';
import { parsePropertyString } from './property-string.ts';
import { lines } from './text.ts';

export interface PciMapEntry {
  node: string;
  /** One or more paths (`0000:01:00` whole device, `0000:01:00.0` one function), `;` separated in the file. */
  path: string[];
  /** `vendor:device` */
  id: string;
  subsystemId: string | null;
  iommugroup: number | null;
  description: string | null;
  /** The property string as written in the file. */
  raw: string;
}

export interface PciMapping {
  id: string;
  description: string | null;
  mdev: boolean;
  liveMigrationCapable: boolean;
  map: PciMapEntry[];
}

export function parseMapEntry(raw: string): PciMapEntry {
  const o = parsePropertyString(raw);
  const g = o.iommugroup !== undefined ? Number(o.iommugroup) : null;
  return {
    node: o.node ?? '',
    path: (o.path ?? '').split(';').filter(Boolean),
    id: o.id ?? '',
    subsystemId: o['subsystem-id'] ?? null,
    iommugroup: g !== null && Number.isInteger(g) ? g : null,
    description: o.description ?? null,
    raw,
  };
}

/** The canonical `map` property string: keys sorted as Proxmox prints them. */
export function printMapEntry(e: Omit<PciMapEntry, 'raw'>): string {
  const o: Record<string, string> = { id: e.id };
  if (e.iommugroup !== null) o.iommugroup = String(e.iommugroup);
  o.node = e.node;
  o.path = e.path.join(';');
  if (e.subsystemId) o['subsystem-id'] = e.subsystemId;
  if (e.description) o.description = e.description;
  return Object.keys(o)
    .sort()
    .map((k) => `${k}=${o[k]}`)
    .join(',');
}

/** `/etc/pve/mapping/pci.cfg` (section config). Digest: SHA-1 of the text, as SectionConfig computes it. */
export function parsePciMappingCfg(text: string): { mappings: PciMapping[]; digest: string } {
  const mappings: PciMapping[] = [];
  let cur: PciMapping | null = null;
  for (const line of lines(text)) {
    if (/^\s*#/.test(line)) continue;
    if (line.trim() === '') {
      cur = null;
      continue;
    }
    const head = /^(\S+)\s*$/.exec(line);
    if (head && !/^\s/.test(line)) {
      cur = { id: head[1], description: null, mdev: false, liveMigrationCapable: false, map: [] };
      mappings.push(cur);
      continue;
    }
    const prop = /^\s+(\S+)(?:\s+(.*\S))?\s*$/.exec(line);
    if (!prop || !cur) continue;
    const [, k, v = ''] = prop;
    if (k === 'map') cur.map.push(parseMapEntry(v));
    else if (k === 'description') cur.description = v;
    else if (k === 'mdev') cur.mdev = v === '1';
    else if (k === 'live-migration-capable') cur.liveMigrationCapable = v === '1';
  }
  return { mappings, digest: createHash('sha1').update(text).digest('hex') };
}

/** Write a mapping file as SectionConfig does: header, required `map` lines, then optional keys sorted, a blank line. */
export function printPciMappingCfg(mappings: PciMapping[]): string {
  let out = '';
  for (const m of mappings) {
    out += `${m.id}\n`;
    for (const e of m.map) out += `\tmap ${e.raw}\n`;
    if (m.description) out += `\tdescription ${m.description}\n`;
    if (m.liveMigrationCapable) out += '\tlive-migration-capable 1\n';
    if (m.mdev) out += '\tmdev 1\n';
    out += '\n';
  }
  return out;
}
