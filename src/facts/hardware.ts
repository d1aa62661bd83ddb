/**
 * Facts of the hardware and what runs on it: IOMMU, PCI devices, loaded modules, memory,
 * packages, DKMS builds and docker. Each probe section (a POSIX sh snippet) sits next to its pure
 * parser, and hardwareFacts() turns the sections into their Facts fields. Parsers are tested
 * against real outputs in `test/fixtures/facts/`.
 */
import type { Facts, PciDevice } from './types.ts';
import type { PciExtra } from './guests.ts';
import { catSh, lsSh, nonEmpty, type ProbeSection, type SectionText } from './text.ts';

/** Every package dpkg knows with its version and state: the probe and the `apt` module read this. */
export const DPKG_QUERY = "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Status}\\n'";

/** `printf '%s\n' "$VAR" | CMD` without a pipeline: CMD reads the variable as a here-document (its own lines). */
const hereDoc = (cmd: string, v: string) => `${cmd} <<__PASSTHRU_EOF__\n${v}\n__PASSTHRU_EOF__\n`;
const grepLog = (v: string) => hereDoc(`grep -E "$pat"`, v);

export const HARDWARE_SECTIONS: ProbeSection[] = [
  ['class-iommu', lsSh('/sys/class/iommu')],
  ['iommu-groups', `for d in /sys/kernel/iommu_groups/*/devices/*; do [ -e "$d" ] && echo "$d"; done`],
  [
    'pci',
    // Shell builtins only (read, cd -P): no process per device, which matters on a host with a
    // hundred functions. `cd -P DIR/driver` resolves the symlink as readlink would; the subshell
    // keeps the probe's working directory.
    `( for d in /sys/bus/pci/devices/*; do [ -r "$d/vendor" ] || continue; ` +
      `v=''; dv=''; c=''; bv=''; rm=''; drv=''; mod=''; ` +
      `read -r v < "$d/vendor"; read -r dv < "$d/device"; read -r c < "$d/class"; ` +
      `[ -r "$d/boot_vga" ] && read -r bv < "$d/boot_vga"; [ -r "$d/reset_method" ] && read -r rm < "$d/reset_method"; ` +
      `if [ -L "$d/driver" ] && cd -P "$d/driver" 2>/dev/null; then drv=\${PWD##*/}; ` +
      `[ -L "$d/driver/module" ] && cd -P "$d/driver/module" 2>/dev/null && mod=\${PWD##*/}; fi; ` +
      `printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "\${d##*/}" "$v" "$dv" "$c" "$bv" "$rm" "$drv" "$mod"; done )`,
  ],
  ['lspci', `command -v lspci >/dev/null 2>&1 && lspci -Dnn 2>/dev/null`],
  // lsmod when /proc/modules cannot be read (it reads the same table; a container or a lab node
  // on a kernel without module support has no /proc/modules). cat: the table can be long.
  ['modules', `if [ -r /proc/modules ]; then cat /proc/modules 2>/dev/null || lsmod 2>/dev/null; else lsmod 2>/dev/null; fi`],
  ['meminfo', catSh('/proc/meminfo')],
  // The status line lets the apt module take this answer as its own read of DPKG_QUERY
  // (probeCommandResults): one dpkg-query per host and stage, not two.
  ['dpkg', `command -v dpkg-query >/dev/null 2>&1 && { ${DPKG_QUERY} 2>/dev/null; echo "@@rc $?"; }`],
  ['dkms', `command -v dkms >/dev/null 2>&1 && dkms status 2>/dev/null`],
  [
    'docker',
    `if command -v docker >/dev/null 2>&1; then echo installed; docker info --format '{{json .Runtimes}}' 2>/dev/null; fi`,
  ],
  // dmesg may be restricted or rotated on a long-running host: fall back to the journal.
  // `LOG | grep -E PAT | head -n 400`, one program after the other instead of a pipeline (programs
  // running at the same time cost several times their CPU on a small VM): the log is kept, then
  // given to grep as a here-document; head runs only when there can be more than 400 lines (each
  // holds a 4-byte pattern: 401 lines take at least 2004 bytes).
  [
    'iommu-log',
    `pat='DMAR|AMD-Vi|IOMMU|iommu'; __log=$(dmesg 2>/dev/null); out=$(${grepLog('$__log')}); ` +
      `if [ -z "$out" ] && command -v journalctl >/dev/null 2>&1; then __log=$(journalctl -k -b -q --no-pager 2>/dev/null); out=$(${grepLog('$__log')}); fi; ` +
      `[ \${#out} -lt 2004 ] || out=$(${hereDoc('head -n 400', '$out')}); ` +
      `printf '%s\\n' "$out"`,
  ],
];

/** The hardware sections → their Facts fields; `pciExtra` (subsystem ids, SR-IOV) comes from the guest sections. */
export function hardwareFacts(
  sec: SectionText,
  pciExtra: Record<string, PciExtra>,
): Pick<Facts, 'iommu' | 'iommuGroups' | 'pci' | 'modules' | 'memory' | 'packages' | 'dkms' | 'docker'> {
  const groups = parseIommuGroups(sec('iommu-groups'));
  const groupOf = new Map<string, number>();
  for (const [g, addrs] of Object.entries(groups)) for (const a of addrs) groupOf.set(a, Number(g));
  const names = parseLspciNn(sec('lspci'));
  const pci = parsePciSysfs(sec('pci')).map((d) => ({
    ...d,
    iommuGroup: groupOf.get(d.address) ?? null,
    name: names[d.address]?.name ?? '',
    subsystemId: pciExtra[d.address]?.subsystemId ?? null,
    sriovTotalVfs: pciExtra[d.address]?.sriovTotalVfs ?? null,
    sriovNumVfs: pciExtra[d.address]?.sriovNumVfs ?? null,
    sriovVfs: pciExtra[d.address]?.sriovVfs ?? [],
  }));

  const log = parseIommuLog(sec('iommu-log'));
  const groupCount = Object.keys(groups).length;
  const classIommu = sec('class-iommu').split('\n').map((l) => l.trim()).filter(Boolean);
  const evidence = [...log.evidence];
  if (groupCount > 0) evidence.push(`/sys/kernel/iommu_groups: ${groupCount} groups`);
  else evidence.push('/sys/kernel/iommu_groups is empty (no DMA translation)');
  if (classIommu.length > 0) evidence.push(`/sys/class/iommu: ${classIommu.join(' ')}`);

  const dockerSec = sec('docker');
  return {
    iommu: { active: groupCount > 0, evidence, irqRemapping: log.irqRemapping, present: classIommu.length > 0 },
    iommuGroups: groups,
    pci,
    modules: parseModules(sec('modules')),
    memory: parseMeminfo(sec('meminfo')),
    packages: parseDpkgQuery(sec('dpkg')),
    dkms: parseDkmsStatus(sec('dkms')),
    docker: { installed: /^installed$/m.test(dockerSec), runtimes: parseDockerRuntimes(dockerSec.replace(/^installed\n?/, '')) },
  };
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
