/**
 * The lab's guest side behaves like Proxmox VE's: one /etc/pve shared by the members of a cluster,
 * `qm config/set/create/start` on real-format VM configs (pending changes on a running VM,
 * refusals that touch nothing), `pvesh` on /cluster/mapping/pci (digest guard, --check-node checks
 * as pve-manager computes them), and the facts probe reading it all.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { labUp, type LabInfo } from '../../src/lab/index.ts';
import { parseProbe, probeScript } from '../../src/facts/probe.ts';
import { isRoot, labTest, labSshOptions, tearDownLab, tempDir } from '../helpers/lab.ts';

const run = promisify(execFile);
const dir = tempDir('passthru-guests-lab-');
let lab: LabInfo;

test.before(async () => {
  if (!isRoot) return;
  lab = await labUp({ dir, scenarios: ['cluster3', 'intel-grub-pve8-rtx4090'], baseAddr: '127.0.160.1' });
});
test.after.always(() => tearDownLab(isRoot ? dir : '', dir));

async function sh(node: string, command: string, stdin?: string): Promise<{ code: number; out: string; err: string }> {
  const n = lab.nodes.find((x) => x.name === node)!;
  try {
    const p = run('ssh', [...labSshOptions(dir), '-o', 'ConnectTimeout=5', `root@${n.address}`, command]);
    if (stdin !== undefined) p.child.stdin!.end(stdin);
    const { stdout, stderr } = await p;
    return { code: 0, out: stdout, err: stderr };
  } catch (e: any) {
    return { code: e.code ?? -1, out: e.stdout ?? '', err: e.stderr ?? '' };
  }
}
const pveDir = () => join(dir, 'clusters', 'lab3', 'pve');
const conf = (node: string, id: number) => readFileSync(join(pveDir(), 'nodes', node, 'qemu-server', `${id}.conf`), 'utf8');

labTest('one /etc/pve for the cluster: every member sees the others and what they write', async (t) => {
  for (const n of ['pve-c1', 'pve-c2', 'pve-c3']) t.is((await sh(n, 'ls /etc/pve/nodes')).out, 'pve-c1\npve-c2\npve-c3\n');
  t.is((await sh('pve-c1', 'ls /etc/pve/qemu-server')).out, '110.conf\n');
  t.is((await sh('pve-c2', 'ls /etc/pve/qemu-server')).out, '110.conf\n');
  t.is((await sh('pve-c2', 'cat /etc/pve/nodes/pve-c1/qemu-server/110.conf')).out, conf('pve-c1', 110));
  // the standalone node has its own
  t.is((await sh('pve-intel', 'ls /etc/pve/nodes')).out, 'pve-intel\n');
  t.is((await sh('pve-intel', 'ls /etc/pve/qemu-server /etc/pve/lxc')).out, '/etc/pve/lxc:\n200.conf\n\n/etc/pve/qemu-server:\n100.conf\n');
});

labTest('qm set: validated as qemu-server does; a refusal changes nothing', async (t) => {
  const before = readFileSync(join(dir, 'nodes/pve-intel/pve/nodes/pve-intel/qemu-server/100.conf'), 'utf8');
  const bad = [
    ['qm set 100 --bios uefi', /bios: value 'uefi' does not have a value in the enumeration 'seabios, ovmf'/],
    ['qm set 100 --frobnicate 1', /frobnicate: property is not defined in schema/],
    ['qm set 100 --hostpci0 0000:01:00,mapping=gpu', /Cannot set both 'host' and 'mapping'/],
    ['qm set 100 --hostpci0 01:00,xvga=1', /hostpci0.xvga: property is not defined in schema/],
    ['qm set 100 --machine q35 --bios seabios --bios ovmf', /duplicate parameter/],
    ['qm set 999 --machine q35', /Configuration file 'nodes\/pve-intel\/qemu-server\/999.conf' does not exist/],
  ] as const;
  for (const [cmd, re] of bad) {
    const r = await sh('pve-intel', cmd);
    t.not(r.code, 0, cmd);
    t.regex(r.err, re, cmd);
  }
  t.is(readFileSync(join(dir, 'nodes/pve-intel/pve/nodes/pve-intel/qemu-server/100.conf'), 'utf8'), before);
});

labTest('qm set on a stopped VM writes the config; on a running VM the change is pending until start', async (t) => {
  const r = await sh('pve-intel', "qm set 100 --machine q35 --bios ovmf --efidisk0 local-lvm:1,efitype=4m,pre-enrolled-keys=1 --hostpci0 0000:01:00,pcie=1,x-vga=1 --cpu host");
  t.is(r.code, 0, r.err);
  t.regex(r.out, /^update VM 100: -machine 'q35' -bios 'ovmf'/);
  const cfg = (await sh('pve-intel', 'qm config 100')).out;
  t.regex(cfg, /^bios: ovmf$/m);
  t.regex(cfg, /^efidisk0: local-lvm:vm-100-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M$/m);
  t.regex(cfg, /^hostpci0: 0000:01:00,pcie=1,x-vga=1$/m);
  t.regex(cfg, /^digest: [0-9a-f]{40}$/m);
  // 110 runs on pve-c1
  t.is((await sh('pve-c1', 'qm set 110 --hugepages 2 --name ci-runner2')).code, 0);
  const raw = conf('pve-c1', 110);
  t.regex(raw, /^name: ci-runner2$/m); // fast-plug option: at once
  t.regex(raw, /\n\[PENDING\]\nhugepages: 2\n/);
  t.regex((await sh('pve-c1', 'qm config 110')).out, /^hugepages: 2$/m);
  t.notRegex((await sh('pve-c1', 'qm config 110 --current 1')).out, /^hugepages:/m);
  t.regex((await sh('pve-c1', 'qm pending 110')).out, /^new hugepages: 2$/m);
  // the probe sees it (pending kept apart)
  const f = parseProbe((await sh('pve-c1', 'sh -s', probeScript())).out);
  const vm = f.vms.find((v) => v.id === '110')!;
  t.deepEqual(vm.pending, { hugepages: '2' });
  t.deepEqual(f.pveNodes, ['pve-c1', 'pve-c2', 'pve-c3']);
  t.is(f.pci.find((d) => d.address === '0000:ca:00.0')!.subsystemId, '0000:0000');
});

labTest('qm create: ids are unique across the cluster', async (t) => {
  const r = await sh('pve-c2', 'qm create 110 --name dup --memory 1024');
  t.not(r.code, 0);
  t.regex(r.err, /VM 110 already exists on node 'pve-c1'/);
  t.is((await sh('pve-c2', 'qm create 120 --name gpu-c2 --memory 4096 --ostype l26')).code, 0);
  t.regex((await sh('pve-c2', 'qm list')).out, /^\s+120 gpu-c2\s+stopped/m);
  t.regex((await sh('pve-c3', 'cat /etc/pve/nodes/pve-c2/qemu-server/120.conf')).out, /^name: gpu-c2$/m);
});

labTest('pvesh /cluster/mapping/pci: create, check-node from any member, digest guard', async (t) => {
  const e = (n: string, extra = '') => `--map id=10de:20b5,iommugroup=80,node=${n},path=0000:ca:00,subsystem-id=0000:0000${extra}`;
  let r = await sh('pve-c1', `pvesh create /cluster/mapping/pci --id a100 ${e('pve-c1')} ${e('pve-c2')} --description 'A100 pool'`);
  t.is(r.code, 0, r.err);
  const file = readFileSync(join(pveDir(), 'mapping/pci.cfg'), 'utf8');
  t.is(file, 'a100\n\tmap id=10de:20b5,iommugroup=80,node=pve-c1,path=0000:ca:00,subsystem-id=0000:0000\n\tmap id=10de:20b5,iommugroup=80,node=pve-c2,path=0000:ca:00,subsystem-id=0000:0000\n\tdescription A100 pool\n\n');
  t.regex((await sh('pve-c1', `pvesh create /cluster/mapping/pci --id a100 ${e('pve-c1')}`)).err, /pci ID 'a100' already defined/);
  const get = async (node: string, check: string) => JSON.parse((await sh(node, `pvesh get /cluster/mapping/pci --check-node ${check} --output-format json`)).out);
  t.deepEqual((await get('pve-c3', 'pve-c1'))[0].checks, []);
  t.deepEqual((await get('pve-c2', 'pve-c2'))[0].checks, []);
  t.deepEqual((await get('pve-c1', 'pve-c3'))[0].checks, [{ severity: 'warning', message: 'No mapping for node pve-c3.' }]);
  const [m] = await get('pve-c1', 'pve-c1');
  // a stale digest is refused; the file is unchanged
  r = await sh('pve-c2', `pvesh set /cluster/mapping/pci/a100 ${e('pve-c3')} --digest ${'0'.repeat(40)}`);
  t.regex(r.err, /detected modified configuration - file changed by other user\? Try again\./);
  t.is(readFileSync(join(pveDir(), 'mapping/pci.cfg'), 'utf8'), file);
  // with the right digest: replaced; a wrong group shows in the checks of that node
  r = await sh('pve-c2', `pvesh set /cluster/mapping/pci/a100 ${e('pve-c1')} --map id=10de:20b5,iommugroup=81,node=pve-c2,path=0000:ca:00,subsystem-id=0000:0000 ${e('pve-c3')} --digest ${m.digest}`);
  t.is(r.code, 0, r.err);
  t.deepEqual((await get('pve-c3', 'pve-c2'))[0].checks, [{ severity: 'error', message: "Invalid configuration: 'iommugroup' does not match for 'a100' (80 != 81)\n" }]);
  t.deepEqual((await get('pve-c3', 'pve-c3'))[0].checks, []);
  // bad input
  t.regex((await sh('pve-c1', 'pvesh create /cluster/mapping/pci --id 1bad --map id=10de:20b5,node=pve-c1,path=0000:ca:00')).err, /invalid configuration ID '1bad'/);
  t.regex((await sh('pve-c1', 'pvesh create /cluster/mapping/pci --id x2 --map node=pve-c1,path=0000:ca:00')).err, /map.id: property is missing/);
  t.regex((await sh('pve-c1', 'pvesh get /cluster/mapping/pci --check-node nope')).err, /hostname lookup 'nope' failed/);
  // another node's hardware through the API
  const hw = JSON.parse((await sh('pve-c1', "pvesh get /nodes/pve-c3/hardware/pci --pci-class-blacklist '' --output-format json")).out);
  t.deepEqual(hw.find((d: any) => d.id === '0000:ca:00.0'), { id: '0000:ca:00.0', vendor: '0x10de', device: '0x20b5', class: '0x030200', subsystem_vendor: '0x0000', subsystem_device: '0x0000', iommugroup: 80 });
});

labTest('qm start checks what Proxmox checks at start: mapping valid for this node, q35 for pcie', async (t) => {
  t.is((await sh('pve-c3', 'qm create 130 --name c3 --memory 2048 --hostpci0 mapping=a100,pcie=1')).code, 0);
  const r = await sh('pve-c3', 'qm start 130');
  t.regex(r.err, /q35 machine model is not enabled/);
  t.is((await sh('pve-c3', 'qm set 130 --machine q35')).code, 0);
  t.is((await sh('pve-c3', 'qm start 130')).code, 0);
  t.is((await sh('pve-c2', 'qm set 120 --machine q35 --hostpci0 mapping=a100,pcie=1')).code, 0);
  t.regex((await sh('pve-c2', 'qm start 120')).err, /PCI device mapping invalid \(hardware probably changed\): 'iommugroup' does not match/);
});
