/**
 * The sriov role on the lab (a real sshd node with the Alder Lake-N iGPU profile, through the
 * CLI): a request above sriov_totalvfs is refused before anything changes; converging creates the
 * VFs at once (no VF existed, nothing to remove) through the unit it enables; after a reboot the
 * boot's run of that unit creates them again (sriov_numvfs does not persist) and the gate passes;
 * a second run changes nothing and does not reboot; check mode changes 0 bytes; a new count on a
 * live device goes through the reboot. Evidence from the node: lspci, sysfs, its files, boots.log.
 * Lab addresses 127.0.181.x. Needs root (the lab does).
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootLog, labStatus, labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import type { RunReport } from '../../src/model/types.ts';
import { labRunner, tasks } from '../helpers/cli.ts';
import { changedFiles, isRoot, labSshOptions, labTest as lab, nodeTree, tearDownLab, tempDir } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/sriov.yaml', import.meta.url));
const PF = '0000:00:02.0';
const UNIT = '/etc/systemd/system/passthru-sriov.service';

let info: LabInfo | undefined;
let dir = '';
let tmp = '';
const node = () => info!.nodes[0]!;

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-sriov-lab-');
  tmp = tempDir('passthru-sriov-out-');
  info = await labUp({ dir, scenarios: ['intel-igpu-sriov-pve8'], baseAddr: '127.0.181.1', rebootDelayS: 1 });
});

test.after.always(() => tearDownLab(dir, tmp));

const run = labRunner({ name: 'sriov', playbook: PLAYBOOK, inventory: () => info!.inventoryPath, out: () => tmp });

function ssh(command: string): string {
  return execFileSync('ssh', [...labSshOptions(dir), `root@${node().address}`, command], { encoding: 'utf8', timeout: 30_000 });
}

/** `-e @file` holding this sriov_devices. */
function varsFile(numvfs: number): string {
  const f = join(tmp, `vars-${numvfs}.yaml`);
  writeFileSync(f, `sriov_devices: [{ slot: "${PF}", numvfs: ${numvfs} }]\n`);
  return `@${f}`;
}

/** The VFs as the node shows them: lspci lines of the PF's id other than the PF, the PF's virtfn links, sriov_numvfs. */
function vfsOnNode(): { lspci: string[]; links: string[]; numvfs: number } {
  const lspci = ssh('lspci -Dnn').split('\n').filter((l) => /\[8086:46d3\]/.test(l) && !l.startsWith(PF));
  const links = ssh(`for l in /sys/bus/pci/devices/${PF}/virtfn*; do [ -L "$l" ] && echo "\${l##*/} $(readlink "$l")"; done; true`).split('\n').filter(Boolean);
  const numvfs = Number(ssh(`cat /sys/bus/pci/devices/${PF}/sriov_numvfs`).trim());
  return { lspci, links, numvfs };
}

function expectVfs(t: ExecutionContext, n: number) {
  const v = vfsOnNode();
  t.is(v.numvfs, n, 'sriov_numvfs');
  t.deepEqual(v.links, Array.from({ length: n }, (_, k) => `virtfn${k} ../0000:00:02.${k + 1}`));
  t.deepEqual(v.lspci.map((l) => l.split(' ')[0]), Array.from({ length: n }, (_, k) => `0000:00:02.${k + 1}`));
  // each VF its own IOMMU group, a link back to its PF
  for (let k = 1; k <= n; k++) {
    t.regex(ssh(`readlink /sys/bus/pci/devices/0000:00:02.${k}/physfn`), new RegExp(`${PF.replace(/\./g, '\\.')}$`, 'm'));
    t.regex(ssh(`readlink /sys/bus/pci/devices/0000:00:02.${k}/iommu_group`), /iommu_groups\/\d+$/m);
  }
}

function gatesOk(t: ExecutionContext, r: RunReport) {
  const gates = tasks(r, node().name).filter((x) => x.kind === 'gate');
  t.true(gates.length > 0, 'gates ran');
  t.deepEqual(gates.filter((g) => g.status !== 'ok').map((g) => `${g.task}: ${g.status} ${g.msg}`), []);
}

const tree = () => nodeTree(dir, node().name);
const boots = () => bootLog(dir, node().name).filter((e) => e.event === 'up').length;

async function rebootNode(): Promise<void> {
  const before = nodeFile(dir, node().name, '/proc/sys/kernel/random/boot_id');
  ssh('reboot');
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    const st = (await labStatus(dir)).find((s) => s.name === node().name)!;
    if (st.state === 'up' && st.bootId && `${st.bootId}\n` !== before) {
      await new Promise((r) => setTimeout(r, 500));
      return;
    }
  }
  throw new Error('the node did not come back after reboot');
}

lab('lspci of a device without a revision: no "(rev ...)", its subsystem and modules in their places', (t) => {
  // The Alder Lake-N iGPU of this profile has no rev: an empty field must not shift the others.
  t.is(ssh('lspci -nn -s 00:02.0'), '00:02.0 VGA compatible controller [0300]: Intel Corporation Alder Lake-N [Intel Graphics] [8086:46d3]\n');
  const k = ssh('lspci -nnk -s 00:02.0');
  t.regex(k, /^\tSubsystem: Intel Corporation Device \[8086:7270\]$/m);
  t.regex(k, /^\tKernel modules: xe, i915$/m);
  t.notRegex(k, /\(rev /);
});

lab('refusal: numvfs above sriov_totalvfs (8 > 7) fails the preflight, nothing changes, no reboot', async (t) => {
  const before = tree();
  const b = boots();
  const r = await run('apply', '-e', varsFile(8));
  t.is(r.code, 2, r.text);
  const f = tasks(r.report, node().name).find((x) => x.status === 'failed');
  t.regex(f?.task ?? '', /^Preflight/);
  t.regex(f?.msg ?? '', /expected at most 7 VFs on 0000:00:02\.0 \(its sriov_totalvfs\), found a request for 8/);
  t.regex(f?.hint ?? '', /set numvfs to 7 or less/);
  t.regex(r.text, new RegExp(`${node().name}.*sriov`), 'the output names the host and the role');
  t.is(r.report.recap[node().name].changed, 0);
  t.deepEqual(changedFiles(before, tree()), []);
  t.is(boots(), b, 'not rebooted');
  t.is(vfsOnNode().numvfs, 0);
});

lab('converge: the unit is written and enabled, the VFs exist at once (no reboot), the gate passes', async (t) => {
  t.is(vfsOnNode().lspci.length, 0, 'no VF before');
  const b = boots();
  const r = await run('apply');
  t.is(r.code, 0, r.text);
  t.is(boots(), b, 'no reboot: no VF existed, nothing had to be removed');
  const unit = nodeFile(dir, node().name, UNIT)!;
  t.regex(unit, /echo 0 > \/sys\/bus\/pci\/devices\/0000:00:02\.0\/sriov_numvfs && echo 4 > \/sys\/bus\/pci\/devices\/0000:00:02\.0\/sriov_numvfs/);
  t.truthy(ssh('ls /etc/systemd/system/multi-user.target.wants/passthru-sriov.service').trim());
  expectVfs(t, 4);
  gatesOk(t, r.report);
});

lab('after a reboot the boot runs the unit: 4 VFs again, lspci lists them, the gate passes', async (t) => {
  await rebootNode();
  expectVfs(t, 4);
  t.regex(ssh('dmesg'), /i915 0000:00:02\.0: Enabled 4 VFs/);
  const r = await run('apply', '--tags', 'verify');
  t.is(r.code, 0, r.text);
  gatesOk(t, r.report);
});

lab('second run: 0 changed, no reboot, no file written', async (t) => {
  const before = tree();
  const b = boots();
  const r = await run('apply');
  t.is(r.code, 0, r.text);
  t.is(r.report.recap[node().name].changed, 0, r.text);
  t.is(boots(), b);
  t.deepEqual(changedFiles(before, tree()), []);
  gatesOk(t, r.report);
});

lab('check mode on the converged node: exit 0, 0 changed, 0 bytes changed', async (t) => {
  const before = tree();
  const r = await run('check');
  t.is(r.code, 0, r.text);
  t.true(r.report.check);
  t.is(r.report.recap[node().name].changed, 0);
  t.deepEqual(changedFiles(before, tree()), []);
});

lab('a new count on a live device (4 → 2) goes through a reboot (only 0 removes VFs); then 2 VFs and the gate passes', async (t) => {
  const b = boots();
  const c = await run('check', '-e', varsFile(2));
  t.is(c.code, 5, c.text);
  t.is(vfsOnNode().numvfs, 4, 'check changed nothing');
  const r = await run('apply', '-e', varsFile(2));
  t.is(r.code, 0, r.text);
  t.is(boots(), b + 1, 'rebooted once');
  t.regex(nodeFile(dir, node().name, UNIT)!, /grep -qx 2 .* echo 2 > \/sys\/bus\/pci\/devices\/0000:00:02\.0\/sriov_numvfs/);
  expectVfs(t, 2);
  gatesOk(t, r.report);
});
