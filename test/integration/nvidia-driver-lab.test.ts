/**
 * The guest stage of playbooks/ai-vm.yaml (nvidia-driver, then nvidia-container-toolkit) on lab
 * guests: a Debian 12 VM whose RTX 4090 is on nouveau and whose APT sources hold only `main` gets
 * the components, the headers and the driver, reboots once, and then nvidia-smi lists the GPU and
 * the gates pass; the second run changes nothing and does not reboot; check mode changes no byte;
 * a guest without an NVIDIA GPU, and one that is not Debian, are refused with nothing touched.
 * The playbook is also validated and listed against inventory.example.yaml. Lab addresses 127.0.182.x.
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootLog, labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import { captureIo, runCli, tasks, type CliRun } from '../helpers/cli.ts';
import { main } from '../../src/cli/main.ts';
import { changedFiles, isRoot, labSh, labTest, nodeTree, tearDownLab, tempDir } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/ai-vm.yaml', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../inventory.example.yaml', import.meta.url));
let info: LabInfo;
let dir = '';
let tmp = '';
const GUEST = 'ai-guest';
const PLAIN = 'plain-guest';

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-nvdrv-lab-');
  tmp = tempDir('passthru-nvdrv-out-');
  // a second fresh guest and a Proxmox node for the whole playbook, the guest that came with its driver
  info = await labUp({ dir, scenarios: ['debian-guest-nvidia-fresh', 'debian-guest-nogpu', 'intel-grub-pve8-rtx4090', 'debian-guest-nvidia-fresh', 'debian-guest-nvidia-docker'], baseAddr: '127.0.182.1', rebootDelayS: 1 });
});
test.after.always(() => tearDownLab(dir, tmp));

let runNo = 0;
const run = (cmd: 'apply' | 'check', ...args: string[]): Promise<CliRun> => runOn(info.inventoryPath, cmd, ...args);
const runOn = (inv: string, cmd: 'apply' | 'check', ...args: string[]): Promise<CliRun> =>
  runCli([cmd, PLAYBOOK, '-i', inv, '--progress', 'plain', '--failed-hosts', join(tmp, `failed-${runNo + 1}`), ...args], { json: join(tmp, `run-${++runNo}.json`) });
const sh = (node: string, command: string) => labSh(dir, info.nodes.find((x) => x.name === node)!.address, command);
const failedMsg = (r: CliRun, h: string) => tasks(r.report, h).filter((x) => x.status === 'failed').map((x) => x.msg).join(' | ');
const gate = (r: CliRun, h: string, role: string) => tasks(r.report, h).find((x) => x.kind === 'gate' && x.role === role);
const SOURCES = '/etc/apt/sources.list.d/debian.sources';

labTest('check on the fresh guest: the drift with its diff, no byte changed', async (t) => {
  const before = nodeTree(dir, GUEST);
  const r = await run('check', '--limit', GUEST);
  t.is(r.code, 5, r.text);
  t.regex(r.text, /\+Components: main contrib non-free non-free-firmware/);
  t.deepEqual(changedFiles(before, nodeTree(dir, GUEST)), []);
  // nothing runs yet: no driver, nouveau has the card
  t.is((await sh(GUEST, 'nvidia-smi -L')).code, 127);
  t.regex((await sh(GUEST, 'lspci -nnk -s 01:00.0')).out, /Kernel driver in use: nouveau/);
});

labTest('apply: components, headers, driver, one reboot; nvidia-smi lists the GPU, the gates pass; rerun 0 changed, no reboot; check 0 bytes', async (t) => {
  const since = Date.now();
  const r1 = await run('apply', '--limit', GUEST);
  t.is(r1.code, 0, r1.text);
  t.true(r1.report.recap[GUEST]!.rebooted, 'the guest was rebooted');
  t.is(bootLog(dir, GUEST).filter((e) => e.at >= since && e.event === 'up').length, 1, 'exactly one boot');
  // the APT entries got the components, in their deb822 format, the rest kept
  const src = nodeFile(dir, GUEST, SOURCES) ?? '';
  t.is(src.match(/^Components: main contrib non-free non-free-firmware$/gm)?.length, 2, src);
  t.regex(src, /^Signed-By: \/usr\/share\/keyrings\/debian-archive-keyring\.gpg$/m);
  // installed as the packages' own scripts do: nouveau blacklisted, DKMS built for the booted kernel
  const pk = await sh(GUEST, 'dpkg-query -W nvidia-driver nvidia-kernel-dkms nvidia-smi libcuda1 firmware-misc-nonfree linux-headers-6.1.0-27-amd64 linux-headers-amd64 nvidia-container-toolkit');
  t.is(pk.code, 0, pk.err);
  t.is((await sh(GUEST, 'cat /etc/modprobe.d/nvidia-blacklists-nouveau.conf')).out.includes('blacklist nouveau'), true);
  t.regex((await sh(GUEST, 'dkms status')).out, /^nvidia-current\/535\.216\.01, 6\.1\.0-27-amd64, x86_64: installed$/m);
  // on the booted guest
  t.regex((await sh(GUEST, 'lspci -nnk -s 01:00.0')).out, /Kernel driver in use: nvidia/);
  const smi = await sh(GUEST, 'nvidia-smi -L');
  t.is(smi.code, 0, smi.out + smi.err);
  t.regex(smi.out, /^GPU 0: NVIDIA GeForce RTX 4090 \(UUID: GPU-/m);
  t.regex((await sh(GUEST, 'nvidia-smi --query-gpu=pci.bus_id,driver_version --format=csv,noheader')).out, /^00000000:01:00\.0, 535\.216\.01$/m);
  const g = gate(r1, GUEST, 'nvidia-driver');
  t.is(g?.status, 'ok', JSON.stringify(g));
  t.regex(g?.msg ?? '', /nvidia-smi lists 0000:01:00\.0 NVIDIA GeForce RTX 4090 \(driver 535\.216\.01\)/);
  t.is(gate(r1, GUEST, 'nvidia-container-toolkit')?.status, 'ok', JSON.stringify(gate(r1, GUEST, 'nvidia-container-toolkit')));
  t.regex((await sh(GUEST, 'docker info --format "{{json .Runtimes}}"')).out, /nvidia/);

  const since2 = Date.now();
  const r2 = await run('apply', '--limit', GUEST);
  t.is(r2.code, 0, r2.text);
  t.is(r2.report.recap[GUEST]!.changed, 0, tasks(r2.report, GUEST).filter((x) => x.changed).map((x) => x.task).join(', '));
  t.false(r2.report.recap[GUEST]!.rebooted);
  t.deepEqual(bootLog(dir, GUEST).filter((e) => e.at >= since2), [], 'no reboot');

  const before = nodeTree(dir, GUEST);
  const c = await run('check', '--limit', GUEST);
  t.is(c.code, 0, c.text);
  t.deepEqual(changedFiles(before, nodeTree(dir, GUEST)), []);
});

labTest('refusals touch nothing: a guest without an NVIDIA GPU, a guest that is not Debian', async (t) => {
  let before = nodeTree(dir, PLAIN);
  let r = await run('apply', '--limit', PLAIN);
  t.is(r.code, 2, r.text);
  t.regex(failedMsg(r, PLAIN), /expected an NVIDIA GPU \(vendor 10de, class 03xx\) visible in this guest, found only 0000:00:01\.0 1234:1111 \(bochs-drm\) in lspci/);
  t.deepEqual(changedFiles(before, nodeTree(dir, PLAIN)), []);
  t.false(tasks(r.report, PLAIN).some((x) => x.changed));

  const osr = join(dir, 'nodes', PLAIN, 'root', 'etc', 'os-release');
  const debian = readFileSync(osr, 'utf8');
  writeFileSync(osr, 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n');
  before = nodeTree(dir, PLAIN);
  r = await run('apply', '--limit', PLAIN);
  t.is(r.code, 2, r.text);
  t.regex(failedMsg(r, PLAIN), /expected Debian 11 \(bullseye\), 12 \(bookworm\) or 13 \(trixie\) in \/etc\/os-release, found Ubuntu 24\.04\.1 LTS/);
  t.deepEqual(changedFiles(before, nodeTree(dir, PLAIN)), []);
  writeFileSync(osr, debian);
});

labTest('the whole ai-vm.yaml on a Proxmox node and a fresh guest: host ready, the VM with the GPU, the driver in the guest; rerun 0 changed; check 0 bytes', async (t) => {
  const PVE = 'pve-intel';
  const GUEST2 = 'ai-guest-2';
  const doc = parse(readFileSync(info.inventoryPath, 'utf8'));
  Object.assign(doc.all.children.proxmox.hosts[PVE], { vm_id: 101, vm_create: true, vm_name: 'ai-vm', vm_memory: 1024, vm_cores: 2, vm_primary_gpu: false });
  const inv = join(tmp, 'inv-ai.yaml');
  writeFileSync(inv, stringify(doc, { version: '1.1' }));
  const both = [PVE, GUEST2];
  const since = Date.now();
  const r1 = await runOn(inv, 'apply', '--limit', both.join(','), '--guests', 'shutdown');
  t.is(r1.code, 0, r1.text);
  for (const h of both) t.true(r1.report.recap[h]!.rebooted, `${h} rebooted`);
  t.is(bootLog(dir, GUEST2).filter((e) => e.at >= since && e.event === 'up').length, 1);
  const conf = readFileSync(join(dir, 'nodes', PVE, 'pve', 'nodes', PVE, 'qemu-server', '101.conf'), 'utf8');
  for (const re of [/^machine: q35$/m, /^bios: ovmf$/m, /^cpu: host$/m, /^hostpci0: (0000:)?01:00,pcie=1$/m, /^hugepages: 2$/m, /^name: ai-vm$/m]) t.regex(conf, re, conf);
  t.regex((await sh(PVE, 'lspci -nnk -s 01:00.0')).out, /Kernel driver in use: vfio-pci/);
  t.regex((await sh(GUEST2, 'nvidia-smi -L')).out, /^GPU 0: NVIDIA GeForce RTX 4090/m);
  for (const h of both) {
    const gates = tasks(r1.report, h).filter((x) => x.kind === 'gate');
    t.true(gates.length > 0, h);
    // ok, or skipped by its role's `when:` (the mapping of a standalone node); never failed or pending
    t.deepEqual(gates.filter((x) => x.status !== 'ok' && x.status !== 'skipped').map((x) => `${x.role} ${x.task}: ${x.status} ${x.msg}`), [], h);
  }
  t.is(gate(r1, PVE, 'vfio')?.status, 'ok');
  t.is(gate(r1, GUEST2, 'nvidia-driver')?.status, 'ok');
  t.is(gate(r1, GUEST2, 'nvidia-container-toolkit')?.status, 'ok');
  const r2 = await runOn(inv, 'apply', '--limit', both.join(','), '--guests', 'shutdown');
  t.is(r2.code, 0, r2.text);
  for (const h of both) {
    t.is(r2.report.recap[h]!.changed, 0, `${h}: ${tasks(r2.report, h).filter((x) => x.changed).map((x) => x.task).join(', ')}`);
    t.false(r2.report.recap[h]!.rebooted);
  }
  const before = both.map((h) => nodeTree(dir, h));
  const pveBefore = readFileSync(join(dir, 'nodes', PVE, 'pve', 'nodes', PVE, 'qemu-server', '101.conf'), 'utf8');
  const c = await runOn(inv, 'check', '--limit', both.join(','));
  t.is(c.code, 0, c.text);
  both.forEach((h, i) => t.deepEqual(changedFiles(before[i]!, nodeTree(dir, h)), [], h));
  t.is(readFileSync(join(dir, 'nodes', PVE, 'pve', 'nodes', PVE, 'qemu-server', '101.conf'), 'utf8'), pveBefore);
});

labTest('the guest that came with its driver: nvidia-smi as before (table in the real columns, -L), the role adds what it lacks, its sources stay', async (t) => {
  const OLD = 'gpu-guest';
  const pipes = (l: string) => [...l].flatMap((c, i) => (c === '|' || c === '+' ? [i] : [])).join(',');
  const real = readFileSync(fileURLToPath(new URL('../fixtures/lab/nvidia-smi.txt', import.meta.url)), 'utf8').replace(/^# Source:.*\n/, '').replace(/\n$/, '').split('\n');
  const out = (await sh(OLD, 'nvidia-smi')).out.split('\n');
  const end = out.findIndex((l) => /^\+-{41}\+-{22}\+-{22}\+$/.test(l));
  t.true(end > 0, out.join('\n'));
  t.deepEqual(out.slice(1, end + 1).map(pipes), real.slice(1, end + 1).map(pipes));
  t.regex(out.join('\n'), /NVIDIA-SMI 535\.216\.01 +Driver Version: 535\.216\.01/);
  t.regex((await sh(OLD, 'nvidia-smi -L')).out, /^GPU 0: NVIDIA GeForce RTX 4090/m);
  // its sources.list already has every component: only the headers and the packages it lacks are installed
  const r = await run('apply', '--limit', OLD, '--tags', 'nvidia-driver');
  t.is(r.code, 0, r.text);
  t.false(tasks(r.report, OLD).some((x) => x.task.startsWith('APT components') && x.changed));
  t.is(gate(r, OLD, 'nvidia-driver')?.status, 'ok', JSON.stringify(gate(r, OLD, 'nvidia-driver')));
});

test('ai-vm.yaml validates and lists against inventory.example.yaml: host, mapping, VM and guest stages', async (t) => {
  let io = captureIo();
  t.is(await main(['validate', PLAYBOOK, '-i', EXAMPLE], io), 0, io.text());
  io = captureIo();
  t.is(await main(['list', PLAYBOOK, '-i', EXAMPLE], io), 0, io.text());
  const out = io.text();
  for (const stage of ['Host kernel and modules', "The cluster's PCI mapping for the GPU", 'The GPU VM', 'NVIDIA driver and container toolkit in the GPU guests']) t.true(out.includes(stage), stage);
  t.regex(out, /ml-vm/);
  t.regex(out, /Preflight - a Debian guest that sees an NVIDIA GPU/);
  t.regex(out, /nvidia-container-toolkit installed/);
  // a hostile pin is refused at load, before any connection
  io = captureIo();
  t.is(await main(['validate', PLAYBOOK, '-i', EXAMPLE, '-e', 'nvidia_driver_version=535;reboot'], io), 4, io.text());
  t.regex(io.text(), /'nvidia_driver_version' must match/);
});
