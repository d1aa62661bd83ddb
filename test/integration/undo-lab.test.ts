/**
 * Undo on the lab, through the CLI: five profiles (GRUB on PVE 8, systemd-boot on ZFS with
 * vendor-reset, PVE 7 on kernel 5.15, two identical GPUs bound by address, a shared IOMMU group
 * split by the ACS override) converge, then
 * `-e passthrough=absent` takes back everything passthru added. Check mode shows the undo as
 * diffs and changes nothing; the undo reboots and its gates pass; every file passthru changed is
 * byte for byte the starting one (the differences that remain are listed below, each with its
 * reason), the user's own kernel parameter survives, the devices are on their starting drivers
 * and the booted command line is the starting one; a second undo changes nothing.
 * Needs root (the lab does). PASSTHRU_TEST_DEBUG=DIR keeps each run's output in DIR.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import type { RunReport } from '../../src/model/types.ts';
import { labRunner, tasks } from '../helpers/cli.ts';
import { changedFiles, isRoot, labSshOptions, labTest as lab, nodeTree, tearDownLab, tempDir, type NodeTree, gatesNotOk } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/gpu-passthrough.yaml', import.meta.url));
const PROFILES = ['intel-grub-pve8-rtx4090', 'amd-systemdboot-zfs-pve8-rx6800', 'pve7-kernel515', 'two-identical-gpus-bootvga', 'shared-group-usb'];

/**
 * What may differ between the starting tree and the tree after converge + undo, and why. Every
 * other file must be byte for byte the starting one.
 */
const ALLOWED: Array<[RegExp, string]> = [
  [/^\/etc\/(default\/grub|kernel\/cmdline)\.passthru-\d{8}T\d{6}(\.\d{3})?Z(-\d+)?\.bak$/, 'backups kernel_cmdline keeps of the boot configuration it edited (the newest 5)'],
  [/^\/boot\//, 'generated from the configuration: initramfs images (and their ESP copies), grub.cfg'],
  [/^\/var\/lib\/dpkg\/status$/, "apt's record of the build tools and headers vendor-reset needed: they stay installed (other DKMS modules may need them)"],
];
const allowed = (p: string) => ALLOWED.some(([re]) => re.test(p));

let info: LabInfo | undefined;
let dir = '';
let tmp = '';
let inventory = '';
const node = (profile: string) => info!.nodes.find((n) => n.profile === profile)!.name;

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-undo-lab-');
  tmp = tempDir('passthru-undo-out-');
  info = await labUp({ dir, scenarios: PROFILES, baseAddr: '127.0.172.1', rebootDelayS: 1 });
  // vendor-reset on the AMD node (its DKMS module, /etc/modules line and udev rule to take back).
  const doc = parse(readFileSync(info.inventoryPath, 'utf8'));
  doc.all.children.proxmox.hosts[node('amd-systemdboot-zfs-pve8-rx6800')].vendor_reset = 'on';
  inventory = join(tmp, 'inventory.yaml');
  writeFileSync(inventory, stringify(doc, { version: '1.1' }));
});

test.after.always(() => tearDownLab(dir, tmp));

const run = labRunner({ name: 'undo', playbook: PLAYBOOK, inventory: () => inventory, out: () => tmp });

function ssh(host: string, command: string): string {
  const n = info!.nodes.find((x) => x.name === host)!;
  return execFileSync('ssh', [...labSshOptions(dir), `root@${n.address}`, command], { encoding: 'utf8', timeout: 30_000 });
}

/** Every PCI function's driver on the node (its /sys view), `address driver` a line. */
const drivers = (host: string) => ssh(host, 'for d in /sys/bus/pci/devices/*; do l=$(readlink "$d/driver" 2>/dev/null); printf "%s %s\\n" "${d##*/}" "${l##*/}"; done');

function gatesOk(t: ExecutionContext, r: RunReport, host: string) {
  const gates = tasks(r, host).filter((x) => x.kind === 'gate');
  t.true(gates.length > 0, `${host}: gates ran`);
  t.deepEqual(gatesNotOk(gates).map((g) => `${g.task}: ${g.status} ${g.msg}`), [], `${host}: every gate ok`);
  return gates;
}

lab('undo: converge, check shows the undo, apply -e passthrough=absent returns every profile to its starting files and drivers; second undo 0 changed', async (t) => {
  const hosts = info!.nodes.map((n) => n.name);
  const intel = node('intel-grub-pve8-rtx4090');
  const amd = node('amd-systemdboot-zfs-pve8-rx6800');
  // The user's own kernel parameter, there before passthru: it must survive the undo.
  const grub = nodeFile(dir, intel, '/etc/default/grub')!;
  t.regex(grub, /^GRUB_CMDLINE_LINUX_DEFAULT="quiet"$/m);
  nodeFile(dir, intel, '/etc/default/grub', grub.replace(/^GRUB_CMDLINE_LINUX_DEFAULT="quiet"$/m, 'GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"'));

  const before = new Map<string, NodeTree>(hosts.map((h) => [h, nodeTree(dir, h)]));
  const driversBefore = new Map(hosts.map((h) => [h, drivers(h)]));
  const cmdlineBefore = new Map(hosts.map((h) => [h, nodeFile(dir, h, '/proc/cmdline')]));

  const converge = await run('apply');
  t.is(converge.code, 0, converge.text);
  for (const h of hosts) gatesOk(t, converge.report, h);
  t.regex(drivers(intel), /^0000:01:00\.0 vfio-pci$/m);
  t.regex(nodeFile(dir, intel, '/etc/default/grub')!, /^GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt intel_iommu=on"$/m, 'iommu=pt was the user\'s: not added twice');
  t.regex(ssh(amd, 'dkms status -m vendor-reset'), /installed/);

  // Check mode: the undo as diffs, nothing written.
  const converged = new Map<string, NodeTree>(hosts.map((h) => [h, nodeTree(dir, h)]));
  const check = await run('check', '-e', 'passthrough=absent');
  t.is(check.code, 5, check.text);
  for (const h of hosts) t.deepEqual(changedFiles(converged.get(h)!, nodeTree(dir, h)), [], `${h}: check wrote nothing`);
  const intelDiffs = tasks(check.report, intel).flatMap((x) => x.diff);
  const grubDiff = intelDiffs.find((d) => d.path === '/etc/default/grub');
  t.truthy(grubDiff, JSON.stringify(intelDiffs.map((d) => d.path)));
  t.regex(grubDiff?.after ?? '', /^GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"$/m, 'the diff takes off intel_iommu=on only');
  t.true(intelDiffs.some((d) => d.path === '/etc/modprobe.d/vfio.conf' && d.after === ''), 'vfio.conf removal shown');
  t.true(tasks(check.report, amd).some((x) => x.diff.some((d) => d.path === '/etc/kernel/cmdline')), 'systemd-boot: /etc/kernel/cmdline diff');

  // The undo.
  const undo = await run('apply', '-e', 'passthrough=absent', '-e', 'vendor_reset_remove=true');
  t.is(undo.code, 0, undo.text);
  for (const h of hosts) {
    t.true(undo.report.recap[h]!.rebooted, `${h}: rebooted into the undone configuration`);
    const gates = gatesOk(t, undo.report, h);
    t.true(gates.some((g) => /^Undo - every chosen function is off vfio-pci/.test(g.task)), `${h}: the undo gate ran`);
    // The configure gates run too and say that they prove nothing of a setting taken back.
    t.regex(gates.find((g) => /driven by vfio-pci/.test(g.task))?.msg ?? '', /taken back, not proven/, `${h}: the configure gate stood aside`);
  }

  for (const h of hosts) {
    const diff = changedFiles(before.get(h)!, nodeTree(dir, h));
    t.deepEqual(diff.filter((p) => !allowed(p)), [], `${h}: every file passthru changed is back byte for byte`);
    t.deepEqual(diff.filter((p) => p.startsWith('/var/lib/passthru/undo/')), [], `${h}: no undo record left`);
    t.is(drivers(h), driversBefore.get(h)!, `${h}: every device on its starting driver`);
    // The starting command line, plus on the Intel node the user's own iommu=pt (configured before the first apply).
    const want = h === intel ? cmdlineBefore.get(h)!.replace(/ quiet\n$/, ' quiet iommu=pt\n') : cmdlineBefore.get(h)!;
    t.is(nodeFile(dir, h, '/proc/cmdline'), want, `${h}: the starting command line booted`);
    t.log(`${h}: allowed differences: ${diff.filter(allowed).join(' ') || 'none'}`);
  }
  t.regex(nodeFile(dir, intel, '/etc/default/grub')!, /^GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"$/m, "the user's own iommu=pt survives");
  t.notRegex(ssh(amd, 'dkms status -m vendor-reset; ls /usr/src'), /vendor-reset/, 'vendor_reset_remove: the DKMS module and its source are gone');

  const again = await run('apply', '-e', 'passthrough=absent', '-e', 'vendor_reset_remove=true');
  t.is(again.code, 0, again.text);
  for (const h of hosts) {
    t.is(again.report.recap[h]!.changed, 0, `${h}: second undo changes nothing`);
    t.false(again.report.recap[h]!.rebooted);
  }
});
