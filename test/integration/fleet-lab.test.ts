/**
 * Fleet orchestration on the lab through the CLI entry point, with the built-in playbook (and one
 * small playbook for batches): a standalone node, a three-node cluster and a guest in one run; an
 * unreachable host that holds back no one, lands in the failed-hosts file and is converged alone
 * by `--limit @file`; only hosts that need a reboot are rebooted; `serial` with
 * `max_fail_percentage`; `--no-reboot`; `check` exit codes. Evidence from the nodes' files and
 * boots.log. Needs root (the lab does); skipped otherwise.
 */
import test from 'ava';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import { runCli, tasks, type CliRun } from '../helpers/cli.ts';
import { bootsSince as bootsSinceIn, downIntervals as downIntervalsIn, isRoot, labTest as lab, nodeTree, sameTree, tearDownLab, tempDir, gatesNotOk, labInventory } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/gpu-passthrough.yaml', import.meta.url));
const ROLES = fileURLToPath(new URL('../../roles', import.meta.url));
/** Nothing listens here (inside this file's address range, never given to a node). */
const DEAD_ADDR = '127.0.5.99';

let info: LabInfo | undefined;
let dir = '';
let tmp = '';
const name = (p: string) => info!.nodes.find((n) => n.profile === p)!.name;
const members = () => info!.nodes.filter((n) => n.profile === 'cluster3').map((n) => n.name);

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-fleet-lab-');
  tmp = tempDir('passthru-fleet-out-');
  info = await labUp({
    dir,
    scenarios: ['intel-grub-pve8-rtx4090', 'pve7-kernel515', 'cluster3', 'debian-guest-nvidia-docker'],
    baseAddr: '127.0.5.1',
    rebootDelayS: 1,
  });
  symlinkSync(ROLES, join(tmp, 'roles'));
});

test.after.always(() => tearDownLab(dir, tmp));

let runNo = 0;
/** `passthru <cmd> <pb> -i <inventory>` with the lab's defaults; reports in `tmp`. */
function run(cmd: 'apply' | 'check', pb: string, inventory: string, ...args: string[]): Promise<CliRun> {
  return runCli([cmd, pb, '-i', inventory, '--progress', 'quiet', '--guests', 'shutdown', ...args], { json: join(tmp, `run-${++runNo}.json`) });
}

/** The lab's inventory with changes to some hosts' variables, written to a temp file. */
function inventoryWith(file: string, change: (hostVars: Map<string, Record<string, unknown>>) => void): string {
  return labInventory(info!.inventoryPath, tmp, file, change);
}

const tree = (node: string) => nodeTree(dir, node);
const bootsSince = (node: string, since: number) => bootsSinceIn(dir, node, since);
const downIntervals = (node: string, since: number) => downIntervalsIn(dir, node, since);

const failedHostsFile = () => join(tmp, 'failed-hosts');
let fixedInventory = '';

lab('one run: standalone node, three-node cluster and a guest, with an unreachable host that holds back no one (exit 3, failed-hosts file)', async (t) => {
  const seven = name('pve7-kernel515');
  const intel = name('intel-grub-pve8-rtx4090');
  const guest = name('debian-guest-nvidia-docker');
  const inv = inventoryWith('inventory-dead.yaml', (hv) => {
    hv.get(seven)!.host = DEAD_ADDR;
  });
  fixedInventory = inventoryWith('inventory-fixed.yaml', () => undefined);
  const sevenTree = tree(seven);
  const since = Date.now();
  const r = await run('apply', PLAYBOOK, inv, '--failed-hosts', failedHostsFile());
  t.is(r.code, 3, r.text);
  t.deepEqual(r.report.failedHosts, [seven]);
  t.deepEqual(readFileSync(failedHostsFile(), 'utf8').split('\n').filter((l) => l && !l.startsWith('#')), [seven]);
  t.true(r.report.recap[seven].unreachable > 0);
  t.regex(JSON.stringify(tasks(r.report, seven)), new RegExp(DEAD_ADDR.replace(/\./g, '\\.')));
  t.true(sameTree(sevenTree, tree(seven)), 'the unreachable node is untouched');
  t.deepEqual(bootsSince(seven, since), []);

  // The others converged, each Proxmox node rebooted once, gates ok.
  for (const h of [intel, ...members()]) {
    t.is(r.report.recap[h].failed, 0, h);
    t.true(r.report.recap[h].rebooted, `${h} rebooted`);
    t.deepEqual(bootsSince(h, since).map((e) => e.event), ['down', 'up'], h);
    const gates = tasks(r.report, h).filter((x) => x.kind === 'gate');
    t.true(gates.length > 0 && gatesNotOk(gates).length === 0, `${h} gates ok`);
  }
  // Cluster members one at a time; the standalone node did not wait for them.
  const ivs = members().flatMap((m) => downIntervals(m, since)).sort((a, b) => a.down - b.down);
  t.is(ivs.length, 3);
  for (let i = 1; i < ivs.length; i++) t.true(ivs[i]!.down >= ivs[i - 1]!.up, `${ivs[i]!.node} down while ${ivs[i - 1]!.node} was`);
  const solo = downIntervals(intel, since)[0]!;
  t.true(solo.down < ivs[1]!.down, 'the standalone node rebooted alongside the cluster, not after it');
  // The guest's stage is not rebooted whatever the policy decided for it.
  t.deepEqual(bootsSince(guest, since), [], 'the guest is not rebooted');
});

lab('rerun with --limit @failed-hosts (address fixed) and --no-reboot: only that host, reboot pending, gates pending not failed, exit 6', async (t) => {
  const seven = name('pve7-kernel515');
  t.truthy(fixedInventory, 'the first run wrote the failed-hosts file');
  const others = info!.nodes.map((n) => n.name).filter((n) => n !== seven);
  const trees = new Map(others.map((h) => [h, tree(h)]));
  const since = Date.now();
  const r = await run('apply', PLAYBOOK, fixedInventory, '--limit', `@${failedHostsFile()}`, '--no-reboot', '--failed-hosts', join(tmp, 'failed-hosts-2'));
  t.is(r.code, 6, r.text); // EXIT.rebootPending
  t.deepEqual(Object.keys(r.report.recap), [seven]);
  t.true(r.report.recap[seven].changed > 0);
  t.true(r.report.recap[seven].rebootPending);
  t.false(r.report.recap[seven].rebooted);
  t.is(r.report.recap[seven].failed, 0);
  const gates = tasks(r.report, seven).filter((x) => x.kind === 'gate');
  t.true(gates.some((g) => g.status === 'pending'), JSON.stringify(gates.map((g) => [g.task, g.status])));
  t.false(gates.some((g) => g.status === 'failed'), JSON.stringify(gates.map((g) => [g.task, g.status, g.msg])));
  t.regex(nodeFile(dir, seven, '/etc/default/grub')!, /intel_iommu=on iommu=pt/);
  t.notRegex(nodeFile(dir, seven, '/proc/cmdline')!, /iommu=pt/, 'the booted command line is still the old one');
  t.deepEqual(bootsSince(seven, since), []);
  for (const h of others) {
    t.true(sameTree(trees.get(h)!, tree(h)), `${h} untouched`);
    t.deepEqual(bootsSince(h, since), [], `${h} not rebooted`);
  }
});

lab('rerun after --no-reboot: the pending reboot happens and the gates pass', async (t) => {
  const seven = name('pve7-kernel515');
  const since = Date.now();
  const r = await run('apply', PLAYBOOK, fixedInventory, '--limit', `@${failedHostsFile()}`, '--failed-hosts', join(tmp, 'failed-hosts-3'));
  t.is(r.code, 0, r.text);
  t.true(r.report.recap[seven].rebooted, JSON.stringify(r.report.recap[seven]));
  t.false(r.report.recap[seven].rebootPending);
  t.deepEqual(bootsSince(seven, since).map((e) => e.event), ['down', 'up']);
  t.regex(nodeFile(dir, seven, '/proc/cmdline')!, /intel_iommu=on iommu=pt/);
  const gates = tasks(r.report, seven).filter((x) => x.kind === 'gate');
  t.deepEqual(gatesNotOk(gates).map((g) => [g.task, g.status]), []);
});

lab('check: exit 0 on the converged fleet, exit 5 with drift; then only the drifted host is rebooted by apply', async (t) => {
  const inv = info!.inventoryPath;
  // The guests' stage did not run in the first run (the stage before stopped the run): run it.
  const guests = await run('apply', PLAYBOOK, inv, '--limit', 'gpu_guests');
  t.is(guests.code, 0, guests.text);
  const clean = await run('check', PLAYBOOK, inv);
  t.is(clean.code, 0, clean.text);
  const c1 = members()[0]!;
  const conf = nodeFile(dir, c1, '/etc/modprobe.d/vfio.conf')!;
  nodeFile(dir, c1, '/etc/modprobe.d/vfio.conf', conf.replace('disable_vga=1', 'disable_vga=0'));
  const drift = await run('check', PLAYBOOK, inv);
  t.is(drift.code, 5, drift.text);
  t.deepEqual(Object.entries(drift.report.recap).filter(([, v]) => v.changed > 0).map(([h]) => h), [c1]);
  t.regex(JSON.stringify(tasks(drift.report, c1).filter((x) => x.changed).map((x) => x.diff)), /disable_vga=1/);

  const since = Date.now();
  const fix = await run('apply', PLAYBOOK, inv);
  t.is(fix.code, 0, fix.text);
  t.is(nodeFile(dir, c1, '/etc/modprobe.d/vfio.conf'), conf);
  t.true(fix.report.recap[c1].rebooted);
  t.deepEqual(bootsSince(c1, since).map((e) => e.event), ['down', 'up']);
  for (const n of info!.nodes.map((x) => x.name).filter((x) => x !== c1)) {
    t.false(fix.report.recap[n].rebooted, n);
    t.deepEqual(bootsSince(n, since), [], `${n} needs no reboot and got none`);
  }
});

lab('serial 1 with max_fail_percentage 0: a failing first host stops the rest; serial 2 with 50%: one of two is not "exceeded"', async (t) => {
  const [c1, c2, c3] = members() as [string, string, string];
  const pb = join(tmp, 'batches.yaml');
  const stage = (serial: number, mfp: number) =>
    `- name: Hugepages in batches\n  hosts: cluster_lab3\n  serial: ${serial}\n  max_fail_percentage: ${mfp}\n  reboot: never\n  roles:\n    - hugepages\n`;
  // c1 asks for more than fits (its preflight refuses), c2 and c3 for a new count.
  const inv = inventoryWith('inventory-batches.yaml', (hv) => {
    hv.get(c1)!.hugepages = { size: '2M', count: 999999 };
    hv.get(c2)!.hugepages = { size: '2M', count: 2048 };
    hv.get(c3)!.hugepages = { size: '2M', count: 2048 };
  });
  const sysctl = '/etc/sysctl.d/80-passthru-hugepages.conf';
  const before = [c2, c3].map((h) => nodeFile(dir, h, sysctl));

  writeFileSync(pb, stage(1, 0));
  const r1 = await run('apply', pb, inv);
  t.is(r1.code, 2, r1.text);
  t.deepEqual(r1.report.failedHosts, [c1]);
  t.regex(tasks(r1.report, c1).find((x) => x.status === 'failed')?.msg ?? '', /MemTotal|hugepages/i);
  for (const [i, h] of [c2, c3].entries()) {
    t.deepEqual(tasks(r1.report, h).filter((x) => x.status !== 'skipped'), [], `${h} did not run`);
    t.is(nodeFile(dir, h, sysctl), before[i], `${h} unchanged`);
  }

  writeFileSync(pb, stage(2, 50));
  const r2 = await run('apply', pb, inv);
  t.is(r2.code, 2, r2.text);
  t.deepEqual(r2.report.failedHosts, [c1]);
  for (const h of [c2, c3]) t.regex(nodeFile(dir, h, sysctl) ?? '', /vm\.nr_hugepages = 2048/, `${h} ran (batch 2 went on)`);
});
