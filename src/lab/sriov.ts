/**
 * SR-IOV in the lab: what the kernel does with `sriov_numvfs`, and the virtual functions (VFs)
 * that appear in the node's sysfs, lspci and IOMMU groups. Used at boot (boot.ts runs the
 * enabled systemd units that write `sriov_numvfs`, node.ts writes their VFs into gen/) and at
 * run time (`systemctl restart <unit>` in a node runs sriov-cli.ts, which changes gen/ the same
 * way, so the next probe sees the VFs at once).
 *
 * The kernel's rules (drivers/pci/iov.c, sriov_numvfs_store): more than sriov_totalvfs is -ERANGE;
 * the same count is a no-op; no PF driver with sriov_configure is -ENOENT ("Driver does not
 * support SRIOV configuration via sysfs"); a new non-zero count while VFs exist is -EBUSY ("N VFs
 * already enabled. Disable before enabling M VFs"); 0 removes them all.
 * VF k (0-based) has routing id PF + First VF Offset + k * VF Stride (PCIe SR-IOV capability), so
 * an iGPU at 00:02.0 with offset 1 and stride 1 gets 00:02.1, 00:02.2, ...
 *
 * What the lab reads is the unit file on the node (its ExecStartPre waits for a driver, its
 * ExecStart lines `echo N > /sys/bus/pci/devices/ADDR/sriov_numvfs`, optionally guarded by
 * `grep -qx N /sys/.../sriov_numvfs ||`), never passthru's variables. A shell writing the sysfs
 * file by hand inside a node only changes the file (the lab cannot hook a plain write): use the
 * unit (or reboot) there.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { NodeView } from './boot-config.ts';
import type { BootDevice } from './boot.ts';
import type { Profile, ProfileDevice } from './profile.ts';

/** The SR-IOV capability of a profile device (`sriov_totalvfs` plus how its VFs look). */
export interface ProfileSriov {
  /** First VF Offset and VF Stride of the capability (routing-id arithmetic). */
  offset?: number;
  stride?: number;
  /** The VFs' device id (`46d3`: an Intel iGPU's VFs have the PF's id). */
  vf_device?: string;
  /** Driver the host binds to a new VF (null: none). */
  vf_driver?: string | null;
  /** `lspci` name of a VF (default: the PF's). */
  vf_name?: string;
}

export type SriovProfileDevice = ProfileDevice & { sriov_totalvfs?: number; sriov?: ProfileSriov };

export interface LabVf {
  address: string;
  pf: string;
  /** 0-based: the PF's `virtfn<index>` link. */
  index: number;
  vendor: string;
  device: string;
  class: string;
  name: string;
  subsystem: string;
  modules: string[];
  driver: string | null;
  /** IOMMU group (null when the IOMMU is off). */
  group: number | null;
}

/** The PFs of a profile: devices with `sriov_totalvfs`. */
export function sriovPfs(p: Profile): SriovProfileDevice[] {
  return (p.pci as SriovProfileDevice[]).filter((d) => typeof d.sriov_totalvfs === 'number' && d.sriov_totalvfs > 0);
}

/** `0000:00:02.0` + routing-id delta → the address (VFs may spill onto the next bus numbers). */
export function addRid(address: string, delta: number): string {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(address);
  if (!m) throw new Error(`not a PCI address: ${address}`);
  const rid = (Number.parseInt(m[2]!, 16) << 8) + (Number.parseInt(m[3]!, 16) << 3) + Number(m[4]) + delta;
  const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
  return `${m[1]!.toLowerCase()}:${hex((rid >> 8) & 0xff, 2)}:${hex((rid >> 3) & 0x1f, 2)}.${rid & 7}`;
}

/**
 * The first `n` VFs of a PF as the kernel creates them. IOMMU groups: numbers after every group
 * of the profile, each VF its own (the kernel allocates the next free group ids), fixed per PF
 * and index so a VF keeps its group across boots.
 */
export function vfsOf(p: Profile, pf: SriovProfileDevice, n: number, driverOfPf: string | null, iommuActive: boolean): LabVf[] {
  const s = pf.sriov ?? {};
  const offset = s.offset ?? 1;
  const stride = s.stride ?? 1;
  let base = Math.max(-1, ...p.pci.map((d) => d.group ?? -1)) + 1;
  for (const other of sriovPfs(p)) {
    if (other.address === pf.address) break;
    base += other.sriov_totalvfs ?? 0;
  }
  const vfDriver = s.vf_driver === undefined ? driverOfPf : s.vf_driver;
  const out: LabVf[] = [];
  for (let k = 0; k < Math.min(n, pf.sriov_totalvfs ?? 0); k++) {
    out.push({
      address: addRid(pf.address, offset + k * stride),
      pf: pf.address,
      index: k,
      vendor: pf.vendor,
      device: s.vf_device ?? pf.device,
      class: pf.class,
      name: s.vf_name ?? pf.name,
      subsystem: pf.subsystem ?? '',
      modules: pf.modules ?? [],
      driver: vfDriver ?? null,
      group: iommuActive ? base + k : null,
    });
  }
  return out;
}

// ---------- the units that write sriov_numvfs ----------

export interface SriovWrite {
  address: string;
  n: number;
}

export interface SriovUnit {
  name: string;
  /** Devices whose driver an ExecStartPre waits for. */
  waitDriver: string[];
  /** ExecStart lines, in order: an optional `grep -qx N file ||` guard, then the writes. */
  execs: Array<{ guard: SriovWrite | null; writes: SriovWrite[] }>;
}

const ADDR = '([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7])';

/** A unit file's SR-IOV content (null when it writes no sriov_numvfs). */
export function parseSriovUnit(name: string, text: string): SriovUnit | null {
  if (!/sriov_numvfs/.test(text)) return null;
  const unit: SriovUnit = { name, waitDriver: [], execs: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || line.startsWith(';')) continue;
    const pre = /^ExecStartPre=(.*)$/.exec(line);
    if (pre) {
      for (const m of pre[1]!.matchAll(new RegExp(`-e /sys/bus/pci/devices/${ADDR}/driver`, 'g'))) unit.waitDriver.push(m[1]!.toLowerCase());
      continue;
    }
    const ex = /^ExecStart=(.*)$/.exec(line);
    if (!ex) continue;
    const g = new RegExp(`grep -qx (\\d+) /sys/bus/pci/devices/${ADDR}/sriov_numvfs\\s*\\|\\|`).exec(ex[1]!);
    const writes = [...ex[1]!.matchAll(new RegExp(`echo (\\d+)\\s*>\\s*/sys/bus/pci/devices/${ADDR}/sriov_numvfs`, 'g'))].map((m) => ({ address: m[2]!.toLowerCase(), n: Number(m[1]) }));
    if (writes.length) unit.execs.push({ guard: g ? { address: g[2]!.toLowerCase(), n: Number(g[1]) } : null, writes });
  }
  return unit;
}

/** Units of /etc/systemd/system that are enabled (linked from a `*.wants` directory) and write sriov_numvfs, in name order. */
export function enabledSriovUnits(view: NodeView): SriovUnit[] {
  const dir = '/etc/systemd/system';
  const wants = view.list(dir).filter((f) => f.endsWith('.wants'));
  const out: SriovUnit[] = [];
  for (const f of view.list(dir).filter((x) => x.endsWith('.service'))) {
    if (!wants.some((w) => view.list(`${dir}/${w}`).includes(f))) continue;
    const u = parseSriovUnit(f, view.read(`${dir}/${f}`) ?? '');
    if (u) out.push(u);
  }
  return out;
}

// ---------- the kernel ----------

export interface PfState {
  address: string;
  totalvfs: number;
  numvfs: number;
  driver: string | null;
}

/** Drivers of the lab that implement sriov_configure (vfio-pci only with enable_sriov, which the lab has not). */
const noSriovConfigure = (driver: string | null) => driver === null || driver === 'vfio-pci';

/** One write to sriov_numvfs, as sriov_numvfs_store does it. Mutates `pf` on success. */
export function writeNumvfs(pf: PfState, n: number): { ok: boolean; error?: string; log: string[] } {
  const who = `${pf.driver ?? 'pci'} ${pf.address}`;
  if (n > pf.totalvfs) return { ok: false, error: 'write error: Numerical result out of range', log: [] };
  if (n === pf.numvfs) return { ok: true, log: [] };
  if (noSriovConfigure(pf.driver)) return { ok: false, error: 'write error: No such file or directory', log: [`pci ${pf.address}: Driver does not support SRIOV configuration via sysfs`] };
  if (n === 0) {
    pf.numvfs = 0;
    return { ok: true, log: [`${who}: Disabled SR-IOV`] };
  }
  if (pf.numvfs !== 0) return { ok: false, error: 'write error: Device or resource busy', log: [`${who}: ${pf.numvfs} VFs already enabled. Disable before enabling ${n} VFs`] };
  pf.numvfs = n;
  return { ok: true, log: [`${who}: Enabled ${n} VFs`] };
}

/**
 * Run a unit's SR-IOV part against the PFs: the driver waits, then each ExecStart (skipped when its
 * guard holds); the first failed write fails the unit, as a oneshot's failed ExecStart does.
 */
export function runSriovUnit(unit: SriovUnit, pfs: Map<string, PfState>): { ok: boolean; error?: string; log: string[] } {
  const log: string[] = [];
  for (const a of unit.waitDriver) {
    if (!pfs.get(a)?.driver) {
      log.push(`systemd[1]: ${unit.name}: Control process exited, code=exited, status=124/n/a`);
      return { ok: false, error: `${a}: no driver bound (ExecStartPre timed out)`, log };
    }
  }
  for (const ex of unit.execs) {
    if (ex.guard && pfs.get(ex.guard.address)?.numvfs === ex.guard.n) continue;
    for (const w of ex.writes) {
      const pf = pfs.get(w.address);
      if (!pf) {
        log.push(`systemd[1]: ${unit.name}: Main process exited, code=exited, status=1/FAILURE`);
        return { ok: false, error: `/sys/bus/pci/devices/${w.address}/sriov_numvfs: No such file or directory`, log };
      }
      const r = writeNumvfs(pf, w.n);
      log.push(...r.log);
      if (!r.ok) {
        log.push(`systemd[1]: ${unit.name}: Main process exited, code=exited, status=1/FAILURE`);
        return { ok: false, error: `/bin/sh: 1: echo: echo: I/O error (${r.error})`, log };
      }
    }
  }
  return { ok: true, log };
}

export interface BootSriov {
  /** PF address → sriov_numvfs after the boot. */
  numvfs: Record<string, number>;
  vfs: LabVf[];
  log: string[];
  failedUnits: string[];
}

/** At boot: every PF starts with 0 VFs; the enabled units that write sriov_numvfs run after the drivers are bound. */
export function bootSriov(p: Profile, view: NodeView, devices: BootDevice[], iommuActive: boolean): BootSriov {
  const res: BootSriov = { numvfs: {}, vfs: [], log: [], failedUnits: [] };
  const pfs = new Map<string, PfState>();
  for (const d of sriovPfs(p)) {
    const driver = devices.find((x) => x.address === d.address)?.driver ?? null;
    pfs.set(d.address, { address: d.address, totalvfs: d.sriov_totalvfs!, numvfs: 0, driver });
  }
  for (const u of enabledSriovUnits(view)) {
    const r = runSriovUnit(u, pfs);
    res.log.push(...r.log);
    if (!r.ok) res.failedUnits.push(u.name);
  }
  for (const d of sriovPfs(p)) {
    const st = pfs.get(d.address)!;
    res.numvfs[d.address] = st.numvfs;
    res.vfs.push(...vfsOf(p, d, st.numvfs, st.driver, iommuActive));
  }
  for (const vf of res.vfs) {
    res.log.push(`pci ${vf.address}: [${vf.vendor}:${vf.device}] type 00 class 0x${vf.class}00 PCIe Endpoint`);
    if (vf.group !== null) res.log.push(`pci ${vf.address}: Adding to iommu group ${vf.group}`);
  }
  return res;
}

// ---------- the generated sysfs ----------

function put(file: string, content: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** The lspci stub's line of a VF (run/pci.tsv, as node.ts writes the profile's devices). */
export function vfTsvLine(vf: LabVf): string {
  const i = vf.name.indexOf(': ');
  return [vf.address, vf.name.slice(0, i), vf.class, vf.name.slice(i + 2), vf.vendor, vf.device, '', vf.subsystem, vf.modules.join(', ')].join('\t');
}

/** Write one VF into gen/: its device directory, driver, IOMMU group, and the PF's `virtfn<index>` link. */
export function writeVf(g: string, vf: LabVf): void {
  const dd = join(g, 'sys/bus/pci/devices', vf.address);
  put(join(dd, 'vendor'), `0x${vf.vendor}\n`);
  put(join(dd, 'device'), `0x${vf.device}\n`);
  put(join(dd, 'class'), `0x${vf.class}00\n`);
  if (vf.class.startsWith('03')) put(join(dd, 'boot_vga'), '0\n');
  put(join(dd, 'reset_method'), 'flr\n');
  put(join(dd, 'driver_override'), '(null)\n');
  const m = /\[([0-9a-f]{4}):([0-9a-f]{4})\]\s*$/i.exec(vf.subsystem);
  put(join(dd, 'subsystem_vendor'), `0x${m ? m[1]!.toLowerCase() : '0000'}\n`);
  put(join(dd, 'subsystem_device'), `0x${m ? m[2]!.toLowerCase() : '0000'}\n`);
  symlinkSync(`../${vf.pf}`, join(dd, 'physfn'));
  symlinkSync(`../${vf.address}`, join(g, 'sys/bus/pci/devices', vf.pf, `virtfn${vf.index}`));
  if (vf.driver) {
    mkdirSync(join(g, 'sys/bus/pci/drivers', vf.driver), { recursive: true });
    symlinkSync(`/sys/bus/pci/drivers/${vf.driver}`, join(dd, 'driver'));
    symlinkSync(`/sys/bus/pci/devices/${vf.address}`, join(g, 'sys/bus/pci/drivers', vf.driver, vf.address));
  }
  if (vf.group !== null) {
    const gd = join(g, 'sys/kernel/iommu_groups', String(vf.group), 'devices');
    mkdirSync(gd, { recursive: true });
    symlinkSync(`/sys/bus/pci/devices/${vf.address}`, join(gd, vf.address));
    symlinkSync(`/sys/kernel/iommu_groups/${vf.group}`, join(dd, 'iommu_group'));
  }
}

/** Remove every VF of a PF from gen/ (what writing 0 does). Returns the removed addresses. */
export function removeVfs(g: string, pf: string): string[] {
  const pfDir = join(g, 'sys/bus/pci/devices', pf);
  const gone: string[] = [];
  for (const l of readdirSync(pfDir).filter((f) => /^virtfn\d+$/.test(f))) {
    const vf = readlinkSync(join(pfDir, l)).replace(/^.*\//, '');
    const dd = join(g, 'sys/bus/pci/devices', vf);
    const drv = existsSync(join(dd, 'driver')) || isLink(join(dd, 'driver')) ? readlinkSync(join(dd, 'driver')).replace(/^.*\//, '') : null;
    if (drv) rmSync(join(g, 'sys/bus/pci/drivers', drv, vf), { force: true });
    if (isLink(join(dd, 'iommu_group'))) {
      const grp = readlinkSync(join(dd, 'iommu_group')).replace(/^.*\//, '');
      rmSync(join(g, 'sys/kernel/iommu_groups', grp), { recursive: true, force: true });
    }
    rmSync(dd, { recursive: true, force: true });
    rmSync(join(pfDir, l), { force: true });
    gone.push(vf);
  }
  return gone;
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** pci.tsv with `drop` removed and `add` added, sorted by address as lspci prints. */
export function updatePciTsv(g: string, drop: string[], add: LabVf[]): void {
  const f = join(g, 'run/pci.tsv');
  const lines = (existsSync(f) ? readFileSync(f, 'utf8') : '').split('\n').filter((l) => l && !drop.includes(l.split('\t')[0]!));
  lines.push(...add.map(vfTsvLine));
  lines.sort((a, b) => a.split('\t')[0]!.localeCompare(b.split('\t')[0]!));
  writeFileSync(f, lines.join('\n') + '\n');
}

/** After node.ts wrote gen/ from a boot: the PFs' SR-IOV files and the VFs the boot created. */
export function writeSriovGen(g: string, p: Profile, sriov: BootSriov | undefined): void {
  for (const d of sriovPfs(p)) {
    const dd = join(g, 'sys/bus/pci/devices', d.address);
    if (!existsSync(dd)) continue;
    put(join(dd, 'sriov_totalvfs'), `${d.sriov_totalvfs}\n`);
    put(join(dd, 'sriov_numvfs'), `${sriov?.numvfs[d.address] ?? 0}\n`);
    put(join(dd, 'sriov_offset'), `${d.sriov?.offset ?? 1}\n`);
    put(join(dd, 'sriov_stride'), `${d.sriov?.stride ?? 1}\n`);
    put(join(dd, 'sriov_vf_device'), `${d.sriov?.vf_device ?? d.device}\n`);
  }
  for (const vf of sriov?.vfs ?? []) writeVf(g, vf);
  if (sriov?.vfs.length) updatePciTsv(g, [], sriov.vfs);
}

/**
 * `systemctl start|restart UNIT` in a running node: the unit's writes against the live PFs (read
 * from gen/), then the VFs of every PF whose count changed are replaced in gen/. Returns the
 * kernel log lines and, on failure, the error the unit's shell printed.
 */
export function startSriovUnit(nodeDir: string, p: Profile, unit: SriovUnit): { ok: boolean; error?: string; log: string[] } {
  const g = join(nodeDir, 'gen');
  const dev = (a: string) => join(g, 'sys/bus/pci/devices', a);
  const pfs = new Map<string, PfState>();
  for (const d of sriovPfs(p)) {
    if (!existsSync(dev(d.address))) continue;
    const numvfs = Number(readFileSync(join(dev(d.address), 'sriov_numvfs'), 'utf8').trim()) || 0;
    const driver = isLink(join(dev(d.address), 'driver')) ? readlinkSync(join(dev(d.address), 'driver')).replace(/^.*\//, '') : null;
    pfs.set(d.address, { address: d.address, totalvfs: d.sriov_totalvfs!, numvfs, driver });
  }
  const before = new Map([...pfs].map(([a, s]) => [a, s.numvfs]));
  const r = runSriovUnit(unit, pfs);
  let iommuActive = false;
  try {
    iommuActive = !!(JSON.parse(readFileSync(join(g, 'run/boot.json'), 'utf8')) as { iommu?: { active?: boolean } }).iommu?.active;
  } catch {
    /* no boot record: IOMMU off */
  }
  const log = [...r.log];
  for (const d of sriovPfs(p)) {
    const st = pfs.get(d.address);
    if (!st || st.numvfs === before.get(d.address)) continue;
    const gone = removeVfs(g, d.address);
    const vfs = vfsOf(p, d, st.numvfs, st.driver, iommuActive);
    for (const vf of vfs) writeVf(g, vf);
    writeFileSync(join(dev(d.address), 'sriov_numvfs'), `${st.numvfs}\n`);
    updatePciTsv(g, gone, vfs);
    for (const vf of vfs) log.push(`pci ${vf.address}: [${vf.vendor}:${vf.device}] type 00 class 0x${vf.class}00 PCIe Endpoint`, ...(vf.group !== null ? [`pci ${vf.address}: Adding to iommu group ${vf.group}`] : []));
  }
  return { ...r, log };
}
