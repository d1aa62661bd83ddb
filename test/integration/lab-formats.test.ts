/**
 * The lab's stub tools print what the real tools print. Each stub's output is compared with a real
 * output (test/fixtures/lab/*.txt, sources in its README): same line kinds in the same order, same
 * field names, same column layout; values may differ. Then the facts parsers read the fixture and
 * the stub output the same way (same keys, same kinds of values).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import {
  parseEfibootmgr,
  parseIommuLog,
  parsePctList,
  parsePvecmNodes,
  parsePvecmStatus,
  parsePveversion,
  parseProxmoxBootTool,
  parseQmList,
} from '../../src/facts/parsers.ts';
import { isRoot, labTest, labSshOptions, tearDownLab, tempDir } from '../helpers/lab.ts';

const run = promisify(execFile);
const dir = tempDir('passthru-lab-formats-');
let lab: LabInfo;

test.before(async () => {
  if (!isRoot) return;
  lab = await labUp({
    dir,
    scenarios: ['cluster3', 'amd-systemdboot-zfs-pve8-rx6800', 'debian-guest-nvidia-docker', 'intel-grub-pve8-rtx4090'],
    baseAddr: '127.0.7.1',
  });
});
test.after.always(() => tearDownLab(isRoot ? dir : '', dir));
const rootTest = labTest;

/** Runs a command on a lab node (stderr merged, like a terminal shows it); the exit code does not throw. */
async function sh(node: string, command: string): Promise<string> {
  const n = lab.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no lab node ${node}: ${lab.nodes.map((x) => x.name).join(', ')}`);
  try {
    const { stdout } = await run('ssh', [...labSshOptions(dir), '-o', 'ConnectTimeout=5', `root@${n.address}`, `${command} 2>&1`]);
    return stdout;
  } catch (e: any) {
    return e.stdout ?? '';
  }
}

/** The fixture without its `# Source:` line, verbatim otherwise (trailing blanks kept). */
const fixture = (f: string) => readFileSync(join(import.meta.dirname, '../fixtures/lab', f), 'utf8').replace(/^# Source:.*\n/, '');
const linesOf = (text: string) => text.replace(/\n$/, '').split('\n');

type Shapes = Array<[string, RegExp]>;
/** The kind of every line (the first shape that matches), `?<line>` for a line no shape knows. */
function kinds(lines: string[], shapes: Shapes): string[] {
  return lines.map((l) => shapes.find(([, re]) => re.test(l))?.[0] ?? `?${JSON.stringify(l)}`);
}
/** Repeats do not matter (3 VMs or 2, 1 ESP or 2): drop a line kind, or a pair of kinds, that repeats the one before. */
function squash(names: string[]): string[] {
  const out: string[] = [];
  for (const n of names) {
    out.push(n);
    let changed = true;
    while (changed) {
      changed = false;
      const k = out.length;
      if (k >= 2 && out[k - 1] === out[k - 2]) {
        out.pop();
        changed = true;
      } else if (k >= 4 && out[k - 1] === out[k - 3] && out[k - 2] === out[k - 4]) {
        out.splice(k - 2, 2);
        changed = true;
      }
    }
  }
  return out;
}
function sameShape(t: any, stubText: string, fixtureText: string, shapes: Shapes, what: string) {
  const real = kinds(linesOf(fixtureText), shapes);
  t.false(real.some((k) => k.startsWith('?')), `${what}: the fixture has a line no shape knows: ${real.filter((k) => k.startsWith('?'))}`);
  const stub = kinds(linesOf(stubText), shapes);
  t.deepEqual(squash(stub), squash(real), `${what}: stub lines differ from the real format`);
}
/** A fixed-width row: fields of the given widths separated by one blank (width 0 = the rest). */
function columns(spec: Array<[number, RegExp]>): RegExp {
  const test = (l: string) => {
    let pos = 0;
    for (const [w, re] of spec) {
      const field = w ? l.slice(pos, pos + w) : l.slice(pos);
      if ((w && field.length < w) || !re.test(field)) return false;
      if (!w) return true;
      if (l[pos + w] !== ' ') return false;
      pos += w + 1;
    }
    return pos >= l.length;
  };
  return { test } as RegExp;
}
/** Same keys and the same kinds of values (string/number/bool/null/array/object), recursively for objects. */
function typeShape(v: unknown): unknown {
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.length ? ['array', typeShape(v[0])] : 'array';
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, typeShape(x)]).sort());
  return typeof v;
}

// --------------------------------------------------------------------------------------------

const PVECM: Shapes = [
  ['title', /^(Cluster|Quorum|Votequorum|Membership) information$/],
  ['rule', /^-{18,22}$/],
  ['blank', /^$/],
  // corosync-quorumtool: "Quorum:           %d %s" with " " when quorate -> two trailing blanks
  ['quorum', /^Quorum: {11}\d+ ( |Activity blocked)$/],
  ['flags', /^Flags: {12}(\w+ )*$/],
  ['nodeid', /^Node ID: {10}0x[0-9a-f]{8}$/],
  ['date', /^Date: {13}\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/],
  ['kv', /^(Name|Config Version|Transport|Secure auth|Quorum provider|Nodes|Ring ID|Quorate|Expected votes|Highest expected|Total votes): +\S+$/],
  ['members', /^ {4}Nodeid {6}Votes Name$/],
  ['member', /^0x[0-9a-f]{8} {10}\d \S+( \(local\))?$/],
];
// every key line puts its value in column 18, as corosync-quorumtool does
const valueColumn = (text: string) =>
  linesOf(text)
    .filter((l) => /^[A-Z][A-Za-z ]+: +\S/.test(l))
    .map((l) => {
      const rest = l.slice(l.indexOf(':') + 1);
      return l.indexOf(':') + 1 + rest.length - rest.trimStart().length;
    });

rootTest('pvecm status: the format of corosync-quorumtool, votes and members parse the same', async (t) => {
  const real = fixture('pvecm-status.txt');
  const stub = await sh('pve-c1', 'pvecm status');
  sameShape(t, stub, real, PVECM, 'pvecm status');
  t.true(valueColumn(real).every((c) => c === 18));
  t.deepEqual([...new Set(valueColumn(stub))], [18]);
  const a = parsePvecmStatus(real);
  const b = parsePvecmStatus(stub);
  t.deepEqual(typeShape(b), typeShape(a));
  // the membership list of `pvecm status` holds corosync addresses, not names: members are named
  // by `pvecm nodes` (corosync-quorumtool -l), checked below
  t.deepEqual([a.quorate, a.expectedVotes, a.totalVotes, a.nodes.length], [true, 2, 2, 0]);
  t.deepEqual([b.quorate, b.expectedVotes, b.totalVotes, b.nodes.length], [true, 3, 3, 0]);
  const realNames = parsePvecmNodes(readFileSync(join(import.meta.dirname, '../fixtures/facts/pvecm-nodes.txt'), 'utf8'));
  t.deepEqual(realNames, ['pve1', 'pve2', 'pve3']);
  t.deepEqual(parsePvecmNodes(await sh('pve-c1', 'pvecm nodes')).sort(), ['pve-c1', 'pve-c2', 'pve-c3']);
});

const QM_ROW = columns([[10, /^ *\d+$/], [20, /^.+$/], [10, /^[a-z]+ *$/], [10, /^\d+ *$/], [12, /^ *\d+\.\d\d$/], [0, /^\d+ *$/]]);
const QM: Shapes = [
  ['header', /^ {6}VMID NAME {17}STATUS {5}MEM\(MB\) {4}BOOTDISK\(GB\) PID *$/],
  ['row', QM_ROW],
];

rootTest('qm list: the columns of qemu-server, rows parse the same', async (t) => {
  const real = fixture('qm-list.txt');
  const stub = await sh('pve-c1', 'qm list');
  sameShape(t, stub, real, QM, 'qm list');
  const a = parseQmList(real);
  const b = parseQmList(stub);
  t.is(a.length, linesOf(real).length - 1);
  t.is(b.length, linesOf(stub).length - 1);
  t.true(b.length > 0);
  t.deepEqual(typeShape(b), typeShape(a));
  t.deepEqual(a[1], { kind: 'qm', id: '104', name: 'VM 104', status: 'stopped' });
  // no VM: the real qm prints nothing, not even the header
  await sh('pve-c3', `sed -i '/^qm\t/d' "$LAB_NODE/gen/run/guests.tsv"`);
  t.is(await sh('pve-c3', 'qm list'), '');
});

const PCT: Shapes = [
  ['header', /^VMID {7}Status {5}Lock {9}Name *$/],
  ['row', columns([[10, /^\d+ *$/], [10, /^[a-z]+ *$/], [12, /^\S* *$/], [0, /^\S+ *$/]])],
];

rootTest('pct list: the columns of pve-container, rows parse the same; nothing without containers', async (t) => {
  const real = fixture('pct-list.txt');
  const stub = await sh('pve-intel', 'pct list');
  sameShape(t, stub, real, PCT, 'pct list');
  const a = parsePctList(real);
  const b = parsePctList(stub);
  t.is(a.length, 2);
  t.true(b.length > 0);
  t.is(b.length, linesOf(stub).length - 1);
  t.deepEqual(typeShape(b), typeShape(a));
  t.is(await sh('pve-c1', 'pct list'), '');
});

const PBT: Shapes = [
  ['reexec', /^Re-executing '\/usr\/sbin\/proxmox-boot-tool' in new private mount namespace\.\.$/],
  ['booted', /^System currently booted with (uefi|legacy bios)$/],
  ['esp', /^[0-9A-F]{4}-[0-9A-F]{4} is configured with: (uefi|grub) \(versions: [\w.-]+(, [\w.-]+)*\)$/],
];
const REFRESH: Shapes = [
  ['hook-removal', /^Running hook script 'proxmox-auto-removal'\.\.$/],
  ['hook-boot', /^Running hook script 'zz-proxmox-boot'\.\.$/],
  ['reexec-hook', /^Re-executing '\/etc\/kernel\/postinst\.d\/zz-proxmox-boot' in new private mount namespace\.\.$/],
  ['copy-esp', /^Copying and configuring kernels on \/dev\/disk\/by-uuid\/[0-9A-F]{4}-[0-9A-F]{4}$/],
  ['copy-kernel', /^\tCopying kernel and creating boot-entry for [\w.-]+$/],
];

rootTest('proxmox-boot-tool status and refresh: the real lines, ESPs parse the same', async (t) => {
  const real = fixture('proxmox-boot-tool-status.txt');
  const stub = await sh('pve-amd', 'proxmox-boot-tool status');
  sameShape(t, stub, real, PBT, 'proxmox-boot-tool status');
  const a = parseProxmoxBootTool(real);
  const b = parseProxmoxBootTool(stub);
  t.deepEqual(typeShape(b), typeShape(a));
  t.deepEqual([a.bootedWith, a.esps.map((e) => e.loader)], ['uefi', ['systemd-boot', 'systemd-boot']]);
  t.deepEqual([b.bootedWith, [...new Set(b.esps.map((e) => e.loader))]], ['uefi', ['systemd-boot']]);
  t.deepEqual(a.esps[0]!.versions, ['5.13.19-6-pve', '5.15.39-3-pve', '5.15.83-1-pve']);
  t.true(b.esps[0]!.versions.length > 0);
  // refresh, as the hook prints it (one block per ESP)
  sameShape(t, await sh('pve-amd', 'proxmox-boot-tool refresh'), fixture('proxmox-boot-tool-refresh.txt'), REFRESH, 'proxmox-boot-tool refresh');
});

const EFI: Shapes = [
  ['current', /^BootCurrent: [0-9A-F]{4}$/],
  ['timeout', /^Timeout: \d+ seconds?$/],
  ['order', /^BootOrder: [0-9A-F]{4}(,[0-9A-F]{4})*$/],
  ['entry', /^Boot[0-9A-F]{4}\* [^\t]+\t(HD|PciRoot|FvVol)\(.*$/],
];

rootTest('efibootmgr -v: entries as efibootmgr 17 prints them, the loader path parses the same', async (t) => {
  const real = fixture('efibootmgr-v.txt');
  const stub = await sh('pve-amd', 'efibootmgr -v');
  sameShape(t, stub, real, EFI, 'efibootmgr -v');
  const a = parseEfibootmgr(real);
  const b = parseEfibootmgr(stub);
  t.deepEqual(typeShape(b), typeShape(a));
  const sdboot = (x: typeof a) => x.entries.find((e) => e.label === 'Linux Boot Manager')?.path;
  t.is(sdboot(a), '\\EFI\\systemd\\systemd-bootx64.efi');
  t.is(sdboot(b), '\\EFI\\systemd\\systemd-bootx64.efi');
  t.is(a.entries.find((e) => e.num === a.bootCurrent)?.label, 'UEFI QEMU DVD-ROM QM00002');
  t.truthy(b.entries.find((e) => e.num === b.bootCurrent));
});

const NVSMI_TEXT = new Set([
  '| GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC |',
  '| Fan  Temp   Perf          Pwr:Usage/Cap |         Memory-Usage | GPU-Util  Compute M. |',
  '|                                         |                      |               MIG M. |',
  '|                                         |                      |                  N/A |',
]);
const NVSMI: Shapes = [
  ['date', /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} {7}$/],
  ['text', { test: (l: string) => NVSMI_TEXT.has(l) } as RegExp],
  ['border', /^\+-{87}\+$/],
  ['version', /^\| NVIDIA-SMI [\d.]+ +Driver Version: [\d.]+ +CUDA Version: [\d.]+ +\|$/],
  ['rule', /^\|-{41}\+-{22}\+-{22}\+$/],
  ['double', /^\|={41}\+={22}\+={22}\|$/],
  ['gpu', /^\| {3}\d  .{30} (On |Off) \| [0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.\d ( On|Off) \| .{20} \|$/],
  ['usage', /^\| [ \d]\d% +\d+C +P\d+ +(\d+W|N\/A) \/ +\d+W \| +\d+MiB \/ +\d+MiB \| +\d+% +\w+ \|$/],
  ['close', /^\+-{41}\+-{22}\+-{22}\+$/],
];

rootTest('nvidia-smi: the table of driver 535 (columns at the same places)', async (t) => {
  const real = fixture('nvidia-smi.txt');
  const out = linesOf(await sh('gpu-guest', 'nvidia-smi'));
  const end = out.findIndex((l) => /^\+-{41}\+-{22}\+-{22}\+$/.test(l));
  t.true(end > 0, out.join('\n'));
  sameShape(t, out.slice(0, end + 1).join('\n'), real, NVSMI, 'nvidia-smi');
  // the pipes sit in the same columns in every table line
  const pipes = (l: string) => [...l].flatMap((c, i) => (c === '|' || c === '+' ? [i] : [])).join(',');
  const realRows = linesOf(real).slice(1).map(pipes);
  const stubRows = out.slice(1, end + 1).map(pipes);
  t.deepEqual(stubRows, realRows);
});

const DOCKER: Shapes = [
  ['client', /^Client: Docker Engine - Community$/],
  ['server', /^Server:$/],
  ['blank', /^$/],
  ['client-kv', /^ (Version|Context): {4}\S+$/],
  ['debug', /^ Debug Mode: (true|false)$/],
  ['runtimes', /^ Runtimes: [\w.]+( [\w.]+)*$/],
  ['kv', /^ (Containers|Server Version|Storage Driver|Cgroup Driver|Cgroup Version|Default Runtime|Kernel Version|Operating System|Architecture): \S.*$/],
];

rootTest('docker info and nvidia-ctk --version: the real fields; runtimes listed sorted, like dockerd', async (t) => {
  const real = fixture('docker-info.txt');
  const stubBefore = await sh('gpu-guest', 'docker info');
  sameShape(t, stubBefore, real, DOCKER, 'docker info');
  const keys = (s: string) => linesOf(s).map((l) => l.match(/^ *([A-Za-z][A-Za-z ]*):/)?.[1]).filter(Boolean);
  t.deepEqual(keys(stubBefore), keys(real));
  const runtimes = (s: string) => s.match(/^ Runtimes: (.*)$/m)![1]!.split(' ');
  t.deepEqual(runtimes(real), [...runtimes(real)].sort());
  t.false(runtimes(stubBefore).includes('nvidia'));
  // with the toolkit installed and docker restarted, nvidia is listed in the same place
  await sh(
    'gpu-guest',
    "echo 'deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /' > /etc/apt/sources.list.d/nvidia-container-toolkit.list && apt-get update >/dev/null && apt-get install -y nvidia-container-toolkit >/dev/null && nvidia-ctk runtime configure --runtime=docker >/dev/null && systemctl restart docker",
  );
  const stubAfter = await sh('gpu-guest', 'docker info');
  sameShape(t, stubAfter, real, DOCKER, 'docker info (nvidia)');
  t.deepEqual(runtimes(stubAfter), runtimes(real));
  const ctk: Shapes = [
    ['version', /^NVIDIA Container Toolkit CLI version \d+\.\d+\.\d+$/],
    ['commit', /^commit: [0-9a-f]{40}$/],
  ];
  sameShape(t, await sh('gpu-guest', 'nvidia-ctk --version'), fixture('nvidia-ctk-version.txt'), ctk, 'nvidia-ctk --version');
});

const GRUB: Shapes = [
  ['generating', /^Generating grub configuration file \.\.\.$/],
  ['linux', /^Found linux image: \/boot\/vmlinuz-[\w.-]+$/],
  ['initrd', /^Found initrd image: \/boot\/initrd\.img-[\w.-]+$/],
  ['uefi', /^Adding boot menu entry for UEFI Firmware Settings \.\.\.$/],
  ['done', /^done$/],
];

rootTest('update-grub: the messages of grub-mkconfig, one linux/initrd pair per kernel', async (t) => {
  const stub = await sh('pve-intel', 'update-grub');
  sameShape(t, stub, fixture('update-grub.txt'), GRUB, 'update-grub');
  t.is(linesOf(stub).filter((l) => l.startsWith('Found linux image')).length, 2);
});

const TS = /^\[[ \d]{4}\d\.\d{6}\] /;
rootTest('dmesg and journalctl -k: the timestamp of util-linux dmesg, the IOMMU lines parse the same', async (t) => {
  const real = linesOf(fixture('dmesg-iommu.txt'));
  t.true(real.every((l) => TS.test(l)));
  const amd = linesOf(await sh('pve-amd', 'dmesg'));
  const intel = linesOf(await sh('pve-intel', 'dmesg'));
  t.true(amd.every((l) => TS.test(l)), amd.find((l) => !TS.test(l)));
  t.true(intel.every((l) => TS.test(l)), intel.find((l) => !TS.test(l)));
  // the same message lines as the real kernel prints them
  const msg = (l: string) => l.replace(TS, '');
  t.true(amd.map(msg).includes('AMD-Vi: Interrupt remapping enabled'));
  t.true(real.map(msg).includes('AMD-Vi: Interrupt remapping enabled'));
  const a = parseIommuLog(real.join('\n'));
  const b = parseIommuLog(amd.join('\n'));
  t.deepEqual(typeShape(b), typeShape(a));
  t.true(a.irqRemapping && b.irqRemapping);
  t.true(a.evidence.length > 0 && b.evidence.length > 0);
  // journalctl -k: the same messages, in the short format; -o short-monotonic: dmesg's timestamp
  const jk = linesOf(await sh('pve-amd', 'journalctl -k -b --no-pager'));
  t.true(jk.every((l) => /^\w{3} [ \d]\d \d\d:\d\d:\d\d pve-amd kernel: \S/.test(l)), jk[0]);
  t.deepEqual(jk.map((l) => l.replace(/^.*? kernel: /, '')), amd.map(msg));
  const jm = linesOf(await sh('pve-amd', 'journalctl -k -b -o short-monotonic --no-pager'));
  t.deepEqual(jm.map((l) => l.replace(' pve-amd kernel:', '')), amd);
});

rootTest('answers: kept by the boot, newer than their files; a file edited behind the stubs is read again', async (t) => {
  const node = 'gpu-guest';
  t.deepEqual(linesOf(await sh(node, 'ls "$LAB_NODE/gen/run/answers"')), ['dmesg', 'dmesg-mtime', 'dpkg.tsv']);
  const fresh = (a: string, f: string) => sh(node, `[ "$LAB_NODE/gen/run/answers/${a}" -nt ${f} ] && echo fresh`);
  t.is(await fresh('dmesg', '"$LAB_NODE/gen/run/dmesg"'), 'fresh\n');
  t.is(await fresh('dmesg-mtime', '"$LAB_NODE/gen/run/dmesg"'), 'fresh\n');
  t.is(await fresh('dpkg.tsv', '/var/lib/dpkg/status'), 'fresh\n');
  // the kept dmesg is what the stub printed before answers existed (its awk program)
  const awk = `awk '{ if (match($0, /^\\[ *[0-9]+\\.[0-9]+\\] /)) { ts = substr($0, 2, RLENGTH - 3); gsub(/ /, "", ts); split(ts, p, "."); printf "[%5d.%s] %s\\n", p[1], p[2], substr($0, RLENGTH + 1) } else print }' "$LAB_NODE/gen/run/dmesg"`;
  t.is(await sh(node, 'dmesg'), await sh(node, awk));
  // the status file edited directly (as a test or the engine may): dpkg-query reads it again
  const status = nodeFile(dir, node, '/var/lib/dpkg/status')!;
  nodeFile(dir, node, '/var/lib/dpkg/status', `${status}Package: lab-answers-check\nStatus: install ok installed\nVersion: 1.0-1\n\n`);
  t.is(await sh(node, 'dpkg-query -W lab-answers-check'), 'lab-answers-check\t1.0-1\n');
  nodeFile(dir, node, '/var/lib/dpkg/status', status);
  t.is(await sh(node, 'dpkg-query -W lab-answers-check'), 'dpkg-query: no packages found matching lab-answers-check\n');
});

const PVEV: Shapes = [
  ['proxmox-ve', /^proxmox-ve: [\d.]+ \(running kernel: [\w.-]+\)$/],
  ['pve-manager', /^pve-manager: ([\d.]+) \(running version: \1\/[0-9a-f]{16}\)$/],
  ['package', /^[a-z0-9][a-z0-9.+-]*: \S+$/],
];

rootTest('pveversion -v: the first two lines and package: version lines, parsed the same', async (t) => {
  const real = fixture('pveversion-v.txt');
  const stub = await sh('pve-intel', 'pveversion -v');
  sameShape(t, stub, real, PVEV, 'pveversion -v');
  t.deepEqual(typeShape(parsePveversion(stub)), typeShape(parsePveversion(real)));
  t.is(parsePveversion(stub).runningKernel, (await sh('pve-intel', 'uname -r')).trim());
  t.is(parsePveversion(real).runningKernel, '6.8.12-5-pve');
});
