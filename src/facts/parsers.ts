/**
 * One pure parser per probe section. Each takes the raw text a command printed on the host
 * and returns plain data; none of them does I/O. Tested against real outputs in
 * `test/fixtures/facts/`.
 */
import semver from 'semver';
import type { Bootloader, Facts, PciDevice } from './types.ts';

const lines = (text: string): string[] => text.split('\n').map((l) => l.replace(/\r$/, ''));
const nonEmpty = (text: string): string[] => lines(text).filter((l) => l.trim() !== '');

// ---------------------------------------------------------------- CPU, kernel, Proxmox VE

export interface CpuInfo {
  vendor: Facts['cpuVendor'];
  virtualization: boolean;
  flags: string[];
}

/** `/proc/cpuinfo`: the first processor's `vendor_id` and `flags`. */
export function parseCpuinfo(text: string): CpuInfo {
  let vendorId = '';
  let flags: string[] = [];
  for (const line of lines(text)) {
    const m = /^([^:]+?)\s*:\s*(.*)$/.exec(line);
    if (!m) {
      if (line.trim() === '' && vendorId) break; // end of the first processor block
      continue;
    }
    const [, key, value] = m;
    if (key === 'vendor_id' && !vendorId) vendorId = value.trim();
    if (key === 'flags' && flags.length === 0) flags = value.trim().split(/\s+/).filter(Boolean);
  }
  const vendor = vendorId === 'GenuineIntel' ? 'intel' : vendorId === 'AuthenticAMD' ? 'amd' : 'other';
  return { vendor, virtualization: flags.includes('vmx') || flags.includes('svm'), flags };
}

/** `6.8.12-4-pve` → `6.8.12`; `''` when nothing version-like is found. */
export function coerceKernel(release: string): string {
  return semver.coerce(release)?.version ?? '';
}

export interface PveVersion {
  version: string | null;
  major: number | null;
  runningKernel: string | null;
}

/** `pveversion`: `pve-manager/8.2.4/faa83925c9641325 (running kernel: 6.8.12-1-pve)`. */
export function parsePveversion(text: string): PveVersion {
  const m = /pve-manager\/([0-9][^/\s]*)/.exec(text);
  const k = /running kernel:\s*([^\s)]+)/.exec(text);
  const version = m ? m[1] : null;
  const major = version ? Number.parseInt(version, 10) : null;
  return { version, major: Number.isFinite(major) ? major : null, runningKernel: k ? k[1] : null };
}

// ---------------------------------------------------------------- bootloader

export interface BootToolStatus {
  /** `proxmox-boot-tool` ran and printed its status. */
  present: boolean;
  /** `uefi` | `legacy bios` from "System currently booted with …", null when not printed. */
  bootedWith: 'uefi' | 'legacy bios' | null;
  /** One entry per ESP it manages. `uefi` means systemd-boot in the tool's wording. */
  esps: Array<{ uuid: string; loader: 'systemd-boot' | 'grub'; versions: string[]; line: string }>;
  /** Warnings and errors it printed (missing ESPs, no proxmox-boot-uuids). */
  notes: string[];
}

/** `proxmox-boot-tool status`. */
export function parseProxmoxBootTool(text: string): BootToolStatus {
  const out: BootToolStatus = { present: text.trim() !== '', bootedWith: null, esps: [], notes: [] };
  for (const line of nonEmpty(text)) {
    const booted = /System currently booted with (uefi|legacy bios)/i.exec(line);
    if (booted) {
      out.bootedWith = booted[1].toLowerCase() as 'uefi' | 'legacy bios';
      continue;
    }
    const esp = /^(\S+) is configured with: ([^()]+?)(?: \(versions: ([^)]*)\))?\s*$/.exec(line.trim());
    if (esp) {
      // One ESP may carry both loaders (after a Secure Boot switch): `uefi,grub`, one entry each.
      for (const kind of esp[2].toLowerCase().split(/[\s,]+/).filter(Boolean)) {
        const loader = kind === 'grub' ? 'grub' : kind === 'uefi' || kind === 'systemd-boot' ? 'systemd-boot' : null;
        if (!loader) continue;
        const versions = (esp[3] ?? '').split(',').map((v) => v.trim()).filter(Boolean);
        out.esps.push({ uuid: esp[1], loader, versions, line: line.trim() });
      }
      continue;
    }
    if (/^(WARN|E):|does not exist|skipping|failed/i.test(line.trim())) out.notes.push(line.trim());
  }
  return out;
}

export interface EfiBootMgr {
  /** `EFI variables are not supported on this system.` was printed. */
  unsupported: boolean;
  bootCurrent: string | null;
  entries: Array<{ num: string; active: boolean; label: string; path: string; line: string }>;
}

/** `efibootmgr -v` (stderr merged). */
export function parseEfibootmgr(text: string): EfiBootMgr {
  const out: EfiBootMgr = { unsupported: /EFI variables are not supported/i.test(text), bootCurrent: null, entries: [] };
  for (const line of nonEmpty(text)) {
    const cur = /^BootCurrent:\s*([0-9A-Fa-f]{4})/.exec(line);
    if (cur) {
      out.bootCurrent = cur[1].toUpperCase();
      continue;
    }
    const e = /^Boot([0-9A-Fa-f]{4})(\*?)\s+(.*)$/.exec(line);
    if (!e) continue;
    const rest = e[3];
    // The loader path: `File(\EFI\...)` in -v output, or a bare `\EFI\...` token.
    const file = /File\(([^)]+)\)/.exec(rest) ?? /(\\[^\s]+\.efi)/i.exec(rest);
    const path = file ? file[1] : '';
    const label = rest.split(/\t|\s{2,}|\s(?=HD\(|PciRoot\(|\\)/)[0].trim();
    out.entries.push({ num: e[1].toUpperCase(), active: e[2] === '*', label, path, line: line.trim() });
  }
  return out;
}

export interface BootloaderInput {
  proxmoxBootTool: string;
  efibootmgr: string;
  /** `/sys/firmware/efi` exists. */
  efi: boolean;
}

/**
 * Which bootloader the host boots from, and the lines that decided it. Order of evidence:
 * `proxmox-boot-tool status` (per ESP), then no EFI = legacy BIOS GRUB, then the loader path of
 * efibootmgr's BootCurrent entry. The root filesystem is never used as a hint.
 */
export function detectBootloader(input: BootloaderInput): { bootloader: Bootloader; evidence: string[] } {
  const pbt = parseProxmoxBootTool(input.proxmoxBootTool);
  const efi = parseEfibootmgr(input.efibootmgr);
  const booted = pbt.bootedWith ?? (input.efi ? 'uefi' : 'legacy bios');
  if (pbt.esps.length > 0) {
    const sd = pbt.esps.filter((e) => e.loader === 'systemd-boot');
    const grub = pbt.esps.filter((e) => e.loader === 'grub');
    const header = pbt.bootedWith ? [`System currently booted with ${pbt.bootedWith}`] : [];
    if (sd.length > 0 && grub.length > 0 && booted === 'uefi') {
      // Both loaders are installed: only the firmware knows which one started this boot.
      const both = [...header, ...[...new Set(pbt.esps.map((e) => e.line))].map((l) => `proxmox-boot-tool: ${l}`)];
      const current = efi.entries.find((e) => e.num === efi.bootCurrent);
      if (current) {
        const p = current.path.toLowerCase();
        const ev = [...both, `efibootmgr: BootCurrent ${efi.bootCurrent}`, `efibootmgr: ${current.line}`];
        if (p.includes('systemd-boot')) return { bootloader: 'systemd-boot', evidence: ev };
        if (/grub|shim/.test(p)) return { bootloader: 'grub-uefi', evidence: ev };
      }
      return {
        bootloader: 'unknown',
        evidence: [
          ...both,
          `both systemd-boot and GRUB are installed and ${current ? `BootCurrent ${efi.bootCurrent} (${current.path || 'no loader path'})` : 'efibootmgr (no BootCurrent entry)'} does not say which one booted: set bootloader: in the inventory`,
        ],
      };
    }
    if (sd.length > 0 && booted === 'uefi') {
      return { bootloader: 'systemd-boot', evidence: [...header, ...sd.map((e) => `proxmox-boot-tool: ${e.line}`)] };
    }
    if (grub.length > 0) {
      return {
        bootloader: booted === 'uefi' ? 'grub-uefi' : 'grub-bios',
        evidence: [...header, ...grub.map((e) => `proxmox-boot-tool: ${e.line}`)],
      };
    }
  }
  if (efi.unsupported) {
    return { bootloader: 'grub-bios', evidence: ['efibootmgr: EFI variables are not supported on this system (legacy BIOS boot)'] };
  }
  if (!input.efi) {
    return { bootloader: 'grub-bios', evidence: ['/sys/firmware/efi is absent: booted by legacy BIOS, so GRUB'] };
  }
  const current = efi.entries.find((e) => e.num === efi.bootCurrent);
  if (current) {
    const p = current.path.toLowerCase();
    const ev = [`efibootmgr: BootCurrent ${efi.bootCurrent}`, `efibootmgr: ${current.line}`];
    if (p.includes('systemd-boot')) return { bootloader: 'systemd-boot', evidence: ev };
    if (/grub|shim/.test(p)) return { bootloader: 'grub-uefi', evidence: ev };
    return { bootloader: 'unknown', evidence: [...ev, `loader ${current.path || '(no path)'} is neither systemd-boot nor GRUB`] };
  }
  if (input.efibootmgr.trim() === '') {
    return { bootloader: 'unknown', evidence: ['UEFI boot, but efibootmgr is not installed and proxmox-boot-tool manages no ESP'] };
  }
  return { bootloader: 'unknown', evidence: ['UEFI boot, but efibootmgr shows no BootCurrent entry'] };
}

/** The probe's GRUB section: `GRUB_CMDLINE_LINUX_DEFAULT=...` and `GRUB_CMDLINE_LINUX=...` after drop-ins. */
export function parseGrubVars(text: string): { present: boolean; linuxDefault: string; linux: string } {
  const get = (name: string) => {
    const m = new RegExp(`^${name}=(.*)$`, 'm').exec(text);
    return m ? m[1].trim() : '';
  };
  return { present: /^GRUB_CMDLINE_LINUX/m.test(text), linuxDefault: get('GRUB_CMDLINE_LINUX_DEFAULT'), linux: get('GRUB_CMDLINE_LINUX') };
}

// ---------------------------------------------------------------- cluster and guests

/**
 * `pvecm status` alone: the `Name:` of its "Cluster information" block (printed only when pmxcfs
 * could read /etc/pve/corosync.conf, see pve-cluster src/PVE/CLI/pvecm.pm) and the quorum
 * figures of `corosync-quorumtool -siH`. Its membership list shows corosync addresses (`-i`),
 * not names, so `nodes` stays empty here: names come from `pvecm nodes` (see parseCluster).
 */
export function parsePvecmStatus(text: string): Facts['cluster'] {
  const out: Facts['cluster'] = { name: null, quorate: false, expectedVotes: 0, totalVotes: 0, nodes: [] };
  for (const line of lines(text)) {
    const kv = /^([A-Za-z][A-Za-z ]*?):\s+(.*)$/.exec(line.trim());
    if (!kv) continue;
    const [, key, value] = kv;
    if (key === 'Name' && out.name === null) out.name = value.trim();
    else if (key === 'Quorate') out.quorate = /^yes/i.test(value.trim());
    else if (key === 'Expected votes') out.expectedVotes = Number.parseInt(value, 10) || 0;
    else if (key === 'Total votes') out.totalVotes = Number.parseInt(value, 10) || 0;
  }
  // Without a quorum block the tool printed an error (standalone, or corosync not answering).
  // The Name: line stays (printed before corosync-quorumtool ran).
  if (!hasQuorumBlock(text)) return { name: out.name, quorate: false, expectedVotes: 0, totalVotes: 0, nodes: [] };
  return out;
}

function hasQuorumBlock(text: string): boolean {
  return /^Quorum information|^Votequorum information/m.test(text);
}

/**
 * `pvecm nodes` (= `corosync-quorumtool -l`): member names, `(local)` marks this node.
 * `    Nodeid      Votes Name` / `         1          1 pve1 (local)`.
 */
export function parsePvecmNodes(text: string): string[] {
  const out: string[] = [];
  let inList = false;
  for (const line of lines(text)) {
    if (/^\s*Nodeid\s+Votes\s+(Qdevice\s+)?Name/.test(line)) {
      inList = true;
      continue;
    }
    if (!inList) continue;
    const m = /^\s*(?:0x)?[0-9a-fA-F]+\s+\d+\s+(?:[A-Z,]+\s+)?(\S+)(?:\s+\(local\))?\s*$/.exec(line);
    if (m && m[1] !== 'Qdevice') out.push(m[1]);
  }
  return out;
}

/**
 * The probe's corosync section: `file <path>` for each corosync.conf present, then the
 * `cluster_name:` and `name:` lines of that file (totem and nodelist).
 */
export function parseCorosyncSection(text: string): { files: string[]; clusterName: string | null; names: string[] } {
  const out = { files: [] as string[], clusterName: null as string | null, names: [] as string[] };
  for (const line of lines(text)) {
    const f = /^file (\/\S+)$/.exec(line.trim());
    if (f) {
      out.files.push(f[1]);
      continue;
    }
    const kv = /^\s*(cluster_name|name)\s*:\s*(\S+)\s*$/.exec(line);
    if (!kv) continue;
    if (kv[1] === 'cluster_name') out.clusterName ??= kv[2];
    else if (!out.names.includes(kv[2])) out.names.push(kv[2]);
  }
  return out;
}

export interface ClusterInput {
  /** `pvecm status` (stderr merged). */
  status: string;
  /** `pvecm nodes` (stderr merged). */
  nodes?: string;
  /** The probe's corosync section (parseCorosyncSection). */
  corosync?: string;
}

/**
 * Cluster membership from evidence that does not depend on the `Name:` line: a corosync.conf in
 * /etc/pve or /etc/corosync, members listed by `pvecm nodes`, or a quorum block in
 * `pvecm status`. A member whose `pvecm status` has no quorum block (corosync down: "Cannot
 * initialize CMAP service") is a member of unknown quorum (`quorumUnknown` says why): the reboot
 * coordinator refuses to reboot it.
 */
export function parseCluster(input: ClusterInput): Facts['cluster'] {
  const status = parsePvecmStatus(input.status);
  const conf = parseCorosyncSection(input.corosync ?? '');
  const listed = parsePvecmNodes(input.nodes ?? '');
  const quorumKnown = hasQuorumBlock(input.status);
  const member = conf.files.length > 0 || listed.length > 0 || quorumKnown;
  if (!member) return { ...status, member: false };
  const out: Facts['cluster'] = {
    ...status,
    name: status.name ?? conf.clusterName,
    member: true,
    nodes: listed.length > 0 ? listed : conf.names,
  };
  if (!quorumKnown) {
    const said = nonEmpty(input.status).map((l) => l.trim()).filter((l) => !/^-+$/.test(l));
    out.quorumUnknown = said.length ? said[said.length - 1] : '`pvecm status` printed nothing';
  }
  return out;
}

/** `qm list`: every VM with its status (running or not). */
export function parseQmList(text: string): Facts['guests'] {
  const out: Facts['guests'] = [];
  for (const line of nonEmpty(text)) {
    const m = /^\s*(\d+)\s+(.+?)\s+(running|stopped|paused|suspended|prelaunch|unknown)\s+\d+/.exec(line);
    if (m) out.push({ kind: 'qm', id: m[1], name: m[2].trim(), status: m[3] });
  }
  return out;
}

/** `pct list`: `VMID Status Lock Name` (the lock column may be empty). */
export function parsePctList(text: string): Facts['guests'] {
  const out: Facts['guests'] = [];
  for (const line of nonEmpty(text)) {
    const m = /^\s*(\d+)\s+(\S+)\s+(?:(\S+)\s+)?(\S+)\s*$/.exec(line);
    if (m) out.push({ kind: 'pct', id: m[1], name: m[4], status: m[2] });
  }
  return out;
}

// ---------------------------------------------------------------- packages, DKMS, docker

/** `dkms status`: old (`name, ver, kernel, arch: installed`) and new (`name/ver, kernel, arch: installed`) styles. */
export function parseDkmsStatus(text: string): Facts['dkms'] {
  const out: Facts['dkms'] = {};
  for (const line of nonEmpty(text)) {
    const m = /^([^,/\s]+)(?:\/([^,\s]+)|,\s*([^,\s]+)),\s*([^,\s]+),\s*[^:]+:\s*installed/.exec(line.trim());
    if (!m) continue;
    const [, name, , , kernel] = m;
    (out[name] ??= []).includes(kernel) || out[name].push(kernel);
  }
  return out;
}

/** Every package dpkg knows with its version and state: the probe and the `apt` module read this. */
export const DPKG_QUERY = "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Status}\\n'";

/** {@link DPKG_QUERY}'s output → installed packages only (name → version). */
export function parseDpkgQuery(text: string): Facts['packages'] {
  const out: Facts['packages'] = {};
  for (const line of nonEmpty(text)) {
    const [name, version, status] = line.split('\t');
    if (name && version && (status === undefined || status.trim() === 'installed')) out[name] = version;
  }
  return out;
}

/** `docker info --format '{{json .Runtimes}}'` → runtime names. */
export function parseDockerRuntimes(text: string): string[] {
  const t = text.trim();
  if (!t.startsWith('{')) return [];
  try {
    return Object.keys(JSON.parse(t) as Record<string, unknown>).sort();
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- PCI, IOMMU, memory, modules

/** `lspci -Dnn`: address → name (`NVIDIA Corporation AD102 [GeForce RTX 4090]`). Also accepts `lspci -nn` (domain 0000 assumed). */
export function parseLspciNn(text: string): Record<string, { name: string; classCode: string; id: string }> {
  const out: Record<string, { name: string; classCode: string; id: string }> = {};
  for (const line of nonEmpty(text)) {
    const m = /^((?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+(.*?)\s+\[([0-9a-fA-F]{4})\]:\s+(.*?)\s+\[([0-9a-fA-F]{4}:[0-9a-fA-F]{4})\]/.exec(line);
    if (!m) continue;
    const addr = m[1].length === 7 ? `0000:${m[1]}` : m[1];
    out[addr.toLowerCase()] = { name: m[4].trim(), classCode: m[3].toLowerCase(), id: m[5].toLowerCase() };
  }
  return out;
}

/** The probe's PCI section: one tab-separated line per device from sysfs. */
export function parsePciSysfs(text: string): PciDevice[] {
  const out: PciDevice[] = [];
  for (const line of nonEmpty(text)) {
    const [address, vendor, device, cls, bootVga, reset, driver, module] = line.split('\t');
    if (!address || !/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i.test(address)) continue;
    const v = (vendor ?? '').replace(/^0x/, '').toLowerCase();
    const d = (device ?? '').replace(/^0x/, '').toLowerCase();
    out.push({
      address: address.toLowerCase(),
      slot: address.toLowerCase().slice(5, 10),
      vendor: v,
      device: d,
      id: `${v}:${d}`,
      class: (cls ?? '').replace(/^0x/, '').slice(0, 4).toLowerCase(),
      driver: driver ? driver : null,
      driverModule: module ? module : null,
      bootVga: (bootVga ?? '').trim() === '1',
      resetMethod: (reset ?? '').trim().split(/\s+/).filter(Boolean),
      iommuGroup: null,
      name: '',
    });
  }
  return out;
}

/** `/sys/kernel/iommu_groups/*\/devices/*` paths → group → addresses. */
export function parseIommuGroups(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const line of nonEmpty(text)) {
    const m = /iommu_groups\/(\d+)\/devices\/([0-9a-fA-F:.]+)/.exec(line);
    if (m) (out[m[1]] ??= []).push(m[2].toLowerCase());
  }
  for (const k of Object.keys(out)) out[k].sort();
  return out;
}

/** `/proc/meminfo`. */
export function parseMeminfo(text: string): Facts['memory'] {
  const get = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  return {
    totalKb: get('MemTotal'),
    hugepagesTotal: get('HugePages_Total'),
    hugepagesFree: get('HugePages_Free'),
    hugepageSizeKb: get('Hugepagesize'),
  };
}

/** `/proc/modules` (or `lsmod`, header skipped). */
export function parseModules(text: string): string[] {
  return nonEmpty(text)
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n) => n && n !== 'Module');
}

/** Kernel log lines about the IOMMU → what they prove. */
export function parseIommuLog(text: string): { evidence: string[]; irqRemapping: boolean; translated: boolean } {
  const all = nonEmpty(text).map((l) => l.trim());
  const keep = all.filter((l) =>
    /Default domain type|DMAR: IOMMU enabled|AMD-Vi: (Found IOMMU|Interrupt remapping enabled|AMD IOMMUv2)|DMAR-IR: Enabled IRQ remapping|Intel\(R\) Virtualization Technology for Directed I\/O|iommu: .*(passthrough|Translated|Passthrough)|IOMMU.*disabled|AMD-Vi:.*disabled|Adding to iommu group 0\b/i.test(l),
  );
  return {
    evidence: keep.slice(0, 20),
    irqRemapping: all.some((l) => /DMAR-IR: Enabled IRQ remapping|AMD-Vi: Interrupt remapping enabled/.test(l)),
    translated: all.some((l) => /Default domain type: (Translated|Passthrough)|Adding to iommu group/.test(l)),
  };
}

/** Order of kernel releases: `6.8.12-4-pve` < `6.8.12-10-pve` < `6.11.0-1-pve` (numbers, not text). */
export function compareKernelReleases(a: string, b: string): number {
  const nums = (r: string) => (r.match(/\d+/g) ?? []).map(Number);
  const x = nums(a);
  const y = nums(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
  return a.localeCompare(b);
}

/**
 * Installed kernels (one release a line, from /boot/vmlinuz-*) newest first, and the one the
 * next boot starts: a proxmox-boot-tool pin (`next-boot-pin` before `proxmox-boot-pin`, lines
 * `<file> <release>`) when that kernel is installed, else the newest (GRUB's first entry and
 * systemd-boot's default both are the newest kernel).
 */
export function parseKernels(list: string, pins: string, running: string): { installed: string[]; next: string } {
  // Release names only (they end up in dkms and apt command lines): digits first, no shell characters.
  const release = (l: string) => /^\d+\.\d+[\w.+~-]*$/.test(l);
  const installed = [...new Set([...list.split('\n').map((l) => l.trim()).filter(release), ...(release(running) ? [running] : [])])];
  installed.sort((a, b) => compareKernelReleases(b, a));
  const pinned = pins
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length === 2 && installed.includes(p[1]))
    .map((p) => p[1]);
  return { installed, next: pinned[0] ?? installed[0] ?? running };
}
