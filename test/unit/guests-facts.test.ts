import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  effectiveConfig,
  hostpciOf,
  parseDri,
  parseGuestConfig,
  parseGuestFiles,
  parsePciExtra,
  parsePciMappingCfg,
  parsePropertyString,
  printMapEntry,
  printPciMappingCfg,
  slotOf,
} from '../../src/facts/guests.ts';
import { parseProbe } from '../../src/facts/probe.ts';

const fx = (n: string) => readFileSync(join(import.meta.dirname, '../fixtures/guests', n), 'utf8');

test('parseGuestConfig: qemu-server test config with hostpci by address', (t) => {
  const g = parseGuestConfig(fx('q35-win10-hostpci.conf'), 'qm', '/etc/pve/qemu-server/100.conf');
  t.is(g.id, '100');
  t.is(g.config.machine, 'q35');
  t.is(g.config.bios, 'ovmf');
  t.is(g.config.efidisk0, 'local:100/vm-100-disk-1.qcow2,size=128K');
  t.is(g.description, ' TEST: Config with q35, NUMA, hostpci passthrough, EFI & Windows');
  t.deepEqual(
    hostpciOf(g.config).map((h) => [h.key, h.host, h.mapping, h.options.pcie ?? null]),
    [
      ['hostpci0', ['f0:42.0'], null, null],
      ['hostpci1', ['f0:43.0'], null, '1'],
      ['hostpci4', ['00:43.1'], null, '1'],
    ],
  );
  t.deepEqual(g.pending, {});
  t.regex(g.digest, /^[0-9a-f]{40}$/);
});

test('parseGuestConfig: hostpci by mapping, options kept', (t) => {
  const g = parseGuestConfig(fx('q35-linux-hostpci-mapping.conf'), 'qm', '/etc/pve/qemu-server/100.conf');
  const h = hostpciOf(g.config);
  t.deepEqual(h.map((x) => x.mapping), ['someNic', 'someGpu', 'someNic']);
  t.is(h[1].options.mdev, 'some-model');
  t.true(h.every((x) => x.host === null));
});

test('parseGuestConfig: [PENDING], special and snapshot sections stay out of the current config', (t) => {
  const g = parseGuestConfig(fx('sections-pending.conf'), 'qm', '/etc/pve/qemu-server/120.conf');
  t.false("bios" in g.config);
  t.deepEqual(g.pending, { bios: 'ovmf' });
  t.is(effectiveConfig(g).bios, 'ovmf');
  t.is(g.config.ipconfig0, 'ip6=dhcp'); // the cloudinit section's value is not the VM's
  t.deepEqual(g.snapshots, ['foo']);
  t.false("snaptime" in g.config);
});

test('parseGuestConfig: snapshots; pending delete', (t) => {
  const g = parseGuestConfig(fx('snapshots.conf'), 'qm', '/etc/pve/qemu-server/111.conf');
  t.is(g.snapshots.length, 7);
  t.is(g.config.machine, 'pc-i440fx-9.1');
  t.is(g.config.parent, 'win19_5_2_plus_stuff');
  const p = parseGuestConfig('cores: 2\nhugepages: 2\n\n[PENDING]\ndelete: hugepages,numa\ncores: 4\n', 'qm', '/x/qemu-server/5.conf');
  t.deepEqual(p.pendingDelete, ['hugepages', 'numa']);
  t.deepEqual(effectiveConfig(p), { cores: '4' });
});

test('parseGuestConfig: container with lxc.* keys and [pve:pending]', (t) => {
  const g = parseGuestConfig(fx('lxc-101.conf'), 'pct', '/etc/pve/lxc/101.conf');
  t.is(g.config.hostname, 'test');
  t.deepEqual(g.snapshots, ['test']);
  const c = parseGuestConfig(
    'arch: amd64\nlxc.cgroup2.devices.allow: c 226:128 rwm\nlxc.mount.entry: /dev/dri/renderD128 dev/dri/renderD128 none bind,optional,create=file\n\n[pve:pending]\ndev0: /dev/dri/renderD128,gid=104\n',
    'pct',
    '/etc/pve/lxc/200.conf',
  );
  t.deepEqual(c.lxc.map(([k]) => k), ['lxc.cgroup2.devices.allow', 'lxc.mount.entry']);
  t.deepEqual(c.pending, { dev0: '/dev/dri/renderD128,gid=104' });
});

test('parseGuestFiles: the probe section, VMs before containers, by id', (t) => {
  const text = `@@file /etc/pve/lxc/200.conf\n${fx('lxc-101.conf')}\n@@file /etc/pve/qemu-server/111.conf\n${fx('snapshots.conf')}\n@@file /etc/pve/qemu-server/100.conf\n${fx('q35-win10-hostpci.conf')}\n`;
  t.deepEqual(parseGuestFiles(text).map((g) => `${g.kind}:${g.id}`), ['qm:100', 'qm:111', 'pct:200']);
});

test('property strings and slots', (t) => {
  t.deepEqual(parsePropertyString('0000:01:00,pcie=1,x-vga=1', 'host'), { host: '0000:01:00', pcie: '1', 'x-vga': '1' });
  t.is(slotOf('01:00.1'), '0000:01:00');
  t.is(slotOf('0000:ca:00'), '0000:ca:00');
});

test('parsePciMappingCfg: sections, map entries, digest; printing gives the same bytes', (t) => {
  const text = fx('pci.cfg');
  const { mappings, digest } = parsePciMappingCfg(text);
  t.deepEqual(mappings.map((m) => m.id), ['rtx4090', 'nic-vfs']);
  t.is(mappings[0].description, 'Gaming GPU');
  t.deepEqual(mappings[0].map.map((e) => [e.node, e.path, e.id, e.subsystemId, e.iommugroup]), [
    ['pve1', ['0000:01:00'], '10de:2684', '1043:889c', 12],
    ['pve2', ['0000:02:00'], '10de:2684', '1458:40e5', 14],
  ]);
  t.deepEqual(mappings[1].map[0].path, ['0000:17:01.0', '0000:17:01.1']);
  t.true(mappings[1].mdev);
  t.is(digest.length, 40);
  t.is(printPciMappingCfg(mappings), text);
  t.is(printMapEntry(mappings[0].map[0]), mappings[0].map[0].raw);
});

test('parsePciExtra: subsystem ids from sysfs, 0000:0000 kept (Proxmox expects it in the mapping)', (t) => {
  const x = parsePciExtra(fx('pci-extra-this-machine.txt'));
  t.is(x['0000:00:00.0'].subsystemId, '0000:0000');
  t.is(parsePciExtra('/sys/bus/pci/devices/0000:00:03.0/sriov_numvfs:0\n')['0000:00:03.0'].subsystemId, null);
  t.regex(x['0000:00:01.0'].subsystemId ?? '', /^1af4:[0-9a-f]{4}$/);
  t.is(x['0000:00:01.0'].sriovTotalVfs, null);
  const s = parsePciExtra('/sys/bus/pci/devices/0000:00:02.0/sriov_totalvfs:7\n/sys/bus/pci/devices/0000:00:02.0/sriov_numvfs:0\n');
  t.is(s['0000:00:02.0'].sriovTotalVfs, 7);
  t.is(s['0000:00:02.0'].sriovNumVfs, 0);
});

test('parseDri: render nodes with major:minor, group and stable by-path names', (t) => {
  const d = parseDri(fx('dri-igpu.txt'));
  const r = d.find((x) => x.name === 'renderD128')!;
  t.deepEqual([r.major, r.minor, r.group, r.gid, r.byPath, r.pciAddress], [226, 128, 'render', 104, '/dev/dri/by-path/pci-0000:00:02.0-render', '0000:00:02.0']);
  t.is(d.find((x) => x.name === 'card0')!.pciAddress, '0000:01:00.0');
  t.deepEqual(parseDri(''), []);
});

test('parseProbe: guest sections reach the facts', (t) => {
  const out = [
    '@@passthru-facts:pci@@',
    '0000:01:00.0\t0x10de\t0x2684\t0x030000\t1\tbus\tvfio-pci\tvfio_pci',
    '@@passthru-facts:pve-guests@@',
    `@@file /etc/pve/qemu-server/100.conf\n${fx('q35-linux-hostpci-mapping.conf')}`,
    '@@passthru-facts:pve-nodes@@',
    'pve2\npve1',
    '@@passthru-facts:pci-mapping@@',
    fx('pci.cfg'),
    '@@passthru-facts:pci-extra@@',
    '/sys/bus/pci/devices/0000:01:00.0/subsystem_vendor:0x1043\n/sys/bus/pci/devices/0000:01:00.0/subsystem_device:0x889c',
  ].join('\n');
  const f = parseProbe(out);
  t.deepEqual(f.vms.map((v) => v.id), ['100']);
  t.deepEqual(f.pveNodes, ['pve1', 'pve2']);
  t.deepEqual(f.pciMappings.map((m) => m.id), ['rtx4090', 'nic-vfs']);
  t.is(f.pci[0].subsystemId, '1043:889c');
  t.deepEqual(f.containers, []);
  t.deepEqual(f.dri, []);
});
