/**
 * The built-in GPU passthrough playbook against the lab (real sshd nodes, stub tools, hardware
 * profiles), through the CLI entry point: preflight refusals that change nothing, converge of
 * every profile that should converge (with the right file per bootloader), second run 0 changed
 * and no reboot, check mode 0 bytes, a hand-made drift found and fixed, `--tags vfio` touching
 * only what the vfio role owns, and gate failures with their messages.
 * Evidence comes from the nodes: their files (`nodeFile`, the node's root tree) and `boots.log`.
 * Needs root (the lab does); skipped otherwise.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootLog, labStatus, labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import type { RunReport, TaskResult } from '../../src/model/types.ts';
import { runCli, tasks, type CliRun } from '../helpers/cli.ts';
import { changedFiles, isRoot, labSshOptions, labTest as lab, nodeTree, tearDownLab, tempDir, gatesNotOk } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/gpu-passthrough.yaml', import.meta.url));

/** Profiles that converge, plus the ones a preflight refuses. */
const CONVERGE = ['intel-grub-pve8-rtx4090', 'amd-systemdboot-zfs-pve8-rx6800', 'pve7-kernel515', 'cluster3', 'debian-guest-nvidia-docker', 'shared-group-usb', 'two-identical-gpus-bootvga'];
const REFUSED = ['iommu-off-firmware'];

let info: LabInfo | undefined;
let dir = '';
let tmp = '';
let convergeHosts: string[] = [];
let pveHosts: string[] = [];
const byProfile = (p: string) => info!.nodes.find((n) => n.profile === p)!.name;

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-roles-lab-');
  tmp = tempDir('passthru-roles-out-');
  info = await labUp({ dir, scenarios: [...CONVERGE, ...REFUSED], baseAddr: '127.0.4.1', rebootDelayS: 1 });
  convergeHosts = info.nodes.filter((n) => !REFUSED.includes(n.profile)).map((n) => n.name);
  pveHosts = info.nodes.filter((n) => !REFUSED.includes(n.profile) && n.profile !== 'debian-guest-nvidia-docker').map((n) => n.name);
});

test.after.always(() => tearDownLab(dir, tmp));

let runNo = 0;
/** The built-in playbook on the lab's inventory; reports and the failed-hosts file in `tmp`. */
function run(cmd: 'apply' | 'check', ...args: string[]): Promise<CliRun> {
  return runCli(
    [cmd, PLAYBOOK, '-i', info!.inventoryPath, '--progress', 'quiet', '--guests', 'shutdown', '--failed-hosts', join(tmp, 'failed-hosts'), ...args],
    { json: join(tmp, `run-${++runNo}.json`) },
  );
}

/** Every file under the node's own root (what the node wrote), path → sha256. */
const tree = (node: string) => nodeTree(dir, node);
const bootId = (node: string) => nodeFile(dir, node, '/proc/sys/kernel/random/boot_id')!.trim();
const failedTask = (r: RunReport, host: string) => tasks(r, host).find((x) => x.status === 'failed');

function gatesOk(t: ExecutionContext, r: RunReport, host: string) {
  const gates = tasks(r, host).filter((x) => x.kind === 'gate');
  t.true(gates.length > 0, `${host}: gates ran`);
  const bad = gatesNotOk(gates);
  t.deepEqual(bad.map((g) => `${g.task}: ${g.status} ${g.msg}`), [], `${host}: every gate ok`);
}

async function sshNode(node: string, command: string): Promise<string> {
  const n = info!.nodes.find((x) => x.name === node)!;
  return execFileSync('ssh', [...labSshOptions(dir), `root@${n.address}`, command], { encoding: 'utf8', timeout: 30_000 });
}

/** Reboot a node the way an admin would (its `reboot`), wait for a new boot_id. */
async function rebootNode(node: string): Promise<void> {
  const before = bootId(node);
  await sshNode(node, 'reboot');
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    const st = (await labStatus(dir)).find((s) => s.name === node)!;
    if (st.state === 'up' && st.bootId && st.bootId !== before) {
      // sshd answers once the supervisor wrote state up; give it a moment to listen.
      await new Promise((r) => setTimeout(r, 300));
      return;
    }
  }
  throw new Error(`${node} did not come back after reboot`);
}

// ---- Preflight refusals: before anything changes, nothing changes. ---------------------------

/**
 * Runs apply on one host that a preflight must refuse, and checks what every refusal shares:
 * exit 2, a failed preflight task, nothing changed (report and the node's files), no reboot, the
 * host listed for a rerun. Returns the failed task for the test's own checks of the message.
 */
async function refused(t: ExecutionContext, host: string, ...args: string[]): Promise<TaskResult> {
  const before = tree(host);
  const boots = bootLog(dir, host).length;
  const r = await run('apply', '--limit', host, ...args);
  t.is(r.code, 2, r.text);
  const f = failedTask(r.report, host);
  if (!f) throw new Error(`no failed task on ${host}:\n${r.text}`);
  t.regex(f.task, /^Preflight/);
  t.is(r.report.recap[host].changed, 0);
  t.deepEqual(changedFiles(before, tree(host)), []);
  t.is(bootLog(dir, host).length, boots, 'not rebooted');
  t.deepEqual(r.report.failedHosts, [host]);
  return f;
}

lab('preflight: two identical GPUs with vfio_bind: ids forced, ids= would capture the boot display: refused, no file changed', async (t) => {
  const f = await refused(t, byProfile('two-identical-gpus-bootvga'), '-e', 'vfio_bind=ids');
  t.regex(f.msg, /would also bind the boot display 0000:01:00\.0/);
  t.regex(f.hint ?? '', /vfio_bind: address/);
});

lab('preflight: IOMMU off in the firmware (kernel that turns it on by default): refused with the firmware hint, no file changed', async (t) => {
  const f = await refused(t, byProfile('iommu-off-firmware'));
  t.regex(f.msg, /IOMMU/);
  t.regex(f.hint ?? '', /firmware/);
  t.regex(f.hint ?? '', /VT-d/);
});

lab('preflight: shared IOMMU group on a kernel without the ACS override patch: refused, no file changed', async (t) => {
  const f = await refused(t, byProfile('shared-group-usb'), '-e', 'acs_override_supported=false');
  t.regex(`${f.msg} ${f.hint ?? ''}`, /ACS override patch/);
  t.regex(`${f.msg} ${f.hint ?? ''}`, /0000:04:00\.0|group 14/);
});

lab('preflight: hugepages above the share of MemTotal (-e): refused, no file changed', async (t) => {
  const f = await refused(t, byProfile('intel-grub-pve8-rtx4090'), '-e', '{"hugepages": {"size": "2M", "count": 30000}}');
  t.regex(f.msg, /hugepages|MemTotal/i);
  t.regex(f.hint ?? '', /hugepages\.count/);
});

// ---- Converge every profile that should converge. --------------------------------------------

let converged: RunReport | undefined;
const grubBefore = new Map<string, string | null>();

lab('converge: every profile (GRUB, systemd-boot, PVE 7, cluster, guest, shared group with ACS): exit 0, gates ok, right bootloader file', async (t) => {
  const amd = byProfile('amd-systemdboot-zfs-pve8-rx6800');
  const intel = byProfile('intel-grub-pve8-rtx4090');
  const amdGrub = nodeFile(dir, amd, '/etc/default/grub');
  const amdGrubCfg = nodeFile(dir, amd, '/boot/grub/grub.cfg');
  const intelKernelCmdline = nodeFile(dir, intel, '/etc/kernel/cmdline');
  const intelGrubCfg = nodeFile(dir, intel, '/boot/grub/grub.cfg');
  const refusedTrees = REFUSED.map((p) => tree(byProfile(p)));
  const since = Date.now();
  const r = await run('apply', '--limit', convergeHosts.join(','));
  converged = r.report;
  t.is(r.code, 0, r.text);
  t.deepEqual(r.report.failedHosts, []);
  for (const h of convergeHosts) {
    t.is(r.report.recap[h].failed, 0, h);
    t.true(r.report.recap[h].changed > 0, `${h} changed something`);
    gatesOk(t, r.report, h);
  }
  for (const h of pveHosts) {
    t.true(r.report.recap[h].rebooted, `${h} rebooted`);
    const ev = bootLog(dir, h).filter((e) => e.at >= since);
    t.deepEqual(ev.map((e) => e.event), ['down', 'up'], `${h}: one reboot in boots.log`);
  }
  const guest = byProfile('debian-guest-nvidia-docker');
  t.false(r.report.recap[guest].rebooted);
  t.deepEqual(bootLog(dir, guest).filter((e) => e.at >= since), [], 'the guest is not rebooted');
  t.regex(nodeFile(dir, guest, '/etc/apt/sources.list.d/nvidia-container-toolkit.list') ?? '', /signed-by=/);

  // GRUB node: /etc/default/grub edited, update-grub ran (grub.cfg has the parameters), /etc/kernel/cmdline untouched.
  t.regex(nodeFile(dir, intel, '/etc/default/grub')!, /^GRUB_CMDLINE_LINUX_DEFAULT="[^"]*intel_iommu=on iommu=pt/m);
  t.not(nodeFile(dir, intel, '/boot/grub/grub.cfg'), intelGrubCfg);
  t.regex(nodeFile(dir, intel, '/boot/grub/grub.cfg')!, /linux\s+\/boot\/vmlinuz-\S+ .*intel_iommu=on iommu=pt/);
  t.is(nodeFile(dir, intel, '/etc/kernel/cmdline'), intelKernelCmdline);
  t.regex(nodeFile(dir, intel, '/proc/cmdline')!, /intel_iommu=on iommu=pt/);
  // systemd-boot node: /etc/kernel/cmdline edited, proxmox-boot-tool refresh ran (the booted line has it), GRUB files untouched.
  t.regex(nodeFile(dir, amd, '/etc/kernel/cmdline')!, /iommu=pt/);
  t.regex(nodeFile(dir, amd, '/etc/kernel/cmdline')!, /default_hugepagesz=1G hugepagesz=1G hugepages=16/);
  t.is(nodeFile(dir, amd, '/etc/default/grub'), amdGrub, 'systemd-boot node: /etc/default/grub not edited');
  t.is(nodeFile(dir, amd, '/boot/grub/grub.cfg'), amdGrubCfg, 'systemd-boot node: update-grub not run');
  t.regex(nodeFile(dir, amd, '/proc/cmdline')!, /iommu=pt/);
  const amdHandlers = tasks(r.report, amd).filter((x) => x.kind === 'handler' && /refresh bootloader/.test(x.task));
  const intelHandlers = tasks(r.report, intel).filter((x) => x.kind === 'handler' && /refresh bootloader/.test(x.task));
  t.true(amdHandlers.length > 0 && intelHandlers.length > 0, 'refresh handlers ran');
  // PVE 7 / kernel 5.15: vfio_virqfd is still a module there.
  t.regex(nodeFile(dir, byProfile('pve7-kernel515'), '/etc/modules')!, /^vfio_virqfd$/m);
  t.notRegex(nodeFile(dir, intel, '/etc/modules')!, /^vfio_virqfd$/m);
  // Shared group: ACS override on the booted line.
  t.regex(nodeFile(dir, byProfile('shared-group-usb'), '/proc/cmdline')!, /pcie_acs_override=downstream,multifunction/);
  // Two identical GPUs, the first the boot display: bound by address (driver_override in the
  // initramfs), no ids= anywhere, the boot display and its audio keep their drivers, nouveau
  // (used by the boot display) not blacklisted.
  const twin = byProfile('two-identical-gpus-bootvga');
  const override = nodeFile(dir, twin, '/etc/initramfs-tools/scripts/init-top/passthru-vfio-override')!;
  t.regex(override, /echo vfio-pci > \/sys\/bus\/pci\/devices\/0000:41:00\.0\/driver_override/);
  t.regex(override, /0000:41:00\.1\/driver_override/);
  t.notRegex(override, /0000:01:00/);
  t.notRegex(nodeFile(dir, twin, '/etc/modprobe.d/vfio.conf')!, /ids=/);
  t.notRegex(nodeFile(dir, twin, '/etc/modprobe.d/blacklist-passthru.conf') ?? '', /^blacklist nouveau$/m);
  t.regex(nodeFile(dir, twin, `/boot/initrd.img-6.8.12-4-pve`)!, /passthru-vfio-override/);
  const lspci = await sshNode(twin, 'lspci -nnk');
  const driverOf = (addr: string) => new RegExp(`^${addr} [^\\n]*\\n(?:\\t[^\\n]*\\n)*?\\tKernel driver in use: (\\S+)`, 'm').exec(lspci)?.[1];
  t.is(driverOf('41:00.0'), 'vfio-pci', lspci);
  t.is(driverOf('41:00.1'), 'vfio-pci', lspci);
  t.is(driverOf('01:00.0'), 'nouveau', lspci);
  t.is(driverOf('01:00.1'), 'snd_hda_intel', lspci);
  const twinGate = tasks(r.report, twin).find((x) => x.kind === 'gate' && /vfio-pci/.test(x.task))!;
  t.regex(twinGate.msg ?? '', /same id kept: 0000:01:00\.0 on nouveau/, JSON.stringify(twinGate));
  // The refused hosts were not in the run and stay as they were.
  REFUSED.forEach((p, i) => t.deepEqual(changedFiles(refusedTrees[i]!, tree(byProfile(p))), [], p));
  for (const h of pveHosts) grubBefore.set(h, nodeFile(dir, h, '/etc/default/grub'));
});

lab('second run: 0 changed, no reboot (boot_id unchanged), gates ok', async (t) => {
  t.truthy(converged, 'converge ran');
  const ids = new Map<string, string>(convergeHosts.map((h) => [h, bootId(h)]));
  const trees = new Map(convergeHosts.map((h) => [h, tree(h)]));
  const r = await run('apply', '--limit', convergeHosts.join(','));
  t.is(r.code, 0, r.text);
  for (const h of convergeHosts) {
    t.is(r.report.recap[h].changed, 0, `${h}: ${tasks(r.report, h).filter((x) => x.changed).map((x) => x.task).join('; ')}`);
    t.false(r.report.recap[h].rebooted, h);
    t.is(bootId(h), ids.get(h)!, `${h} boot_id unchanged`);
    t.deepEqual(changedFiles(trees.get(h)!, tree(h)), [], `${h}: no file written`);
    gatesOk(t, r.report, h);
  }
});

lab('check mode on the converged fleet: exit 0, 0 bytes changed on every node', async (t) => {
  const trees = new Map(info!.nodes.map((n) => [n.name, tree(n.name)]));
  const r = await run('check', '--limit', convergeHosts.join(','));
  t.is(r.code, 0, r.text);
  t.true(r.report.check);
  for (const n of info!.nodes) t.deepEqual(changedFiles(trees.get(n.name)!, tree(n.name)), [], n.name);
  for (const h of convergeHosts) t.is(r.report.recap[h].changed, 0, h);
});

lab('drift: an edited /etc/modprobe.d/vfio.conf is found by check (exit 5, diff) and fixed by apply', async (t) => {
  const host = byProfile('intel-grub-pve8-rtx4090');
  const good = nodeFile(dir, host, '/etc/modprobe.d/vfio.conf')!;
  t.regex(good, /^options vfio-pci ids=10de:2684,10de:22ba/m);
  nodeFile(dir, host, '/etc/modprobe.d/vfio.conf', good.replace(/ids=\S+/, 'ids=10de:2684'));
  const trees = new Map(info!.nodes.map((n) => [n.name, tree(n.name)]));

  const c = await run('check', '--limit', convergeHosts.join(','));
  t.is(c.code, 5, c.text);
  const drift = tasks(c.report, host).filter((x) => x.changed && x.kind === 'task');
  t.deepEqual(drift.map((x) => x.role), ['vfio'], 'only the vfio task sees drift');
  const d = drift[0]!.diff.find((x) => /vfio\.conf/.test(JSON.stringify(x)));
  t.truthy(d, 'the report carries the diff of vfio.conf');
  t.regex(JSON.stringify(d), /10de:22ba/);
  for (const h of convergeHosts.filter((x) => x !== host)) t.is(c.report.recap[h].changed, 0, h);
  for (const n of info!.nodes) t.deepEqual(changedFiles(trees.get(n.name)!, tree(n.name)), [], `check wrote nothing on ${n.name}`);

  const a = await run('apply', '--limit', convergeHosts.join(','));
  t.is(a.code, 0, a.text);
  t.is(nodeFile(dir, host, '/etc/modprobe.d/vfio.conf'), good);
  for (const h of convergeHosts.filter((x) => x !== host)) t.is(a.report.recap[h].changed, 0, h);
  gatesOk(t, a.report, host);

  const again = await run('check', '--limit', convergeHosts.join(','));
  t.is(again.code, 0, again.text);
});

lab('--tags vfio touches only what the vfio role owns', async (t) => {
  const host = byProfile('pve7-kernel515');
  const vfioConf = nodeFile(dir, host, '/etc/modprobe.d/vfio.conf')!;
  const grub = nodeFile(dir, host, '/etc/default/grub')!;
  const blacklist = nodeFile(dir, host, '/etc/modprobe.d/blacklist-passthru.conf')!;
  // Drift in three roles' files: vfio's, iommu's and blacklist's.
  nodeFile(dir, host, '/etc/modprobe.d/vfio.conf', vfioConf + 'options vfio-pci disable_idle_d3=1\n');
  nodeFile(dir, host, '/etc/default/grub', grub.replace(' intel_iommu=on', ''));
  nodeFile(dir, host, '/etc/modprobe.d/blacklist-passthru.conf', '# emptied by hand\n');
  const before = tree(host);
  const boots = bootLog(dir, host).length;

  const r = await run('apply', '--limit', host, '--tags', 'vfio', '--no-reboot');
  t.is(r.code, 6, r.text); // EXIT.rebootPending: the initramfs changed, not booted
  const ran = tasks(r.report, host).filter((x) => x.status !== 'skipped');
  t.deepEqual([...new Set(ran.map((x) => x.role))], ['vfio'], 'only vfio tasks ran');
  const changed = changedFiles(before, tree(host));
  const owned = ['/etc/modprobe.d/vfio.conf', '/etc/modules', /^\/boot\/initrd\.img-/];
  t.true(changed.includes('/etc/modprobe.d/vfio.conf'), changed.join(' '));
  t.deepEqual(changed.filter((f) => !owned.some((o) => (typeof o === 'string' ? o === f : o.test(f)))), [], `only vfio's files changed: ${changed.join(' ')}`);
  t.is(nodeFile(dir, host, '/etc/modprobe.d/vfio.conf'), vfioConf);
  t.is(nodeFile(dir, host, '/etc/default/grub'), grub.replace(' intel_iommu=on', ''), 'iommu drift left alone');
  t.is(nodeFile(dir, host, '/etc/modprobe.d/blacklist-passthru.conf'), '# emptied by hand\n', 'blacklist drift left alone');
  t.is(bootLog(dir, host).length, boots, 'not rebooted');

  // Put the rest back as it was (full apply), so the node ends converged.
  const fix = await run('apply', '--limit', host);
  t.is(fix.code, 0, fix.text);
  const cmdlineTokens = (g: string) => (/^GRUB_CMDLINE_LINUX_DEFAULT="([^"]*)"/m.exec(g)?.[1] ?? '').split(' ').sort();
  t.deepEqual(cmdlineTokens(nodeFile(dir, host, '/etc/default/grub')!), cmdlineTokens(grub), 'intel_iommu=on is back');
  t.is(nodeFile(dir, host, '/etc/modprobe.d/blacklist-passthru.conf'), blacklist);
  t.true(fix.report.recap[host].rebooted, 'the full apply reboots for the command line');
  gatesOk(t, fix.report, host);
});

// ---- Gate failures on the booted kernel. --------------------------------------------------------

lab('gate: VT-d turned off in the firmware after converging: gate-iommu fails with the firmware hint', async (t) => {
  const host = byProfile('pve7-kernel515');
  const pj = join(dir, 'nodes', host, 'profile.json');
  const prof = JSON.parse(readFileSync(pj, 'utf8'));
  prof.firmware.iommu = false;
  writeFileSync(pj, JSON.stringify(prof, null, 2) + '\n');
  await rebootNode(host);
  const r = await run('apply', '--limit', host, '--tags', 'verify');
  t.is(r.code, 2, r.text);
  const gate = tasks(r.report, host).find((x) => x.kind === 'gate' && /IOMMU is active/.test(x.task))!;
  t.is(gate.status, 'failed');
  t.regex(gate.msg, /expected IOMMU groups .* found none although the kernel booted with .*intel_iommu=on/);
  t.regex(gate.hint ?? '', /firmware/);
  t.regex(gate.hint ?? '', /No software setting can fix this/);
});

lab('gate: a host driver claims the card first (softdep and blacklist gone from the initramfs): gate-vfio fails with its cause', async (t) => {
  const host = byProfile('intel-grub-pve8-rtx4090');
  const conf = nodeFile(dir, host, '/etc/modprobe.d/vfio.conf')!;
  nodeFile(dir, host, '/etc/modprobe.d/vfio.conf', conf.split('\n').filter((l) => !/^softdep/.test(l)).join('\n'));
  await sshNode(host, 'rm -f /etc/modprobe.d/blacklist-passthru.conf && update-initramfs -u -k all');
  await rebootNode(host);
  const r = await run('apply', '--limit', host, '--tags', 'verify');
  t.is(r.code, 2, r.text);
  const gate = tasks(r.report, host).find((x) => x.kind === 'gate' && /vfio-pci/.test(x.task))!;
  t.is(gate.status, 'failed', JSON.stringify(gate));
  t.regex(gate.msg, /expected vfio-pci in use for 0000:01:00\.0, 0000:01:00\.1, found nouveau, snd_hda_intel/);
  t.regex(gate.hint ?? '', /softdep\/blacklist|host driver claimed/);
  t.is(r.report.recap[host].changed, 0, '--tags verify changes nothing');
});
