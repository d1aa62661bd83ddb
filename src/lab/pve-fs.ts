/**
 * The lab's /etc/pve: one directory per cluster (`<lab>/clusters/<name>/pve`), or per standalone
 * node (`<node>/pve`), bind-mounted as /etc/pve inside each node (node-ns.sh), so that every
 * member of a cluster sees the same files as pmxcfs makes them see: `nodes/<node>/qemu-server`,
 * `nodes/<node>/lxc`, `mapping/pci.cfg`. Each node also binds its own `nodes/<node>/qemu-server`,
 * `nodes/<node>/lxc` and `nodes/<node>` on `/etc/pve/qemu-server`, `/etc/pve/lxc` and
 * `/etc/pve/local` (pmxcfs shows them as symlinks to the same places).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Profile, ProfileDevice, ProfileGuest } from './profile.ts';

/** The initial config of a profile's guest, in qemu-server's / pve-container's format (keys sorted). */
export function guestConfigText(g: ProfileGuest & { config?: Record<string, string | number> }): string {
  const c: Record<string, string> =
    g.kind === 'qm'
      ? { name: g.name, memory: String(g.mem ?? 2048), ostype: 'l26', cores: '2', scsihw: 'virtio-scsi-single', scsi0: `local-lvm:vm-${g.id}-disk-0,size=${Math.round(Number(g.disk ?? 32))}G`, net0: 'virtio=BC:24:11:00:00:01,bridge=vmbr0', boot: 'order=scsi0' }
      : { hostname: g.name, memory: String(g.mem ?? 2048), ostype: 'debian', arch: 'amd64', rootfs: `local-lvm:vm-${g.id}-disk-0,size=8G`, unprivileged: '1' };
  if (g.onboot) c.onboot = '1';
  for (const [k, v] of Object.entries(g.config ?? {})) c[k] = String(v);
  return Object.keys(c)
    .sort()
    .map((k) => `${k}: ${c[k]}\n`)
    .join('');
}

/** Create the node's /etc/pve view (shared with its cluster) and its guests' configs; records the directory in `<node>/pve-dir`. */
export function initPveFs(labDir: string, nodeDir: string, name: string, cluster: string | null, profile: Profile): void {
  if (profile.kind !== 'pve') return;
  const pve = cluster ? join(labDir, 'clusters', cluster, 'pve') : join(nodeDir, 'pve');
  for (const d of [`nodes/${name}/qemu-server`, `nodes/${name}/lxc`, 'mapping', 'priv/lock', 'qemu-server', 'lxc', 'local']) mkdirSync(join(pve, d), { recursive: true });
  for (const g of profile.guests ?? []) {
    const f = join(pve, 'nodes', name, g.kind === 'qm' ? 'qemu-server' : 'lxc', `${g.id}.conf`);
    if (!existsSync(f)) writeFileSync(f, guestConfigText(g));
  }
  writeFileSync(join(nodeDir, 'pve-dir'), pve + '\n');
}

/** sysfs files of the guest side for one device: subsystem ids (from the profile's `subsystem: "... [1043:889c]"`) and SR-IOV. */
export function writePciExtra(devDir: string, d: ProfileDevice | undefined): void {
  if (!d) return;
  const m = /\[([0-9a-f]{4}):([0-9a-f]{4})\]\s*$/i.exec(d.subsystem ?? '');
  writeFileSync(join(devDir, 'subsystem_vendor'), `0x${m ? m[1].toLowerCase() : '0000'}\n`);
  writeFileSync(join(devDir, 'subsystem_device'), `0x${m ? m[2].toLowerCase() : '0000'}\n`);
  const vfs = (d as ProfileDevice & { sriov_totalvfs?: number }).sriov_totalvfs;
  if (vfs) {
    writeFileSync(join(devDir, 'sriov_totalvfs'), `${vfs}\n`);
    writeFileSync(join(devDir, 'sriov_numvfs'), '0\n');
  }
}
