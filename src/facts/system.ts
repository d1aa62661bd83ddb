/**
 * Facts of the host system: name, CPU, kernels, Proxmox VE version, bootloader and kernel command
 * line. Each probe section (a POSIX sh snippet) sits next to its pure parser, and systemFacts()
 * turns the sections into their Facts fields. Parsers are tested against real outputs in
 * `test/fixtures/facts/`.
 */
import { compareVersions, kernelVersion as coerceKernel } from '../model/version.ts';
import type { Bootloader, Facts } from './types.ts';
import { catSh, lines, nonEmpty, type ProbeSection, type SectionText } from './text.ts';

export const SYSTEM_SECTIONS: ProbeSection[] = [
  // What hostname(1) prints is the kernel's host name: read without a process where /proc has it.
  ['hostname', `{ IFS= read -r __h < /proc/sys/kernel/hostname && printf '%s\\n' "$__h"; } 2>/dev/null || hostname 2>/dev/null || cat /etc/hostname 2>/dev/null`],
  // The first processor block only, up to the first blank line after line 1 (sed -n '1,/^$/p'),
  // with shell builtins.
  [
    'cpuinfo',
    `{ __n=0; while IFS= read -r __l; do printf '%s\\n' "$__l"; __n=$((__n + 1)); [ $__n -gt 1 ] && [ -z "$__l" ] && break; done; printf '%s' "$__l"; } < /proc/cpuinfo`,
  ],
  ['uname', `uname -r`],
  ['kernels', `for f in /boot/vmlinuz-*; do [ -e "$f" ] && echo "\${f#/boot/vmlinuz-}"; done`],
  ['kernel-pin', `for f in /etc/kernel/next-boot-pin /etc/kernel/proxmox-boot-pin; do [ -s "$f" ] && { __p=''; IFS= read -r __p < "$f"; echo "\${f##*/} $__p"; }; done`],
  ['pveversion', `command -v pveversion >/dev/null 2>&1 && pveversion 2>&1`],
  ['proxmox-boot-tool', `command -v proxmox-boot-tool >/dev/null 2>&1 && proxmox-boot-tool status 2>&1`],
  ['efibootmgr', `command -v efibootmgr >/dev/null 2>&1 && efibootmgr -v 2>&1`],
  ['efi', `if [ -d /sys/firmware/efi ]; then echo yes; else echo no; fi`],
  // Evaluated like update-grub does: /etc/default/grub, then the drop-ins, which override it.
  [
    'grub',
    `if [ -f /etc/default/grub ]; then ( GRUB_CMDLINE_LINUX=''; GRUB_CMDLINE_LINUX_DEFAULT=''; ` +
      `. /etc/default/grub >/dev/null 2>&1 </dev/null; ` +
      `for f in /etc/default/grub.d/*.cfg; do [ -f "$f" ] && . "$f" >/dev/null 2>&1 </dev/null; done; ` +
      `printf 'GRUB_CMDLINE_LINUX_DEFAULT=%s\\n' "$GRUB_CMDLINE_LINUX_DEFAULT"; ` +
      `printf 'GRUB_CMDLINE_LINUX=%s\\n' "$GRUB_CMDLINE_LINUX" ); fi`,
  ],
  // Small files, printed with shell builtins (catSh: no process).
  ['kernel-cmdline', `[ -f /etc/kernel/cmdline ] && ${catSh('/etc/kernel/cmdline')}`],
  ['proc-cmdline', catSh('/proc/cmdline')],
  ['boot-id', catSh('/proc/sys/kernel/random/boot_id')],
];

/** The system sections → their Facts fields. */
export function systemFacts(sec: SectionText): Pick<
  Facts,
  'hostname' | 'cpuVendor' | 'cpuVirtualization' | 'kernelRelease' | 'kernelVersion' | 'kernelsInstalled' | 'kernelNext' | 'pveVersion' | 'pveMajor' | 'bootloader' | 'bootloaderEvidence' | 'cmdlineConfigured' | 'cmdlineRunning' | 'bootId'
> {
  const cpu = parseCpuinfo(sec('cpuinfo'));
  const kernelRelease = sec('uname').trim();
  const kernels = parseKernels(sec('kernels'), sec('kernel-pin'), kernelRelease);
  const pve = parsePveversion(sec('pveversion'));
  const efi = sec('efi').trim() === 'yes';
  const boot = detectBootloader({ proxmoxBootTool: sec('proxmox-boot-tool'), efibootmgr: sec('efibootmgr'), efi });
  const grub = parseGrubVars(sec('grub'));
  const kernelCmdline = sec('kernel-cmdline').trim();
  const cmdlineConfigured =
    boot.bootloader === 'systemd-boot'
      ? kernelCmdline
      : [grub.linux, grub.linuxDefault].filter((x) => x !== '').join(' ').trim();
  return {
    hostname: sec('hostname').trim(),
    cpuVendor: cpu.vendor,
    cpuVirtualization: cpu.virtualization,
    kernelRelease,
    kernelVersion: coerceKernel(kernelRelease),
    kernelsInstalled: kernels.installed,
    kernelNext: kernels.next,
    pveVersion: pve.version,
    pveMajor: pve.major,
    bootloader: boot.bootloader,
    bootloaderEvidence: boot.evidence,
    cmdlineConfigured,
    cmdlineRunning: sec('proc-cmdline').trim(),
    bootId: sec('boot-id').trim(),
  };
}

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

export { coerceKernel };

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

/** Order of kernel releases: `6.8.12-4-pve` < `6.8.12-10-pve` < `6.11.0-1-pve` (numbers, not text). */
/** Kernel releases in version order (`6.8.12-10-pve` after `6.8.12-4-pve`), equal versions by text. */
export function compareKernelReleases(a: string, b: string): number {
  return compareVersions(a, b) || a.localeCompare(b);
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
