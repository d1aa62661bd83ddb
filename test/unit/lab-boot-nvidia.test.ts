/**
 * The NVIDIA driver in a lab guest's boot (src/lab/boot-nvidia.ts): decided by what the node has
 * installed (dpkg status, DKMS tree) and what its initramfs blacklists, not by the profile.
 */
import test from 'ava';
import { boot, type NodeView } from '../../src/lab/boot.ts';
import { grubCfg, snapshotOf } from '../../src/lab/node.ts';
import { loadProfile, type Profile } from '../../src/lab/profile.ts';

function node(p: Profile, files: Record<string, string>): NodeView & { files: Record<string, string> } {
  const v = {
    files,
    read: (path: string) => (path in files ? files[path]! : null),
    list: (d: string) => {
      const pre = d.endsWith('/') ? d : d + '/';
      return [...new Set(Object.keys(files).filter((f) => f.startsWith(pre)).map((f) => f.slice(pre.length).split('/')[0]!))].sort();
    },
  };
  v.files['/boot/grub/grub.cfg'] = grubCfg(p.kernel.installed, p.root.device, '', p.cmdline, 'Debian');
  v.files[`/boot/initrd.img-${p.kernel.release}`] = snapshotOf(v);
  return v;
}
const status = (pkgs: Record<string, string>) => Object.entries(pkgs).map(([n, v]) => `Package: ${n}\nStatus: install ok installed\nVersion: ${v}\n`).join('\n') + '\n';
const V = '535.216.01-1~deb12u1';
const K = '6.1.0-27-amd64';
const GPU = '0000:01:00.0';
const built = { [`/var/lib/dkms/nvidia-current/535.216.01/source/dkms.conf`]: '', [`/var/lib/dkms/nvidia-current/535.216.01/${K}/x86_64/module/nvidia-current.ko`]: '' };
const blacklist = { '/etc/modprobe.d/nvidia-blacklists-nouveau.conf': 'blacklist nouveau\noptions nouveau modeset=0\n' };

test('fresh guest: nouveau has the GPU; the package alone (no DKMS build) changes nothing', (t) => {
  const p = loadProfile('debian-guest-nvidia-fresh');
  let r = boot(p, node(p, { '/var/lib/dpkg/status': status({ 'docker-ce': '5:27.3.1-1' }) }));
  t.is(r.devices.find((d) => d.address === GPU)!.driver, 'nouveau');
  t.false(r.modules.includes('nvidia'));
  r = boot(p, node(p, { '/var/lib/dpkg/status': status({ 'nvidia-driver': V }), ...blacklist }));
  t.is(r.devices.find((d) => d.address === GPU)!.driver, null);
  t.false(r.modules.includes('nvidia'));
  t.true(r.log.some((l) => /DKMS has no nvidia-current module for 6\.1\.0-27-amd64/.test(l)));
});

test('package + DKMS build + nouveau blacklisted in the initramfs: the nvidia driver takes the GPU', (t) => {
  const p = loadProfile('debian-guest-nvidia-fresh');
  const r = boot(p, node(p, { '/var/lib/dpkg/status': status({ 'nvidia-driver': V }), ...built, ...blacklist }));
  t.is(r.devices.find((d) => d.address === GPU)!.driver, 'nvidia');
  t.is(r.devices.find((d) => d.address === '0000:01:00.1')!.driver, 'snd_hda_intel');
  for (const m of ['nvidia', 'nvidia_drm', 'nvidia_modeset', 'nvidia_uvm']) t.true(r.modules.includes(m), m);
  t.false(r.modules.includes('nouveau'));
  t.true(r.log.includes('NVRM: loading NVIDIA UNIX x86_64 Kernel Module  535.216.01  (lab)'));
});

test('the blacklist written but not in the initramfs: nouveau binds first, nvidia finds the GPU taken', (t) => {
  const p = loadProfile('debian-guest-nvidia-fresh');
  const v = node(p, { '/var/lib/dpkg/status': status({ 'nvidia-driver': V }), ...built });
  v.files['/etc/modprobe.d/nvidia-blacklists-nouveau.conf'] = blacklist['/etc/modprobe.d/nvidia-blacklists-nouveau.conf'];
  const r = boot(p, v);
  t.is(r.devices.find((d) => d.address === GPU)!.driver, 'nouveau');
  t.true(r.log.includes(`NVRM: GPU ${GPU}: GPU is already bound to nouveau.`));
});

test('DKMS built for another kernel only: no nvidia', (t) => {
  const p = loadProfile('debian-guest-nvidia-fresh');
  const other = { '/var/lib/dkms/nvidia-current/535.216.01/6.1.0-26-amd64/x86_64/module/nvidia-current.ko': '' };
  const r = boot(p, node(p, { '/var/lib/dpkg/status': status({ 'nvidia-driver': V }), ...other, ...blacklist }));
  t.is(r.devices.find((d) => d.address === GPU)!.driver, null);
});

test('the guest whose profile has the driver: nvidia while the package is installed, gone when it is removed', (t) => {
  const p = loadProfile('debian-guest-nvidia-docker');
  let r = boot(p, node(p, { '/var/lib/dpkg/status': status({ 'nvidia-driver': V }) }));
  t.is(r.devices.find((d) => d.address === GPU)!.driver, 'nvidia');
  t.true(r.modules.includes('nvidia'));
  r = boot(p, node(p, { '/var/lib/dpkg/status': status({ 'docker-ce': '5:27.3.1-1' }) }));
  t.is(r.devices.find((d) => d.address === GPU)!.driver, 'nouveau');
  t.false(r.modules.includes('nvidia'));
});

test('a Proxmox node with an NVIDIA card and no driver package: untouched', (t) => {
  const p = loadProfile('intel-grub-pve8-rtx4090');
  const r = boot(p, node(p, {}));
  t.is(r.devices.find((d) => d.address === GPU)!.driver, 'nouveau');
});
