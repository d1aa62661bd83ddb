/**
 * The DRM device nodes of a lab node (`/dev/dri`), for the iGPU-in-a-container roles. A profile
 * device with `drm: { card, render }` has `card<card>` (226:card, group video) and
 * `renderD<render>` (226:render, group render) and their `/dev/dri/by-path/pci-<address>-card|render`
 * names while its booted driver is a DRM driver (not vfio-pci, not none: a GPU taken by vfio-pci
 * or blacklisted has no DRM node, as on a real host). The boot writes them to `gen/dri.tsv`;
 * node-dev.sh makes them inside the node's own mount namespace only (the machine's /dev is never
 * touched). Group ids come from the profile's `dri_groups`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Profile } from './profile.ts';

/** DRM major number (include/uapi/drm/drm.h: DRM_MAJOR). */
export const DRM_MAJOR = 226;

export interface DriEntry {
  name: string;
  major: number;
  minor: number;
  group: 'video' | 'render';
  gid: number;
  address: string;
  kind: 'card' | 'render';
}

/** The DRM nodes the booted devices have. */
export function driEntries(p: Profile, booted: Array<{ address: string; driver: string | null }>): DriEntry[] {
  const out: DriEntry[] = [];
  const groups = { video: 44, render: 993, ...(p.dri_groups ?? {}) };
  for (const d of p.pci) {
    if (!d.drm) continue;
    const drv = booted.find((b) => b.address === d.address)?.driver ?? null;
    if (!drv || drv === 'vfio-pci' || drv === 'pci-stub') continue;
    out.push({ name: `card${d.drm.card}`, major: DRM_MAJOR, minor: d.drm.card, group: 'video', gid: groups.video, address: d.address, kind: 'card' });
    if (d.drm.render !== undefined) out.push({ name: `renderD${d.drm.render}`, major: DRM_MAJOR, minor: d.drm.render, group: 'render', gid: groups.render, address: d.address, kind: 'render' });
  }
  return out;
}

/** `gen/dri.tsv`: name, major, minor, group, gid, PCI address, kind; one line per node (no file when none). */
export function writeDri(genDir: string, p: Profile, booted: Array<{ address: string; driver: string | null }>): void {
  const e = driEntries(p, booted);
  if (!e.length) return;
  writeFileSync(join(genDir, 'dri.tsv'), e.map((x) => [x.name, x.major, x.minor, x.group, x.gid, x.address, x.kind].join('\t')).join('\n') + '\n');
}
