import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { bootLog, labDown, labStatus, labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import { labTest } from '../helpers/lab.ts';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const dir = mkdtempSync(join(tmpdir(), 'passthru-lab-test-'));
let lab: LabInfo;

function hostVars(name: string): Record<string, string> {
  const inv = parse(readFileSync(lab.inventoryPath, 'utf8'));
  const find = (g: any): any => {
    if (g?.hosts?.[name]) return g.hosts[name];
    for (const c of Object.values(g?.children ?? {})) {
      const f = find(c);
      if (f) return f;
    }
    return undefined;
  };
  return find(inv.all);
}

async function ssh(name: string, command: string): Promise<string> {
  const v = hostVars(name);
  const { stdout } = await run('ssh', [
    '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${v.known_hosts}`, '-o', 'StrictHostKeyChecking=yes',
    '-o', 'ConnectTimeout=5', '-i', v.identity_file!, `${v.user}@${v.host}`, command,
  ]);
  return stdout;
}

function nsPids(): number[] {
  // processes whose cwd/cmdline mention this lab's directory (supervisors, sshd with our config)
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(dir)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

const machineCmdline = readFileSync('/proc/cmdline', 'utf8');
const machineGrub = existsSync('/etc/default/grub') ? readFileSync('/etc/default/grub', 'utf8') : null;

test.before(async () => {
  if (!isRoot) return;
  lab = await labUp({ dir, nodes: 3, baseAddr: '127.0.2.1', rebootDelayS: 2 });
});

test.after.always(async () => {
  if (isRoot) await labDown(dir);
});

const rootTest = labTest;

rootTest('lab up: 3 nodes, inventory with key and known_hosts, refuses a second lab in the same dir', async (t) => {
  t.is(lab.nodes.length, 3);
  t.deepEqual(lab.nodes.map((n) => n.address), ['127.0.2.1', '127.0.2.2', '127.0.2.3']);
  const v = hostVars('pve-intel');
  t.is(v.host, '127.0.2.1');
  t.is(v.host_key_checking, 'strict');
  t.deepEqual((v as any).passthrough_slots, ['01:00']);
  t.is(readFileSync(v.known_hosts!, 'utf8').trim().split('\n').length, 3);
  await t.throwsAsync(labUp({ dir, nodes: 1, baseAddr: '127.0.2.50' }), { message: /already up/ });
  const st = await labStatus(dir);
  t.deepEqual(st.map((s) => s.state), ['up', 'up', 'up']);
});

rootTest('each node has its own view: cmdline, hostname, kernel, bootloader', async (t) => {
  t.is((await ssh('pve-intel', 'cat /proc/cmdline')).trim(), 'BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet');
  t.is((await ssh('pve-amd', 'hostname')).trim(), 'pve-amd');
  t.is((await ssh('pve-seven', 'uname -r')).trim(), '5.15.158-2-pve');
  t.regex(await ssh('pve-amd', 'proxmox-boot-tool status'), /7C1A-2B3D is configured with: uefi \(versions: 6\.8\.12-4-pve\)/);
  t.regex(await ssh('pve-intel', 'pveversion'), /^pve-manager\/8\.2\.7\/3e0176e6bb2ade3b \(running kernel: 6\.8\.12-4-pve\)$/m);
  t.regex(await ssh('pve-intel', 'lspci -nnk -s 01:00'), /Kernel driver in use: nouveau/);
  t.is(nodeFile(dir, 'pve-intel', '/proc/cmdline'), await ssh('pve-intel', 'cat /proc/cmdline'));
});

rootTest('edit grub + update-grub + reboot: new boot_id and new cmdline; machine untouched', async (t) => {
  const before = (await ssh('pve-intel', 'cat /proc/sys/kernel/random/boot_id')).trim();
  await ssh(
    'pve-intel',
    `sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"/' /etc/default/grub && update-grub 2>/dev/null && reboot`,
  );
  // written, applied, but not booted yet: still the old cmdline until the node is down
  let after = before;
  const until = Date.now() + 30000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    try {
      after = (await ssh('pve-intel', 'cat /proc/sys/kernel/random/boot_id')).trim();
      if (after !== before) break;
    } catch {
      /* down */
    }
  }
  t.not(after, before);
  t.is((await ssh('pve-intel', 'cat /proc/cmdline')).trim(), 'BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pt');
  t.regex(await ssh('pve-intel', 'dmesg'), /DMAR: IOMMU enabled/);
  const log = bootLog(dir, 'pve-intel');
  t.deepEqual(log.map((l) => l.event), ['up', 'down', 'up']);
  t.is(log[2]!.bootId, after);
  // the machine's own files
  t.is(readFileSync('/proc/cmdline', 'utf8'), machineCmdline);
  t.is(existsSync('/etc/default/grub') ? readFileSync('/etc/default/grub', 'utf8') : null, machineGrub);
  // other nodes did not reboot
  t.deepEqual(bootLog(dir, 'pve-amd').map((l) => l.event), ['up']);
});

rootTest('written but not applied: modprobe.d without update-initramfs does not bind vfio-pci', async (t) => {
  await ssh('pve-seven', `printf 'vfio\\nvfio_iommu_type1\\nvfio_pci\\n' >> /etc/modules && echo 'options vfio-pci ids=10de:1b80,10de:10f0' > /etc/modprobe.d/vfio.conf && echo 'softdep nouveau pre: vfio-pci' >> /etc/modprobe.d/vfio.conf && sed -i 's/quiet"/quiet intel_iommu=on"/' /etc/default/grub && update-grub 2>/dev/null && reboot`);
  await waitReboot(t, 'pve-seven', 1);
  t.regex(await ssh('pve-seven', 'lspci -nnk -s 03:00.0'), /Kernel driver in use: nouveau/);
  await ssh('pve-seven', 'update-initramfs -u -k all >/dev/null && reboot');
  await waitReboot(t, 'pve-seven', 2);
  t.regex(await ssh('pve-seven', 'lspci -nnk -s 03:00.0'), /Kernel driver in use: vfio-pci/);
  t.is(readlinkSync(join(dir, 'nodes/pve-seven/gen/sys/bus/pci/devices/0000:03:00.0/driver')), '/sys/bus/pci/drivers/vfio-pci');
});

async function waitReboot(t: any, node: string, n: number) {
  const until = Date.now() + 30000;
  while (Date.now() < until) {
    const ups = bootLog(dir, node).filter((l) => l.event === 'up').length;
    if (ups >= n + 1) {
      try {
        await ssh(node, 'true');
        return;
      } catch {
        /* starting */
      }
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  t.fail(`${node} did not come back`);
}

rootTest('stubs: apt-get, dpkg-query, sysctl, modprobe', async (t) => {
  await t.throwsAsync(ssh('pve-amd', 'apt-get install -y no-such-package'), { message: /Unable to locate package no-such-package/ });
  await ssh('pve-amd', 'apt-get update >/dev/null && apt-get install -y dkms >/dev/null');
  t.regex(await ssh('pve-amd', "dpkg-query -W -f='${Version}' dkms"), /^3\.0\.10/);
  t.regex(await ssh('pve-amd', 'sysctl -w vm.nr_hugepages=64 >/dev/null; grep HugePages_Total /proc/meminfo'), /^HugePages_Total:\s+64$/m);
  t.is((await ssh('pve-amd', 'sysctl -n vm.nr_hugepages')).trim(), '64');
  await t.throwsAsync(ssh('pve-amd', 'modprobe vfio_virqfd'), { message: /Module vfio_virqfd not found/ });
});


/** Line shapes of real outputs (fixtures with their source in test/fixtures/lab). */
const SHAPES = {
  lspciDev: /^([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) (.+) \[([0-9a-f]{4})\]: (.+) \[([0-9a-f]{4}):([0-9a-f]{4})\]( \(rev [0-9a-f]{2}\))?$/,
  lspciSub: /^\t(Subsystem|Kernel driver in use|Kernel modules): .+$/,
  dkms: /^([\w.-]+)\/([\w.-]+), ([\w.-]+), x86_64: installed$/,
  pveversion: /^pve-manager\/([\d.-]+)\/([0-9a-f]{16}) \(running kernel: ([\w.-]+)\)$/,
  uname: /^Linux (\S+) (\S+) #1 SMP PREEMPT_DYNAMIC PMX \S+ \(\S+\) x86_64 GNU\/Linux$/,
};
const fixture = (f: string) => readFileSync(join(import.meta.dirname, '../fixtures/lab', f), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
function shapeOf(lines: string[]): string[] {
  return lines.map((l) => Object.entries(SHAPES).find(([, re]) => re.test(l))?.[0] ?? `unparsed: ${l}`);
}

rootTest('stub outputs parse like the real tools (fixtures)', async (t) => {
  const real = shapeOf(fixture('lspci-nnk.txt'));
  const stub = shapeOf((await ssh('pve-intel', 'lspci -nnk -s 01:00')).split('\n').filter(Boolean));
  t.deepEqual(stub, real);
  const [pv, un] = fixture('pveversion.txt');
  t.deepEqual(shapeOf([pv!, un!]), ['pveversion', 'uname']);
  t.deepEqual(shapeOf([(await ssh('pve-intel', 'pveversion')).trim(), (await ssh('pve-intel', 'uname -a')).trim()]), ['pveversion', 'uname']);
  t.true(shapeOf(fixture('dkms-status.txt')).every((s) => s === 'dkms'));
  await ssh('pve-amd', 'apt-get install -y dkms proxmox-headers-$(uname -r) >/dev/null && cd /root && git clone https://github.com/gnif/vendor-reset 2>/dev/null && dkms install /root/vendor-reset >/dev/null');
  const st = (await ssh('pve-amd', 'dkms status')).split('\n').filter(Boolean);
  t.deepEqual(shapeOf(st), ['dkms']);
  t.is(st[0], 'vendor-reset/0.1.1, 6.8.12-4-pve, x86_64: installed');
});


rootTest('lab down leaves no process behind', async (t) => {
  t.true(nsPids().length > 0);
  await labDown(dir);
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(nsPids(), []);
  const st = await labStatus(dir);
  t.deepEqual(st.map((s) => s.state), ['down', 'down', 'down']);
});
