/**
 * playbooks/gaming-vm.yaml on a three-node lab cluster: the hosts made ready, ONE PCI mapping for
 * the cluster whose `pvesh get /cluster/mapping/pci --check-node` is clean on every member, a VM on
 * each node using it (created, q35/OVMF/host CPU/hugepages); the second run changes nothing,
 * check mode changes no byte; each refusal (VM running, another onboot VM with the mapping, a
 * device not on vfio-pci, too few free hugepages) fails that host and touches nothing. What a
 * no-op VM stage costs per node is measured by `npm run bench -- vm-stage`.
 */
import test from 'ava';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labUp, type LabInfo } from '../../src/lab/index.ts';
import { runCli, tasks, type CliRun } from '../helpers/cli.ts';
import { fileTree, isRoot, labInventory, labSh, labTest, nodeTree, sameTree, tearDownLab, tempDir } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/gaming-vm.yaml', import.meta.url));
const ROLES = fileURLToPath(new URL('../../roles', import.meta.url));
let info: LabInfo;
let dir = '';
let tmp = '';
const NODES = ['pve-c1', 'pve-c2', 'pve-c3'];
const VMID: Record<string, number> = { 'pve-c1': 301, 'pve-c2': 302, 'pve-c3': 303 };

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-gaming-lab-');
  tmp = tempDir('passthru-gaming-out-');
  info = await labUp({ dir, scenarios: ['cluster3'], baseAddr: '127.0.161.1', rebootDelayS: 1 });
  symlinkSync(ROLES, join(tmp, 'roles'));
});
test.after.always(() => tearDownLab(dir, tmp));

/** The lab inventory with the VM variables on every member, changed by `change`. */
function inventory(file: string, change: (hv: Map<string, Record<string, unknown>>) => void = () => {}): string {
  return labInventory(info.inventoryPath, tmp, file, (hv) => {
    for (const [h, v] of hv) Object.assign(v, { gpu_mapping: 'a100', vm_id: VMID[h], vm_create: true, vm_name: `gpu-${h}`, vm_memory: 2048, vm_cores: 2, vm_usb_devices: ['046d:c52b', '1050:0407'] });
    change(hv);
  });
}
let runNo = 0;
const run = (cmd: 'apply' | 'check', inv: string, ...args: string[]): Promise<CliRun> =>
  runCli([cmd, PLAYBOOK, '-i', inv, '--progress', 'quiet', '--guests', 'shutdown', ...args], { json: join(tmp, `run-${++runNo}.json`) });
const sh = (node: string, command: string) => labSh(dir, info.nodes.find((x) => x.name === node)!.address, command);
/** The cluster's /etc/pve: path → sha256 (what a run may change besides the nodes' own files). */
const pveTree = (): Map<string, string> => fileTree(join(dir, 'clusters/lab3/pve'));
const snapshot = () => ({ pve: pveTree(), nodes: NODES.map((n) => nodeTree(dir, n)) });
const unchanged = (a: ReturnType<typeof snapshot>, b: ReturnType<typeof snapshot>) => sameTree(a.pve, b.pve) && a.nodes.every((t, i) => sameTree(t, b.nodes[i]));
const vmConf = (n: string) => readFileSync(join(dir, 'clusters/lab3/pve/nodes', n, 'qemu-server', `${VMID[n]}.conf`), 'utf8');
const failedMsg = (r: CliRun, h: string) => tasks(r.report, h).filter((x) => x.status === 'failed').map((x) => x.msg).join(' | ');

labTest('a three-node cluster: one mapping, clean --check-node on every member, a VM on each using it; rerun 0 changed; check 0 bytes', async (t) => {
  const inv = inventory('inv.yaml');
  const r1 = await run('apply', inv);
  t.is(r1.code, 0, r1.text);
  const cfg = readFileSync(join(dir, 'clusters/lab3/pve/mapping/pci.cfg'), 'utf8');
  t.is(cfg, 'a100\n' + NODES.map((n) => `\tmap id=10de:20b5,iommugroup=80,node=${n},path=0000:ca:00,subsystem-id=0000:0000\n`).join('') + '\n');
  // written once, by the first member
  const writes = NODES.map((n) => tasks(r1.report, n).filter((x) => x.role === 'pci-mapping' && x.kind === 'task' && x.changed).length);
  t.deepEqual(writes, [1, 0, 0]);
  for (const n of NODES) {
    const c = JSON.parse((await sh(n, `pvesh get /cluster/mapping/pci --check-node ${n} --output-format json`)).out);
    t.deepEqual(c[0].checks, [], n);
    t.true(tasks(r1.report, n).some((x) => x.role === 'pci-mapping' && x.kind === 'gate' && x.status === 'ok'), n);
    const conf = vmConf(n);
    for (const re of [/^machine: q35$/m, /^bios: ovmf$/m, /^cpu: host$/m, /^hostpci0: mapping=a100,pcie=1,x-vga=1$/m, /^hugepages: 2$/m, /^efidisk0: local-lvm:vm-\d+-disk-\d+,efitype=4m,pre-enrolled-keys=1,size=4M$/m, /^memory: 2048$/m, /^usb0: host=046d:c52b$/m, /^usb1: host=1050:0407$/m])
      t.regex(conf, re, `${n}: ${conf}`);
    // what a VM start checks on that node passes
    t.is((await sh(n, `qm start ${VMID[n]} && qm stop ${VMID[n]}`)).code, 0, n);
  }
  const r2 = await run('apply', inv);
  t.is(r2.code, 0, r2.text);
  for (const n of NODES) t.is(r2.report.recap[n].changed, 0, `${n}: ${tasks(r2.report, n).filter((x) => x.changed).map((x) => x.task).join(', ')}`);
  const before = snapshot();
  const c = await run('check', inv);
  t.is(c.code, 0, c.text);
  t.true(unchanged(before, snapshot()));
});

labTest('refusals fail the host and touch nothing', async (t) => {
  // 1. the VM runs and pending changes are not allowed
  t.is((await sh('pve-c1', 'qm start 301')).code, 0);
  let s = snapshot();
  let r = await run('apply', inventory('inv-numa.yaml', (hv) => (hv.get('pve-c1')!.vm_numa = true)), '--limit', 'pve-c1', '--tags', 'passthrough-vm');
  t.is(r.code, 2);
  t.regex(failedMsg(r, 'pve-c1'), /VM 301 is running: numa would change/);
  t.true(unchanged(s, snapshot()));
  // ...allowed: the change waits as a pending change
  r = await run('apply', inventory('inv-numa2.yaml', (hv) => Object.assign(hv.get('pve-c1')!, { vm_numa: true, vm_apply_pending: true })), '--limit', 'pve-c1', '--tags', 'passthrough-vm');
  t.is(r.code, 0, r.text);
  t.regex(vmConf('pve-c1'), /\[PENDING\]\nnuma: 1\n/);
  t.is((await sh('pve-c1', 'qm stop 301')).code, 0);
  // 2. another VM that starts on boot already uses the mapping
  t.is((await sh('pve-c2', 'qm create 399 --name other --memory 1024 --hostpci0 mapping=a100,pcie=1 --onboot 1')).code, 0);
  s = snapshot();
  r = await run('apply', inventory('inv-onboot.yaml', (hv) => (hv.get('pve-c2')!.vm_onboot = true)), '--limit', 'pve-c2', '--tags', 'passthrough-vm');
  t.is(r.code, 2);
  t.regex(failedMsg(r, 'pve-c2'), /VM 302 and VM 399 \(other\) both start on boot and both use mapping=a100/);
  t.true(unchanged(s, snapshot()));
  // 3. the device is not bound to vfio-pci (the NIC at 17:00 is on ice)
  s = snapshot();
  r = await run('apply', inventory('inv-nic.yaml', (hv) => Object.assign(hv.get('pve-c3')!, { gpu_mapping: '', gpu_mapping_slot: '17:00' })), '--limit', 'pve-c3', '--tags', 'passthrough-vm');
  t.is(r.code, 2);
  t.regex(failedMsg(r, 'pve-c3'), /expected 0000:17:00\.0 bound to vfio-pci on pve-c3, found ice/);
  t.true(unchanged(s, snapshot()));
  // 4. more memory than the free hugepages
  s = snapshot();
  r = await run('apply', inventory('inv-mem.yaml', (hv) => Object.assign(hv.get('pve-c3')!, { vm_id: 304, vm_memory: 4096 })), '--limit', 'pve-c3', '--tags', 'passthrough-vm');
  t.is(r.code, 2);
  t.regex(failedMsg(r, 'pve-c3'), /expected 2048 free hugepages of 2048 kB for VM 304 \(4096 MB\), found 1024 free of 1024/);
  t.true(unchanged(s, snapshot()));
});
