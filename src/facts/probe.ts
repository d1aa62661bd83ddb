/**
 * The facts probe: ONE POSIX sh script run once per host (`sh -s`, script on stdin). Each
 * section starts with a marker line and tolerates a missing tool; `parseProbe` splits the
 * output on the markers and hands each section to its pure parser.
 */
import type { Facts } from './types.ts';
import {
  coerceKernel,
  DPKG_QUERY,
  detectBootloader,
  parseCpuinfo,
  parseDkmsStatus,
  parseDockerRuntimes,
  parseDpkgQuery,
  parseGrubVars,
  parseIommuGroups,
  parseIommuLog,
  parseKernels,
  parseLspciNn,
  parseMeminfo,
  parseModules,
  parsePciSysfs,
  parsePctList,
  parsePveversion,
  parseCluster,
  parseQmList,
} from './parsers.ts';
import { GUEST_SECTIONS, parseGuestSections } from './guests.ts';

export const MARKER = '@@passthru-facts:';

/** Section name → shell snippet. Every snippet must exit 0 and never read stdin. */
const SECTIONS: Array<[string, string]> = [
  ['hostname', `hostname 2>/dev/null || cat /etc/hostname 2>/dev/null`],
  // The first processor block only (up to the first blank line).
  ['cpuinfo', `sed -n '1,/^$/p' /proc/cpuinfo 2>/dev/null`],
  ['uname', `uname -r`],
  ['kernels', `for f in /boot/vmlinuz-*; do [ -e "$f" ] && echo "\${f#/boot/vmlinuz-}"; done`],
  ['kernel-pin', `for f in /etc/kernel/next-boot-pin /etc/kernel/proxmox-boot-pin; do [ -s "$f" ] && echo "\${f##*/} $(head -n 1 "$f")"; done`],
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
  ['kernel-cmdline', `[ -f /etc/kernel/cmdline ] && cat /etc/kernel/cmdline`],
  ['proc-cmdline', `cat /proc/cmdline`],
  ['class-iommu', `ls -1 /sys/class/iommu 2>/dev/null`],
  ['iommu-groups', `for d in /sys/kernel/iommu_groups/*/devices/*; do [ -e "$d" ] && echo "$d"; done`],
  [
    'pci',
    `for d in /sys/bus/pci/devices/*; do [ -r "$d/vendor" ] || continue; ` +
      `drv=''; mod=''; ` +
      `if [ -L "$d/driver" ]; then drv=$(basename "$(readlink "$d/driver")"); ` +
      `[ -L "$d/driver/module" ] && mod=$(basename "$(readlink "$d/driver/module")"); fi; ` +
      `printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "\${d##*/}" "$(cat "$d/vendor")" "$(cat "$d/device")" "$(cat "$d/class")" ` +
      `"$(cat "$d/boot_vga" 2>/dev/null)" "$(cat "$d/reset_method" 2>/dev/null)" "$drv" "$mod"; done`,
  ],
  ['lspci', `command -v lspci >/dev/null 2>&1 && lspci -Dnn 2>/dev/null`],
  // lsmod when /proc/modules cannot be read (it reads the same table; a container or a lab node
  // on a kernel without module support has no /proc/modules).
  ['modules', `cat /proc/modules 2>/dev/null || lsmod 2>/dev/null`],
  ['meminfo', `cat /proc/meminfo`],
  ['dpkg', `command -v dpkg-query >/dev/null 2>&1 && ${DPKG_QUERY} 2>/dev/null`],
  ['dkms', `command -v dkms >/dev/null 2>&1 && dkms status 2>/dev/null`],
  [
    'docker',
    `if command -v docker >/dev/null 2>&1; then echo installed; docker info --format '{{json .Runtimes}}' 2>/dev/null; fi`,
  ],
  ['pvecm', `command -v pvecm >/dev/null 2>&1 && pvecm status 2>&1`],
  ['pvecm-nodes', `command -v pvecm >/dev/null 2>&1 && pvecm nodes 2>&1`],
  // Membership evidence that needs neither pmxcfs nor corosync running.
  [
    'corosync',
    `for f in /etc/pve/corosync.conf /etc/corosync/corosync.conf; do [ -f "$f" ] || continue; echo "file $f"; ` +
      `grep -E '^[[:space:]]*(cluster_name|name)[[:space:]]*:' "$f" 2>/dev/null; done`,
  ],
  ['qm', `command -v qm >/dev/null 2>&1 && qm list 2>/dev/null`],
  ['pct', `command -v pct >/dev/null 2>&1 && pct list 2>/dev/null`],
  ['boot-id', `cat /proc/sys/kernel/random/boot_id`],
  // dmesg may be restricted or rotated on a long-running host: fall back to the journal.
  [
    'iommu-log',
    `pat='DMAR|AMD-Vi|IOMMU|iommu'; out=$(dmesg 2>/dev/null | grep -E "$pat" | head -n 400); ` +
      `if [ -z "$out" ] && command -v journalctl >/dev/null 2>&1; then out=$(journalctl -k -b -q --no-pager 2>/dev/null | grep -E "$pat" | head -n 400); fi; ` +
      `printf '%s\\n' "$out"`,
  ],
  // The guest side (VM/container configs, PCI mappings, subsystem ids, SR-IOV, DRM): facts/guests.ts.
  ...GUEST_SECTIONS,
];

/** The probe script. Sections are printed as `@@passthru-facts:<name>@@` then the section's output. */
export function probeScript(): string {
  const body = SECTIONS.map(([name, sh]) => `printf '\\n${MARKER}%s@@\\n' '${name}'\n{ ${sh} ; } 2>/dev/null || :`).join('\n');
  return `# passthru facts probe (read-only)\nLC_ALL=C; export LC_ALL\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH\n${body}\nexit 0\n`;
}

/** Split probe output into sections by marker. */
export function splitSections(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = new RegExp(`^${MARKER.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([\\w.-]+)@@$`, 'gm');
  const marks = [...stdout.matchAll(re)];
  marks.forEach((m, i) => {
    const start = (m.index ?? 0) + m[0].length + 1;
    const end = i + 1 < marks.length ? (marks[i + 1].index ?? stdout.length) : stdout.length;
    out[m[1]] = stdout.slice(start, end).replace(/\n+$/, '');
  });
  return out;
}

/** Probe output → Facts. Pure. */
export function parseProbe(stdout: string): Facts {
  const s = splitSections(stdout);
  const sec = (k: string) => s[k] ?? '';
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

  const groups = parseIommuGroups(sec('iommu-groups'));
  const groupOf = new Map<string, number>();
  for (const [g, addrs] of Object.entries(groups)) for (const a of addrs) groupOf.set(a, Number(g));
  const names = parseLspciNn(sec('lspci'));
  const gf = parseGuestSections(sec);
  const pci = parsePciSysfs(sec('pci')).map((d) => ({
    ...d,
    iommuGroup: groupOf.get(d.address) ?? null,
    name: names[d.address]?.name ?? '',
    subsystemId: gf.pciExtra[d.address]?.subsystemId ?? null,
    sriovTotalVfs: gf.pciExtra[d.address]?.sriovTotalVfs ?? null,
    sriovNumVfs: gf.pciExtra[d.address]?.sriovNumVfs ?? null,
  }));

  const log = parseIommuLog(sec('iommu-log'));
  const groupCount = Object.keys(groups).length;
  const classIommu = sec('class-iommu').split('\n').map((l) => l.trim()).filter(Boolean);
  const evidence = [...log.evidence];
  if (groupCount > 0) evidence.push(`/sys/kernel/iommu_groups: ${groupCount} groups`);
  else evidence.push('/sys/kernel/iommu_groups is empty (no DMA translation)');
  if (classIommu.length > 0) evidence.push(`/sys/class/iommu: ${classIommu.join(' ')}`);

  const dockerSec = sec('docker');
  const guests = [...parseQmList(sec('qm')), ...parsePctList(sec('pct'))].filter((g) => g.status === 'running');

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
    iommu: { active: groupCount > 0, evidence, irqRemapping: log.irqRemapping, present: classIommu.length > 0 },
    iommuGroups: groups,
    pci,
    modules: parseModules(sec('modules')),
    memory: parseMeminfo(sec('meminfo')),
    packages: parseDpkgQuery(sec('dpkg')),
    dkms: parseDkmsStatus(sec('dkms')),
    docker: { installed: /^installed$/m.test(dockerSec), runtimes: parseDockerRuntimes(dockerSec.replace(/^installed\n?/, '')) },
    cluster: parseCluster({ status: sec('pvecm'), nodes: sec('pvecm-nodes'), corosync: sec('corosync') }),
    guests,
    bootId: sec('boot-id').trim(),
    vms: gf.vms,
    containers: gf.containers,
    pveNodes: gf.pveNodes,
    pciMappings: gf.pciMappings,
    dri: gf.dri,
  };
}
