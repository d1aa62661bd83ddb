/**
 * A kernel that moves, on the lab through the CLI: a converged node with vendor-reset gets a new
 * Proxmox kernel installed the way its package does it (the image, the package record, an
 * initramfs built by the kernel's postinst with the node's current configuration, the boot
 * entries refreshed), so the next boot is the new kernel. `check` shows the drift (the new
 * kernel has no headers and no vendor-reset build), `apply` builds it without a reboot, and after
 * a reboot into the new kernel every gate is green. Needs root (the lab does).
 * PASSTHRU_TEST_DEBUG=DIR keeps each run's output in DIR.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import { labRunner, tasks } from '../helpers/cli.ts';
import { bootsSince, isRoot, labSshOptions, labTest as lab, tearDownLab, tempDir, gatesNotOk } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/gpu-passthrough.yaml', import.meta.url));
const NEW_KERNEL = '6.8.12-5-pve';

let info: LabInfo | undefined;
let dir = '';
let tmp = '';
let inventory = '';
const amd = () => info!.nodes[0]!;

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-kernel-lab-');
  tmp = tempDir('passthru-kernel-out-');
  info = await labUp({ dir, scenarios: ['amd-systemdboot-zfs-pve8-rx6800'], baseAddr: '127.0.171.1', rebootDelayS: 1 });
  // vendor-reset on: its DKMS module must exist for every kernel that can boot.
  const doc = parse(readFileSync(info.inventoryPath, 'utf8'));
  doc.all.children.proxmox.hosts[amd().name].vendor_reset = 'on';
  inventory = join(tmp, 'inventory.yaml');
  writeFileSync(inventory, stringify(doc, { version: '1.1' }));
});

test.after.always(() => tearDownLab(dir, tmp));

const run = labRunner({ name: 'kernel', playbook: PLAYBOOK, inventory: () => inventory, out: () => tmp });

async function ssh(command: string): Promise<string> {
  return (await promisify(execFile)('ssh', [...labSshOptions(dir), `root@${amd().address}`, command])).stdout;
}

lab('a new kernel installed after converging: check names it, apply builds vendor-reset for it, and booted into it every gate is green', async (t) => {
  const host = amd().name;
  const first = await run('apply');
  t.is(first.code, 0, first.text);

  // What `apt install proxmox-kernel-6.8.12-5-pve` does on the node (its postinst and hooks).
  const status = nodeFile(dir, host, '/var/lib/dpkg/status')!;
  nodeFile(dir, host, '/var/lib/dpkg/status', `${status.trimEnd()}\n\nPackage: proxmox-kernel-${NEW_KERNEL}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: 6.8.12-5\nDescription: proxmox-kernel-${NEW_KERNEL}\n\n`);
  await ssh(`set -e; cp /boot/vmlinuz-6.8.12-4-pve /boot/vmlinuz-${NEW_KERNEL}; mkdir -p /lib/modules/${NEW_KERNEL}; update-initramfs -c -k ${NEW_KERNEL} >/dev/null`);
  t.regex(nodeFile(dir, host, `/boot/initrd.img-${NEW_KERNEL}`)!, /vfio-pci/, 'the postinst built the new initramfs with the current VFIO configuration');

  const check = await run('check');
  t.is(check.code, 5, check.text);
  const drift = tasks(check.report, host).filter((x) => x.status === 'changed');
  t.true(drift.length > 0 && drift.every((x) => x.role === 'vendor-reset'), JSON.stringify(drift.map((x) => [x.role, x.task])));
  t.regex(JSON.stringify(drift), new RegExp(NEW_KERNEL.replace(/\./g, '\\.')), 'the drift names the new kernel');

  const since = Date.now();
  const apply = await run('apply');
  t.is(apply.code, 0, apply.text);
  t.regex(await ssh(`dkms status -m vendor-reset -k ${NEW_KERNEL}`), /: installed/);
  t.false(apply.report.recap[host].rebooted, 'a module built for a kernel that is not running needs no reboot');
  t.deepEqual(bootsSince(dir, host, since), []);

  // The node reboots into the new kernel (a maintenance window, or a crash).
  await ssh('reboot');
  for (let i = 0; i < 300 && !bootsSince(dir, host, since).some((e) => e.event === 'up'); i++) await new Promise((r) => setTimeout(r, 100));
  t.is((await ssh('uname -r')).trim(), NEW_KERNEL);
  const after = await run('check');
  t.is(after.code, 0, after.text);
  const gates = tasks(after.report, host).filter((x) => x.kind === 'gate');
  t.true(gates.length > 0 && gatesNotOk(gates).length === 0, JSON.stringify(gates.map((g) => [g.task, g.status, g.msg])));
  t.regex(await ssh('lsmod'), /^vendor_reset\s/m, 'vendor-reset loads on the new kernel');
});
