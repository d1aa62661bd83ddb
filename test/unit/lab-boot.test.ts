import test from 'ava';
import { boot, hugepagesFromCmdline, kernelAtLeast, parseGrubCfg } from '../../src/lab/boot.ts';
import { grubCfg, loaderEntry, snapshotOf } from '../../src/lab/node.ts';
import { loadProfile, listProfiles, type Profile } from '../../src/lab/profile.ts';
import { memoryView } from '../helpers/node-view.ts';

const view = memoryView;

const intel = (): Profile => loadProfile('intel-grub-pve8-rtx4090');

/** Files of a freshly installed GRUB node, with its config applied. */
function grubNode(p: Profile, cmdline = p.cmdline, extra: Record<string, string> = {}) {
  const v = view({ '/etc/modules': '', ...extra });
  v.files['/boot/grub/grub.cfg'] = grubCfg(p.kernel.installed, p.root.device, '', cmdline, 'Proxmox VE');
  v.files[`/boot/initrd.img-${p.kernel.release}`] = snapshotOf(v);
  return v;
}
const applyInitramfs = (v: ReturnType<typeof view>, k: string) => {
  v.files[`/boot/initrd.img-${k}`] = snapshotOf(v);
};

const VFIO = {
  '/etc/modules': 'vfio\nvfio_iommu_type1\nvfio_pci\n',
  '/etc/modprobe.d/vfio.conf': 'options vfio-pci ids=10de:2684,10de:22ba disable_vga=1\nsoftdep nouveau pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n',
};

test('every profile loads and boots from its initial state', (t) => {
  t.true(listProfiles().length >= 8);
  for (const name of listProfiles()) {
    const p = loadProfile(name);
    const r = boot(p, grubNode(p));
    t.is(r.kernelRelease, p.kernel.release, name);
    t.is(r.devices.length, p.pci.length, name);
  }
});

test('/proc/cmdline comes from grub.cfg as update-grub wrote it', (t) => {
  const p = intel();
  const r = boot(p, grubNode(p, 'quiet intel_iommu=on iommu=pt'));
  t.is(r.cmdline, 'BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet intel_iommu=on iommu=pt');
  t.deepEqual(parseGrubCfg(grubCfg(['5.15.1-1-pve', '6.8.12-4-pve'], '/dev/x', 'a', 'b', 'D'))?.kernel, '6.8.12-4-pve');
});

test('a GRUB default edited but not applied with update-grub has no effect', (t) => {
  const p = intel();
  const v = grubNode(p);
  v.files['/etc/default/grub'] = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on"\n';
  const r = boot(p, v);
  t.false(r.cmdline.includes('intel_iommu=on'));
});

test('systemd-boot node reads loader entries, ignores grub.cfg', (t) => {
  const p = loadProfile('amd-systemdboot-zfs-pve8-rx6800');
  const v = grubNode(p, 'quiet iommu=pt'); // grub.cfg present but not booted
  const k = p.kernel.release;
  v.files[`/boot/efi/loader/entries/proxmox-${k}.conf`] = loaderEntry(k, 'root=ZFS=rpool/ROOT/pve-1 boot=zfs');
  const r = boot(p, v);
  t.is(r.cmdline, `initrd=\\EFI\\proxmox\\${k}\\initrd.img-${k} root=ZFS=rpool/ROOT/pve-1 boot=zfs`);
  // /etc/kernel/cmdline edited without refresh: still the old entry
  v.files['/etc/kernel/cmdline'] = 'root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt';
  t.false(boot(p, v).cmdline.includes('iommu=pt'));
});

test('Intel IOMMU before 6.8 needs intel_iommu=on; from 6.8 on by default', (t) => {
  const p7 = loadProfile('pve7-kernel515');
  t.false(boot(p7, grubNode(p7)).iommu.active);
  t.deepEqual(boot(p7, grubNode(p7)).groups, {});
  const on = boot(p7, grubNode(p7, 'quiet intel_iommu=on'));
  t.true(on.iommu.active);
  t.true(on.log.includes('DMAR: IOMMU enabled'));
  const p8 = intel();
  const r8 = boot(p8, grubNode(p8));
  t.true(r8.iommu.active);
  t.false(r8.log.includes('DMAR: IOMMU enabled'));
  t.deepEqual(r8.groups['12'], ['0000:01:00.0', '0000:01:00.1']);
  t.true(kernelAtLeast('6.8.12-4-pve', 6, 8));
  t.false(kernelAtLeast('5.15.158-2-pve', 6, 2));
});

test('AMD IOMMU is on by default; firmware off means off whatever the cmdline', (t) => {
  const a = loadProfile('amd-systemdboot-zfs-pve8-rx6800');
  const v = grubNode(a);
  v.files[`/boot/efi/loader/entries/proxmox-${a.kernel.release}.conf`] = loaderEntry(a.kernel.release, 'root=ZFS=rpool/ROOT/pve-1 boot=zfs');
  t.true(boot(a, v).iommu.active);
  const off = loadProfile('iommu-off-firmware');
  const r = boot(off, grubNode(off, 'quiet intel_iommu=on'));
  t.false(r.iommu.active);
  t.false(r.iommu.present);
  t.true(r.devices.every((d) => d.group === null));
});

test('ACS override splits the shared group only with the patch and the parameter', (t) => {
  const p = loadProfile('shared-group-usb');
  const before = boot(p, grubNode(p));
  t.deepEqual(before.groups['14']!.sort(), ['0000:00:1c.0', '0000:00:1c.4', '0000:03:00.0', '0000:03:00.1', '0000:04:00.0']);
  const after = boot(p, grubNode(p, 'quiet pcie_acs_override=downstream,multifunction'));
  t.deepEqual(after.groups['14']!.sort(), ['0000:00:1c.0', '0000:03:00.0', '0000:03:00.1']);
  t.deepEqual(after.groups['16'], ['0000:04:00.0']);
  const unpatched = { ...p, kernel: { ...p.kernel, acs_patch: false } };
  const r = boot(unpatched, grubNode(unpatched, 'quiet pcie_acs_override=downstream,multifunction'));
  t.is(r.groups['14']!.length, 5);
  t.true(r.log.some((l) => l.includes('Unknown kernel command line parameters "pcie_acs_override')));
});

test('vfio-pci claims the GPU only after update-initramfs with modules, ids and softdep', (t) => {
  const p = intel();
  const v = grubNode(p);
  Object.assign(v.files, VFIO);
  // written but initramfs not rebuilt: host drivers
  let r = boot(p, v);
  t.is(r.devices.find((d) => d.address === '0000:01:00.0')!.driver, 'nouveau');
  applyInitramfs(v, p.kernel.release);
  r = boot(p, v);
  t.is(r.devices.find((d) => d.address === '0000:01:00.0')!.driver, 'vfio-pci');
  t.is(r.devices.find((d) => d.address === '0000:01:00.1')!.driver, 'vfio-pci');
  t.true(r.modules.includes('vfio_pci'));
  t.is(r.devices.find((d) => d.address === '0000:00:14.0')!.driver, 'xhci_hcd');
});

test('ids without softdep or blacklist: the host driver wins; a blacklist alone leaves no driver', (t) => {
  const p = intel();
  const v = grubNode(p, p.cmdline, { '/etc/modules': VFIO['/etc/modules'], '/etc/modprobe.d/vfio.conf': 'options vfio-pci ids=10de:2684,10de:22ba\n' });
  applyInitramfs(v, p.kernel.release);
  t.is(boot(p, v).devices.find((d) => d.address === '0000:01:00.0')!.driver, 'nouveau');
  v.files['/etc/modprobe.d/blacklist-gpu.conf'] = 'blacklist nouveau\n';
  v.files['/etc/modprobe.d/vfio.conf'] = 'options vfio-pci ids=10de:22ba\n';
  applyInitramfs(v, p.kernel.release);
  const r = boot(p, v);
  t.is(r.devices.find((d) => d.address === '0000:01:00.0')!.driver, null);
  t.is(r.devices.find((d) => d.address === '0000:01:00.1')!.driver, 'snd_hda_intel');
});

test('ids= captures both identical GPUs, the boot display included', (t) => {
  const p = loadProfile('two-identical-gpus-bootvga');
  const v = grubNode(p, p.cmdline, {
    '/etc/modules': VFIO['/etc/modules'],
    '/etc/modprobe.d/vfio.conf': 'options vfio-pci ids=10de:2204,10de:1aef\nsoftdep nouveau pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n',
  });
  applyInitramfs(v, p.kernel.release);
  const r = boot(p, v);
  t.is(r.devices.filter((d) => d.driver === 'vfio-pci').length, 4);
  t.true(r.log.some((l) => l.includes('host console lost')));
  // per-device: driver_override for 41:00.* only
  v.files['/etc/modprobe.d/vfio.conf'] = '';
  v.files['/etc/initramfs-tools/scripts/init-top/vfio-override'] =
    '#!/bin/sh\necho vfio-pci > /sys/bus/pci/devices/0000:41:00.0/driver_override\necho vfio-pci > /sys/bus/pci/devices/0000:41:00.1/driver_override\n';
  applyInitramfs(v, p.kernel.release);
  const r2 = boot(p, v);
  t.deepEqual(r2.devices.filter((d) => d.driver === 'vfio-pci').map((d) => d.address), ['0000:41:00.0', '0000:41:00.1']);
  t.is(r2.devices.find((d) => d.address === '0000:01:00.0')!.driver, 'nouveau');
});

test('vfio_virqfd in /etc/modules fails systemd-modules-load on 6.2+, not on 5.15', (t) => {
  const p = intel();
  const v = grubNode(p, p.cmdline, { '/etc/modules': 'vfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n' });
  const r = boot(p, v);
  t.deepEqual(r.failedUnits, ['systemd-modules-load.service']);
  t.true(r.log.some((l) => l.includes("Failed to find module 'vfio_virqfd'")));
  const p7 = loadProfile('pve7-kernel515');
  const r7 = boot(p7, grubNode(p7, p7.cmdline, { '/etc/modules': 'vfio\nvfio_virqfd\n' }));
  t.deepEqual(r7.failedUnits, []);
  t.true(r7.modules.includes('vfio_virqfd'));
});

test('hugepages from the cmdline and from sysctl.d (2M runtime only)', (t) => {
  t.deepEqual(hugepagesFromCmdline('default_hugepagesz=1G hugepagesz=1G hugepages=16'), { defaultSizeKb: 1048576, pools: { '1048576': 16 } });
  t.deepEqual(hugepagesFromCmdline('hugepages=512'), { defaultSizeKb: 2048, pools: { '2048': 512 } });
  const p = intel();
  t.deepEqual(boot(p, grubNode(p)).hugepages.pools, {});
  const v = grubNode(p, p.cmdline, { '/etc/sysctl.d/80-hugepages.conf': 'vm.nr_hugepages = 512\n' });
  t.is(boot(p, v).hugepages.pools['2048'], 512);
  const v1 = grubNode(p, 'default_hugepagesz=1G hugepagesz=1G hugepages=8', { '/etc/sysctl.d/80-hugepages.conf': 'vm.nr_hugepages = 512\n' });
  t.deepEqual(boot(p, v1).hugepages, { defaultSizeKb: 1048576, pools: { '1048576': 8 } });
  // more than memory: capped
  const big = boot(p, grubNode(p, 'default_hugepagesz=1G hugepagesz=1G hugepages=4096'));
  t.true(big.hugepages.pools['1048576']! < 64);
});

test('DKMS module loads only when built for the running kernel; reset_method needs a rule', (t) => {
  const base = loadProfile('amd-systemdboot-zfs-pve8-rx6800');
  const p: Profile = { ...base, bootloader: 'grub-uefi', pci: base.pci.map((d) => (d.vendor === '1002' && d.class === '0300' ? { ...d, vendor_reset: true } : d)) };
  const k = p.kernel.release;
  const v = grubNode(p, p.cmdline, { '/etc/modules': 'vendor_reset\n' });
  let r = boot(p, v);
  t.false(r.modules.includes('vendor_reset'));
  t.deepEqual(r.failedUnits, ['systemd-modules-load.service']);
  v.files['/var/lib/dkms/vendor-reset/0.1.1/source/dkms.conf'] = 'PACKAGE_NAME=vendor-reset';
  v.files['/var/lib/dkms/vendor-reset/0.1.1/6.5.0-1-pve/x86_64/module/vendor_reset.ko'] = '';
  t.false(boot(p, v).modules.includes('vendor_reset'), 'built for another kernel');
  v.files[`/var/lib/dkms/vendor-reset/0.1.1/${k}/x86_64/module/vendor_reset.ko`] = '';
  r = boot(p, v);
  t.true(r.modules.includes('vendor_reset'));
  t.deepEqual(r.devices.find((d) => d.address === '0000:0b:00.0')!.resetMethod, ['bus']);
  v.files['/etc/udev/rules.d/99-vendor-reset.rules'] = 'ACTION=="add", SUBSYSTEM=="pci", ATTR{vendor}=="0x1002", ATTR{device}=="0x73bf", RUN+="/bin/sh -c \'echo device_specific > /sys$env{DEVPATH}/reset_method\'"\n';
  r = boot(p, v);
  t.deepEqual(r.devices.find((d) => d.address === '0000:0b:00.0')!.resetMethod, ['device_specific']);
  t.deepEqual(r.devices.find((d) => d.address === '0000:0b:00.1')!.resetMethod, ['flr', 'bus']);
});

test('docker runtimes at boot come from daemon.json', (t) => {
  const p = loadProfile('debian-guest-nvidia-docker');
  // the profile's driver holds while the node has its package (src/lab/boot-nvidia.ts)
  const v = grubNode(p, p.cmdline, { '/var/lib/dpkg/status': 'Package: docker-ce\nStatus: install ok installed\nVersion: 5:27.3.1-1\n\nPackage: nvidia-driver\nStatus: install ok installed\nVersion: 535.216.01-1~deb12u1\n\n' });
  t.deepEqual(boot(p, v).dockerRuntimes, ['io.containerd.runc.v2', 'runc']);
  v.files['/etc/docker/daemon.json'] = JSON.stringify({ runtimes: { nvidia: { args: [], path: 'nvidia-container-runtime' } } });
  t.deepEqual(boot(p, v).dockerRuntimes, ['io.containerd.runc.v2', 'runc', 'nvidia']);
  t.is(boot(p, v).devices.find((d) => d.address === '0000:01:00.0')!.driver, 'nvidia');
});

test('driver_override from an init-top script: only vfio-pci may bind, and only once it loads', (t) => {
  const p = loadProfile('two-identical-gpus-bootvga');
  const script = '#!/bin/sh\necho vfio-pci > /sys/bus/pci/devices/0000:41:00.0/driver_override\necho vfio-pci > /sys/bus/pci/devices/0000:41:00.1/driver_override\n';
  // Written but vfio-pci never loads: the chosen functions stay without a driver, the twin keeps nouveau.
  const v = grubNode(p, p.cmdline, { '/etc/initramfs-tools/scripts/init-top/passthru-vfio-override': script });
  applyInitramfs(v, p.kernel.release);
  const r = boot(p, v);
  t.is(r.devices.find((d) => d.address === '0000:41:00.0')!.driver, null);
  t.is(r.devices.find((d) => d.address === '0000:01:00.0')!.driver, 'nouveau');
  // vfio_pci from /etc/modules (after the root mount) binds them then.
  v.files['/etc/modules'] = VFIO['/etc/modules'];
  const r2 = boot(p, v);
  t.deepEqual(r2.devices.filter((d) => d.driver === 'vfio-pci').map((d) => d.address), ['0000:41:00.0', '0000:41:00.1']);
  t.is(r2.devices.find((d) => d.address === '0000:01:00.1')!.driver, 'snd_hda_intel');
  // The script only counts once it is in the initramfs.
  const w = grubNode(p, p.cmdline, { '/etc/modules': VFIO['/etc/modules'] });
  w.files['/etc/initramfs-tools/scripts/init-top/passthru-vfio-override'] = script;
  t.is(boot(p, w).devices.find((d) => d.address === '0000:41:00.0')!.driver, 'nouveau');
});
