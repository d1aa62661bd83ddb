import test from 'ava';
import { execFileSync } from 'node:child_process';
import {
  coerceKernel,
  detectBootloader,
  parseCpuinfo,
  parseDkmsStatus,
  parseDockerRuntimes,
  parseDpkgQuery,
  parseEfibootmgr,
  parseIommuLog,
  parseLspciNn,
  parseMeminfo,
  parsePctList,
  parsePveversion,
  parsePvecmStatus,
  parseCluster,
  parsePvecmNodes,
  parseCorosyncSection,
  parseProxmoxBootTool,
  parseQmList,
  parseKernels,
  DPKG_QUERY,
} from '../../src/facts/parsers.ts';
import { MARKER, parseProbe, probeCommandResults, probeScript, splitSections } from '../../src/facts/probe.ts';
import { gatherFacts } from '../../src/facts/index.ts';
import type { Connection, ExecOptions } from '../../src/transport/connection.ts';
import { fixture, labFacts, pveNvidiaFacts } from '../fixtures/facts/hosts.ts';

test('parseCpuinfo: Intel with vmx, first processor only', (t) => {
  const c = parseCpuinfo(fixture('cpuinfo-intel-core2.txt'));
  t.is(c.vendor, 'intel');
  t.true(c.virtualization);
  t.true(c.flags.includes('lahf_lm'));
});

test('parseCpuinfo: AMD guest without svm', (t) => {
  const c = parseCpuinfo(fixture('cpuinfo-amd-debian12.txt'));
  t.is(c.vendor, 'amd');
  t.is(c.virtualization, c.flags.includes('svm'));
  t.is(parseCpuinfo('vendor_id\t: CentaurHauls\nflags\t: fpu\n').vendor, 'other');
});

test('coerceKernel: release strings are not semver', (t) => {
  t.is(coerceKernel('6.8.12-4-pve'), '6.8.12');
  t.is(coerceKernel('5.15.158-2-pve'), '5.15.158');
  t.is(coerceKernel('6.1.0-28-amd64'), '6.1.0');
  t.is(coerceKernel(''), '');
});

test('parsePveversion', (t) => {
  t.deepEqual(parsePveversion(fixture('pveversion-8.0.txt')), { version: '8.0.3', major: 8, runningKernel: '6.2.16-3-pve' });
  t.deepEqual(parsePveversion(''), { version: null, major: null, runningKernel: null });
});

test('parseProxmoxBootTool: systemd-boot ESPs (uefi), warning kept', (t) => {
  const p = parseProxmoxBootTool(fixture('pbt-systemd-boot.txt'));
  t.is(p.bootedWith, 'uefi');
  t.deepEqual(p.esps.map((e) => [e.uuid, e.loader]), [['6D31-87F4', 'systemd-boot'], ['CE07-78FC', 'systemd-boot']]);
  t.deepEqual(p.esps[0].versions, ['5.13.19-6-pve', '5.15.39-3-pve', '5.15.83-1-pve']);
  t.is(p.notes.length, 1);
});

test('parseProxmoxBootTool: grub on legacy bios', (t) => {
  const p = parseProxmoxBootTool(fixture('pbt-grub-bios.txt'));
  t.is(p.bootedWith, 'legacy bios');
  t.deepEqual(p.esps.map((e) => e.loader), ['grub']);
});

test('parseEfibootmgr: BootCurrent and loader paths', (t) => {
  const e = parseEfibootmgr(fixture('efibootmgr-proxmox-grub.txt'));
  t.is(e.bootCurrent, '0003');
  t.false(e.unsupported);
  t.is(e.entries.find((x) => x.num === '0003')?.path, '\\EFI\\PROXMOX\\GRUBX64.EFI');
  t.is(e.entries.find((x) => x.num === '0001')?.active, false);
  t.true(parseEfibootmgr(fixture('efibootmgr-unsupported.txt')).unsupported);
});

test('detectBootloader: proxmox-boot-tool decides first, with evidence', (t) => {
  const sd = detectBootloader({ proxmoxBootTool: fixture('pbt-systemd-boot.txt'), efibootmgr: '', efi: true });
  t.is(sd.bootloader, 'systemd-boot');
  t.true(sd.evidence.some((l) => l.includes('6D31-87F4 is configured with: uefi')));
  t.is(detectBootloader({ proxmoxBootTool: fixture('pbt-grub-bios.txt'), efibootmgr: '', efi: false }).bootloader, 'grub-bios');
  t.is(detectBootloader({ proxmoxBootTool: fixture('pbt-grub-uefi.txt'), efibootmgr: '', efi: true }).bootloader, 'grub-uefi');
});

test('detectBootloader: efibootmgr BootCurrent path, unsupported EFI vars, no EFI', (t) => {
  const g = detectBootloader({ proxmoxBootTool: '', efibootmgr: fixture('efibootmgr-proxmox-grub.txt'), efi: true });
  t.is(g.bootloader, 'grub-uefi');
  t.true(g.evidence.some((l) => l.includes('GRUBX64.EFI')));
  const sd = detectBootloader({ proxmoxBootTool: '', efibootmgr: fixture('efibootmgr-proxmox-grub.txt').replace('BootCurrent: 0003', 'BootCurrent: 0001'), efi: true });
  t.is(sd.bootloader, 'systemd-boot');
  const u = detectBootloader({ proxmoxBootTool: '', efibootmgr: fixture('efibootmgr-unsupported.txt'), efi: false });
  t.is(u.bootloader, 'grub-bios');
  t.regex(u.evidence[0], /not supported/);
  t.is(detectBootloader({ proxmoxBootTool: '', efibootmgr: '', efi: false }).bootloader, 'grub-bios');
  t.is(detectBootloader({ proxmoxBootTool: '', efibootmgr: '', efi: true }).bootloader, 'unknown');
});

test('detectBootloader: systemd-boot and GRUB both installed: the firmware BootCurrent decides, else it stops', (t) => {
  const efi = fixture('efibootmgr-proxmox-grub.txt'); // BootCurrent 0003 = \EFI\PROXMOX\GRUBX64.EFI, 0001 = systemd-boot
  const oneEsp = 'System currently booted with uefi\nD34B-A25D is configured with: uefi,grub (versions: 6.8.4-3-pve, 6.8.8-2-pve)\n';
  const twoEsps = 'System currently booted with uefi\nD34B-A25D is configured with: uefi (versions: 6.8.8-2-pve)\nD34C-0001 is configured with: grub (versions: 6.8.8-2-pve)\n';
  for (const pbt of [oneEsp, twoEsps]) {
    const g = detectBootloader({ proxmoxBootTool: pbt, efibootmgr: efi, efi: true });
    t.is(g.bootloader, 'grub-uefi', 'not the first loader listed: the one BootCurrent names');
    t.true(g.evidence.some((l) => /BootCurrent 0003/.test(l)));
    const sd = detectBootloader({ proxmoxBootTool: pbt, efibootmgr: efi.replace('BootCurrent: 0003', 'BootCurrent: 0001'), efi: true });
    t.is(sd.bootloader, 'systemd-boot');
    const none = detectBootloader({ proxmoxBootTool: pbt, efibootmgr: '', efi: true });
    t.is(none.bootloader, 'unknown');
    t.regex(none.evidence.at(-1)!, /both systemd-boot and GRUB are installed .* does not say which one booted: set bootloader:/);
  }
  t.deepEqual(parseProxmoxBootTool(oneEsp).esps.map((e) => e.loader), ['systemd-boot', 'grub']);
});

test('parsePvecmStatus: quorate cluster with QDevice; standalone node', (t) => {
  const c = parsePvecmStatus(fixture('pvecm-qdevice.txt'));
  t.true(c.quorate);
  t.is(c.expectedVotes, 4);
  t.is(c.totalVotes, 3);
  // Its membership list shows corosync addresses (-i): never taken as member names.
  t.deepEqual(c.nodes, []);
  const s = parsePvecmStatus(fixture('pvecm-standalone.txt'));
  t.deepEqual(s, { name: null, quorate: false, expectedVotes: 0, totalVotes: 0, nodes: [] });
  t.is(parsePvecmStatus('Cluster information\n-------------------\nName:             lab\nConfig Version:   3\n\nQuorum information\nQuorate:          No\n').name, 'lab');
});

test('parseCluster: a member is a member without the Name: line; names, not addresses; unknown quorum said', (t) => {
  // Real output without the "Cluster information" block (pmxcfs could not read corosync.conf).
  const noName = parseCluster({ status: fixture('pvecm-qdevice.txt') });
  t.like(noName, { name: null, member: true, quorate: true, expectedVotes: 4, totalVotes: 3 });
  t.is(noName.quorumUnknown, undefined);
  // The same with corosync.conf and pvecm nodes: the name and the member names.
  const full = parseCluster({ status: fixture('pvecm-qdevice.txt'), nodes: fixture('pvecm-nodes.txt'), corosync: fixture('corosync-section.txt') });
  t.like(full, { name: 'homelab', member: true, quorate: true });
  t.deepEqual(full.nodes, ['pve1', 'pve2', 'pve3']);
  // corosync down: the Name: line is there, the quorum is not.
  const down = parseCluster({ status: fixture('pvecm-cmap-down.txt'), corosync: fixture('corosync-section.txt') });
  t.like(down, { name: 'calotech', member: true, quorate: false, quorumUnknown: 'Cannot initialize CMAP service' });
  t.deepEqual(down.nodes, ['pve1', 'pve2', 'pve3'], 'names from the corosync.conf nodelist');
  // pmxcfs down too: pvecm says "not part of a cluster", /etc/corosync/corosync.conf says otherwise.
  const pmx = parseCluster({ status: fixture('pvecm-standalone.txt'), corosync: fixture('corosync-section.txt') });
  t.like(pmx, { name: 'homelab', member: true, quorate: false });
  t.regex(pmx.quorumUnknown ?? '', /does not exist - is this node part of a cluster/);
  // A real standalone node: no corosync.conf, no quorum block.
  const alone = parseCluster({ status: fixture('pvecm-standalone.txt'), nodes: fixture('pvecm-standalone.txt'), corosync: '' });
  t.like(alone, { name: null, member: false });
  t.is(alone.quorumUnknown, undefined);
  t.deepEqual(parsePvecmNodes(fixture('pvecm-nodes.txt')), ['pve1', 'pve2', 'pve3']);
  t.deepEqual(parseCorosyncSection(fixture('corosync-section.txt')).files, ['/etc/corosync/corosync.conf']);
});

test('parseQmList / parsePctList', (t) => {
  const qm = parseQmList(fixture('qm-list.txt'));
  t.is(qm.length, 4);
  t.deepEqual(qm[0], { kind: 'qm', id: '103', name: 'vaultwarden', status: 'running' });
  t.is(qm[3].status, 'stopped');
  const pct = parsePctList(fixture('pct-list.txt'));
  t.deepEqual(pct.map((g) => [g.id, g.status, g.name]), [['100', 'running', 'adguard'], ['101', 'stopped', 'jellyfin'], ['102', 'running', 'caddy']]);
  t.deepEqual(parsePctList('VMID       Status     Lock         Name\n200        running    backup       dns\n')[0], { kind: 'pct', id: '200', name: 'dns', status: 'running' });
});

test('parseDkmsStatus: new style, warnings, several kernels', (t) => {
  t.deepEqual(parseDkmsStatus(fixture('dkms-vendor-reset.txt')), { 'vendor-reset': ['6.8.12-2-pve'] });
  t.deepEqual(parseDkmsStatus(fixture('dkms-i915-warning.txt')), { 'i915-sriov-dkms': ['6.11.11-1-pve', '6.11.11-2-pve'] });
  t.deepEqual(parseDkmsStatus('vendor-reset, 0.1.1, 5.15.30-2-pve, x86_64: installed\nfoo/1, 6.1.0, x86_64: built\n'), { 'vendor-reset': ['5.15.30-2-pve'] });
});

test('parseLspciNn: names by address (with and without domain)', (t) => {
  const n = parseLspciNn(fixture('lspci-nnk-nvidia.txt'));
  t.is(n['0000:01:00.0'].id, '10de:1f91');
  t.is(n['0000:01:00.0'].classCode, '0300');
  t.regex(n['0000:01:00.0'].name, /GeForce GTX 1650/);
  t.is(n['0000:01:00.1'].id, '10de:10fa');
  t.is(Object.keys(n).length, 2);
});

test('parseMeminfo', (t) => {
  const m = parseMeminfo(fixture('meminfo-debian12.txt'));
  t.true(m.totalKb > 0);
  t.is(m.hugepageSizeKb, 2048);
  t.deepEqual(parseMeminfo('MemTotal: 1000 kB\nHugePages_Total:      16\nHugePages_Free:       8\nHugepagesize:    1048576 kB\n'), {
    totalKb: 1000,
    hugepagesTotal: 16,
    hugepagesFree: 8,
    hugepageSizeKb: 1048576,
  });
});

test('parseIommuLog: DMAR enabled vs IRQ remapping only', (t) => {
  const on = parseIommuLog(fixture('dmesg-dmar-enabled.txt'));
  t.true(on.evidence.some((l) => l.includes('DMAR: IOMMU enabled')));
  t.false(on.irqRemapping);
  const ir = parseIommuLog(fixture('dmesg-dmar-no-param.txt'));
  t.true(ir.irqRemapping);
  t.false(ir.evidence.some((l) => l.includes('DMAR: IOMMU enabled')));
});

test('parseDpkgQuery keeps installed packages only; docker runtimes', (t) => {
  t.deepEqual(parseDpkgQuery('a\t1.0\tinstalled\nb\t2\tconfig-files\n'), { a: '1.0' });
  t.deepEqual(parseDockerRuntimes('{"io.containerd.runc.v2":{"path":"runc"},"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}'), [
    'io.containerd.runc.v2',
    'nvidia',
    'runc',
  ]);
  t.deepEqual(parseDockerRuntimes('Cannot connect to the Docker daemon'), []);
});

test('parseProbe: Proxmox node (systemd-boot, cluster, guests, groups)', (t) => {
  const f = pveNvidiaFacts();
  t.is(f.hostname, 'pve1');
  t.is(f.kernelVersion, '6.8.12');
  t.is(f.pveVersion, '8.2.4');
  t.is(f.pveMajor, 8);
  t.is(f.bootloader, 'systemd-boot');
  t.is(f.cmdlineConfigured, 'root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt');
  t.true(f.iommu.active);
  t.true(f.iommu.present);
  t.true(f.iommu.irqRemapping);
  const gpu = f.pci.find((d) => d.address === '0000:01:00.0')!;
  t.is(gpu.iommuGroup, 1);
  t.is(gpu.driver, 'nvidia');
  t.regex(gpu.name, /GeForce/);
  t.deepEqual(gpu.resetMethod, ['bus']);
  t.true(f.pci.find((d) => d.address === '0000:00:02.0')!.bootVga);
  t.true(f.cluster.quorate);
  t.true(f.cluster.member, 'a member although its pvecm status has no Name: line');
  t.deepEqual(f.guests.map((g) => `${g.kind}:${g.id}`), ['qm:103', 'qm:104', 'qm:105', 'pct:100', 'pct:102']);
  t.deepEqual(f.dkms, { 'vendor-reset': ['6.8.12-2-pve'] });
  t.is(f.packages['pve-manager'], '8.2.4');
});

test('parseProbe: Debian 12 lab guest (GRUB BIOS, no Proxmox tools)', (t) => {
  const f = labFacts();
  t.is(f.pveVersion, null);
  t.is(f.bootloader, 'grub-bios');
  t.is(f.cmdlineConfigured, 'quiet');
  t.deepEqual(f.iommuGroups['3'], ['0000:00:05.0', '0000:00:05.1']);
  t.is(f.pci.find((d) => d.address === '0000:00:05.0')!.driverModule, 'bochs');
  t.deepEqual(f.cluster, { name: null, member: false, quorate: false, expectedVotes: 0, totalVotes: 0, nodes: [] });
  t.deepEqual(f.guests, []);
  t.deepEqual(f.packages, { 'grub-pc': '2.06-13+deb12u1', 'linux-image-amd64': '6.1.119-1' });
  const off = labFacts({ iommu: false });
  t.false(off.iommu.active);
  t.true(off.iommu.evidence.some((l) => /empty/.test(l)));
});

test('probeScript runs under sh, prints every section, reads nothing from stdin', (t) => {
  const script = probeScript();
  const out = execFileSync('sh', ['-s'], { input: script, encoding: 'utf8', timeout: 60_000 });
  const s = splitSections(out);
  for (const k of ['hostname', 'cpuinfo', 'uname', 'grub', 'proc-cmdline', 'pci', 'meminfo', 'boot-id', 'iommu-log', 'pvecm', 'qm']) {
    t.true(k in s, `section ${k}`);
  }
  const f = parseProbe(out);
  t.not(f.kernelRelease, '');
  t.true(f.memory.totalKb > 0);
  t.regex(f.bootId, /^[0-9a-f-]{36}$/);
  t.not(f.cpuVendor, undefined);
});

test('gatherFacts: one exec, script on stdin to sh -s, nothrow', async (t) => {
  const calls: Array<{ command: string; opts?: ExecOptions }> = [];
  const conn = {
    host: 'h',
    async exec(command: string, opts?: ExecOptions) {
      calls.push({ command, opts });
      const stdout = execFileSync('sh', ['-s'], { input: String(opts?.stdin), encoding: 'utf8' });
      return { command, code: 0, stdout, stderr: '', durationMs: 1 };
    },
  } as unknown as Connection;
  const f = await gatherFacts(conn);
  t.is(calls.length, 1);
  t.is(calls[0].command, 'sh -s');
  t.true(calls[0].opts?.nothrow);
  t.is(f.kernelRelease.length > 0, true);
  const bad = { host: 'h', exec: async () => ({ command: 'sh -s', code: 127, stdout: '', stderr: 'sh: not found', durationMs: 1 }) } as unknown as Connection;
  await t.throwsAsync(gatherFacts(bad), { message: /probe printed nothing usable/ });
});

test('parseKernels: newest first by numbers, running always listed, a pin of an installed kernel boots next', (t) => {
  const k = parseKernels('6.8.12-4-pve\n6.8.12-10-pve\n6.5.13-6-pve\n', '', '6.8.12-4-pve');
  t.deepEqual(k.installed, ['6.8.12-10-pve', '6.8.12-4-pve', '6.5.13-6-pve']);
  t.is(k.next, '6.8.12-10-pve');
  t.is(parseKernels('6.8.12-4-pve\n6.8.12-10-pve\n', 'proxmox-boot-pin 6.8.12-4-pve', '6.8.12-4-pve').next, '6.8.12-4-pve');
  t.is(parseKernels('6.8.12-4-pve\n6.8.12-10-pve\n', 'next-boot-pin 6.8.12-4-pve\nproxmox-boot-pin 6.8.12-10-pve', '6.8.12-4-pve').next, '6.8.12-4-pve');
  t.is(parseKernels('6.8.12-4-pve\n', 'proxmox-boot-pin 6.2.16-1-pve', '6.8.12-4-pve').next, '6.8.12-4-pve', 'a pin of a removed kernel is ignored');
  t.deepEqual(parseKernels('*\n6.8.12-4-pve;rm\n', '', '6.1.0-28-amd64').installed, ['6.1.0-28-amd64'], 'no glob leftovers, no shell characters');
});

test('probeCommandResults: dpkg-query that ran and exited 0 answers the apt module read; failed or missing, no answer', (t) => {
  const sec = (body: string) => `\n${MARKER}dpkg@@\n${body}\n${MARKER}dkms@@\n`;
  const ok = probeCommandResults(sec('vfio\t1.0\tinstalled\nzstd\t1.5\tinstalled\n@@rc 0'));
  t.deepEqual(ok.get(DPKG_QUERY), { code: 0, stdout: 'vfio\t1.0\tinstalled\nzstd\t1.5\tinstalled\n', stderr: '' });
  t.deepEqual(probeCommandResults(sec('@@rc 0')).get(DPKG_QUERY), { code: 0, stdout: '', stderr: '' });
  t.false(probeCommandResults(sec('@@rc 2')).has(DPKG_QUERY));
  t.false(probeCommandResults(sec('')).has(DPKG_QUERY), 'no dpkg-query on the host');
  t.false(probeCommandResults('').has(DPKG_QUERY));
  // The status line is not a package.
  t.deepEqual(parseDpkgQuery('vfio\t1.0\tinstalled\n@@rc 0'), { vfio: '1.0' });
});
