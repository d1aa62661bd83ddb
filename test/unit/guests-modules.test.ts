import test from 'ava';
import { optSatisfied, planVm, type PveVmArgs } from '../../src/modules/pve_vm.ts';
import { entryFor, membersFromInventory, pciMappingModule } from '../../src/modules/pci_mapping.ts';
import { pveNvidiaFacts } from '../fixtures/facts/hosts.ts';
import { fakeObserver } from './modules-fake.ts';
import type { Facts } from '../../src/facts/types.ts';

const base = (o: Partial<PveVmArgs> = {}): PveVmArgs => ({ vmid: 100, options: {}, delete: [], create: false, create_options: {}, pending: 'refuse', devices: [], exclusive: true, ...o });
const P = '/etc/pve/qemu-server/100.conf';
const facts = (patch: Partial<Facts> = {}): Facts => ({ ...pveNvidiaFacts(), ...patch });
const vfio = (f: Facts) => ({ ...f, pci: f.pci.map((d) => (d.slot === '01:00' ? { ...d, driver: 'vfio-pci' } : d)) });

test('optSatisfied: property strings by key, booleans by value, new volumes by any volume of that storage', (t) => {
  t.true(optSatisfied('hostpci0', 'mapping=gpu,pcie=1,x-vga=1', 'mapping=gpu,x-vga=1,pcie=1'));
  t.true(optSatisfied('hostpci0', '01:00,pcie=1', '01:00,pcie=on'));
  t.false(optSatisfied('hostpci0', 'mapping=gpu,pcie=1', 'mapping=gpu'));
  t.true(optSatisfied('efidisk0', 'local-lvm:1,efitype=4m,pre-enrolled-keys=1', 'local-lvm:vm-100-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M'));
  t.false(optSatisfied('efidisk0', 'local-lvm:1,efitype=4m', 'other:vm-100-disk-1,efitype=4m,size=4M'));
  t.false(optSatisfied('cpu', 'host', 'host,hidden=1'));
  t.false(optSatisfied('machine', 'q35', undefined));
});

test('planVm: changes only what differs, with qm set and the digest; quoted values; the same config again is a no-op', (t) => {
  const conf = 'bios: ovmf\nmachine: q35\nmemory: 2048\nname: w\n';
  const f = vfio(facts());
  const p = planVm(base({ options: { machine: 'q35', bios: 'ovmf', cpu: 'host', hostpci0: "01:00,pcie=1", hugepages: '' }, devices: ['01:00'] }), f, { exists: true, content: conf }, P);
  t.is(p.kind, 'change');
  if (p.kind !== 'change') return;
  t.is(p.actions.length, 1);
  t.regex((p.actions[0] as { command: string }).command, /^qm set 100 --cpu host --hostpci0 01:00,pcie=1 --digest [0-9a-f]{40}$/);
  t.is(p.diff[0].after, 'bios: ovmf\ncpu: host\nhostpci0: 01:00,pcie=1\nmachine: q35\nmemory: 2048\nname: w\n');
  const again = planVm(base({ options: { machine: 'q35', bios: 'ovmf', cpu: 'host', hostpci0: '01:00,pcie=1' } }), f, { exists: true, content: conf + 'cpu: host\nhostpci0: 01:00,pcie=1\n' }, P);
  t.is(again.kind, 'noop');
  const q = planVm(base({ options: { args: "-cpu 'x'; rm -rf /" } }), f, { exists: true, content: conf }, P);
  t.regex((q as { actions: Array<{ command: string }> }).actions[0].command, /--args '-cpu '\\''x'\\''; rm -rf \/'/);
});

test('planVm refusals: not on vfio-pci, running without pending, onboot conflict, hugepages', (t) => {
  const conf = 'machine: q35\nmemory: 4096\nonboot: 1\n';
  let p = planVm(base({ devices: ['01:00'], options: { machine: 'q35' } }), facts(), { exists: true, content: conf }, P);
  t.is(p.kind, 'fail');
  t.regex((p as { msg: string }).msg, /expected 0000:01:00\.0, 0000:01:00\.1 bound to vfio-pci on .*, found nvidia, snd_hda_intel/);
  const running = { ...vfio(facts()), guests: [{ kind: 'qm' as const, id: '100', name: 'w', status: 'running' }] };
  p = planVm(base({ options: { bios: 'ovmf' } }), running, { exists: true, content: conf }, P);
  t.regex((p as { msg: string }).msg, /VM 100 is running: bios would change/);
  p = planVm(base({ options: { bios: 'ovmf' }, pending: 'allow' }), running, { exists: true, content: conf }, P);
  t.is(p.kind, 'change');
  const other = { kind: 'qm' as const, id: '101', path: '/etc/pve/qemu-server/101.conf', config: { name: 'x', onboot: '1', hostpci0: 'mapping=gpu' }, pending: {}, pendingDelete: [], snapshots: [], lxc: [], description: '', digest: '' };
  p = planVm(base({ options: { hostpci0: 'mapping=gpu,pcie=1' } }), { ...facts(), vms: [other] }, { exists: true, content: conf }, P);
  t.regex((p as { msg: string }).msg, /VM 100 and VM 101 \(x\) both start on boot and both use mapping=gpu/);
  p = planVm(base({ options: { hostpci0: 'mapping=gpu,pcie=1', onboot: 0 } }), { ...facts(), vms: [other] }, { exists: true, content: conf }, P);
  t.is(p.kind, 'change');
  const f = facts();
  p = planVm(base({ options: { hugepages: '2' } }), { ...f, memory: { ...f.memory, hugepageSizeKb: 2048, hugepagesFree: 1024, hugepagesTotal: 1024 } }, { exists: true, content: conf }, P);
  t.regex((p as { msg: string }).msg, /expected 2048 free hugepages of 2048 kB for VM 100 \(4096 MB\), found 1024 free of 1024/);
  p = planVm(base({ create: true, create_options: { memory: 4096 }, options: { hugepages: '2' } }), { ...f, memory: { ...f.memory, hugepageSizeKb: 2048, hugepagesFree: 1024, hugepagesTotal: 1024 } }, { exists: false, content: '' }, P);
  t.regex((p as { msg: string }).msg, /expected 2048 free hugepages .*\(4096 MB\)/);
  p = planVm(base({ options: { machine: 'q35' } }), f, { exists: false, content: '' }, P);
  t.regex((p as { msg: string }).msg, /expected VM 100 on .*, found no/);
  p = planVm(base({ create: true, create_options: { name: 'new', memory: 1024 }, options: { machine: 'q35' } }), f, { exists: false, content: '' }, P);
  t.is((p as { actions: Array<{ command: string }> }).actions[0].command, 'qm create 100 --name new --memory 1024 --machine q35');
});

test('pci mapping: members from the inventory, the entry from function .0 of the slot', (t) => {
  const hv = { a: { gpu_mapping: 'g', passthrough_slots: ['01:00'] }, b: { gpu_mapping: 'g', gpu_mapping_slot: '02:00', pve_node: 'pve-b' }, c: { gpu_mapping: 'other' } };
  t.deepEqual(membersFromInventory('g', hv), [{ host: 'a', node: 'a', slot: '01:00' }, { host: 'b', node: 'pve-b', slot: '02:00' }]);
  const hw = [{ id: '0000:01:00.0', vendor: '0x10de', device: '0x2684', subsystem_vendor: '0x1043', subsystem_device: '0x889c', iommugroup: 12 }, { id: '0000:01:00.1', vendor: '0x10de', device: '0x22ba', iommugroup: 12 }];
  t.deepEqual(entryFor('a', '01:00', hw), { node: 'a', path: ['0000:01:00'], id: '10de:2684', subsystemId: '1043:889c', iommugroup: 12, description: null });
  t.regex(entryFor('a', '02:00', hw) as string, /no PCI device 0000:02:00\.0 on node a/);
});

test('pci_mapping plan: only the first member writes; create, then update with the digest; same again is a no-op', async (t) => {
  const hv = { n1: { gpu_mapping: 'g', passthrough_slots: ['01:00'] }, n2: { gpu_mapping: 'g', passthrough_slots: ['01:00'] } };
  const hw = JSON.stringify([{ id: '0000:01:00.0', vendor: '0x10de', device: '0x2684', subsystem_vendor: '0x1043', subsystem_device: '0x889c', iommugroup: 12 }]);
  const cluster = { name: 'c', quorate: true, expectedVotes: 2, totalVotes: 2, nodes: [] };
  const f = (host: string) => ({ ...facts(), hostname: host, pveNodes: ['n1', 'n2'], cluster });
  const cmds = { "pvesh get /nodes/n1/hardware/pci --pci-class-blacklist '' --output-format json": hw, "pvesh get /nodes/n2/hardware/pci --pci-class-blacklist '' --output-format json": hw };
  const ctx = (host: string, files: Record<string, string | null>) => ({ host, facts: f(host), vars: { hostvars: hv }, observe: fakeObserver({ files, cmds }), check: false });
  const args = { name: 'g', members: [], description: '', standalone: false };
  t.regex(((await pciMappingModule.plan(args, ctx('n2', {}))) as { reason: string }).reason, /written once for the cluster, by n1/);
  const p = await pciMappingModule.plan(args, ctx('n1', {}));
  t.is((p as { actions: Array<{ command: string }> }).actions[0].command, 'pvesh create /cluster/mapping/pci --id g --map id=10de:2684,iommugroup=12,node=n1,path=0000:01:00,subsystem-id=1043:889c --map id=10de:2684,iommugroup=12,node=n2,path=0000:01:00,subsystem-id=1043:889c');
  const written = (p as { diff: Array<{ after: string }> }).diff[0].after;
  t.is((await pciMappingModule.plan(args, ctx('n1', { '/etc/pve/mapping/pci.cfg': written }))).kind, 'noop');
  const stale = written.replace('iommugroup=12,node=n2', 'iommugroup=13,node=n2');
  const u = await pciMappingModule.plan(args, ctx('n1', { '/etc/pve/mapping/pci.cfg': stale }));
  t.regex((u as { actions: Array<{ command: string }> }).actions[0].command, /^pvesh set \/cluster\/mapping\/pci\/g --map .* --digest [0-9a-f]{40}$/);
  const nq = { ...ctx('n1', {}), facts: { ...f('n1'), cluster: { ...cluster, quorate: false } } };
  t.regex(((await pciMappingModule.plan(args, nq)) as { msg: string }).msg, /not quorate/);
  const solo = { ...ctx('n1', {}), facts: { ...f('n1'), cluster: { ...cluster, name: null } } };
  t.is((await pciMappingModule.plan(args, solo)).kind, 'noop');
});
