import test from 'ava';
import { needsVfioVirqfd, passthroughConfig as planDevices, hugepagesConfig as planHugepages, vendorResetFamily, normalizeSlot } from '../../src/passthrough/index.ts';
import { assignableCommand, iommuParams, passthroughCheckModule, runCheck, type CheckName } from '../../src/modules/passthrough_check.ts';
import type { Facts } from '../../src/facts/types.ts';
import type { Plan } from '../../src/modules/contract.ts';
import { labFacts, pveNvidiaFacts } from '../fixtures/facts/hosts.ts';
import { PROBE } from '../fixtures/vfio-probe.ts';

const LAB = { passthrough_slots: ['00:05'] };
const NV = { passthrough_slots: ['01:00'] };
const check = (c: CheckName, facts: Facts, vars: Record<string, unknown>, params: string[] = []): Plan => runCheck({ check: c, params }, facts, vars);
const failMsg = (p: Plan) => (p.kind === 'fail' ? p.msg : `not a failure: ${p.kind} ${p.kind === 'noop' ? p.reason : ''}`);
const hint = (p: Plan) => (p.kind === 'fail' ? (p.hint ?? '') : '');

// ---------------------------------------------------------------- device choice

test('slot → every function; ids; vfio.conf with softdeps; lab blacklist is bochs only', (t) => {
  const p = planDevices(labFacts(), LAB);
  t.deepEqual(p.devices.map((d) => d.address), ['0000:00:05.0', '0000:00:05.1']);
  t.deepEqual(p.ids, ['1234:1111', '8086:293e']);
  t.deepEqual(p.blacklist, ['bochs']);
  t.deepEqual(p.softdeps, ['bochs', 'snd_hda_intel']);
  t.is(
    p.vfioConf,
    '# Managed by passthru: bind the chosen devices to vfio-pci before their host drivers.\n' +
      'options vfio-pci ids=1234:1111,8086:293e disable_vga=1\nsoftdep bochs pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n',
  );
  t.is(p.blacklistConf, '# Managed by passthru: host drivers kept off the devices passed through.\nblacklist bochs\n');
  t.deepEqual(p.deviceProblems, []);
  t.deepEqual(p.captureProblems, []);
});

test('the configuration is made once per facts and variable values, frozen; any other value of a variable is another one', (t) => {
  const facts = labFacts();
  const a = planDevices(facts, { ...LAB });
  t.is(planDevices(facts, { ...LAB, unrelated: 1 } as never), a, 'same facts, same values: the same configuration');
  t.true(Object.isFrozen(a) && Object.isFrozen(a.devices) && Object.isFrozen(a.devices[0]));
  t.throws(() => (a.ids as string[]).push('x'));
  t.not(planDevices(labFacts(), LAB), a, 'other facts (equal, but another probe): made again');
  // vfio_disable_vga: unset means true, null means false; JSON alone would not tell them apart.
  const unset = planDevices(facts, { ...LAB });
  const nul = planDevices(facts, { ...LAB, vfio_disable_vga: null } as never);
  t.not(nul, unset);
  t.regex(unset.vfioConf, /disable_vga=1/);
  t.notRegex(nul.vfioConf, /disable_vga=1/);
  t.not(planDevices(facts, { passthrough_slots: ['00:05'], vfio_bind: 'address' }), a);
  t.is(planDevices(facts, { passthrough_slots: ['00:05'], vfio_bind: 'address' }).bind, 'address');
});

test('the plan does not depend on the current binding (idempotent after vfio-pci took over)', (t) => {
  const before = planDevices(labFacts(), LAB);
  const after = planDevices(labFacts({ bound: true }), LAB);
  t.is(after.vfioConf, before.vfioConf);
  t.is(after.blacklistConf, before.blacklistConf);
});

test('NVIDIA: vendor blacklist, snd_hda_intel never blacklisted (softdep only)', (t) => {
  const p = planDevices(pveNvidiaFacts(), NV);
  t.deepEqual(p.ids, ['10de:1f91', '10de:10fa']);
  t.deepEqual(p.blacklist, ['nouveau', 'nvidia', 'nvidiafb', 'nvidia_drm']);
  t.false(p.blacklist.includes('snd_hda_intel'));
  t.true(p.softdeps.includes('snd_hda_intel'));
  t.true(p.isolated ?? false);
});

test('vfio_ids chooses by id; explicit function chooses one function', (t) => {
  t.deepEqual(planDevices(pveNvidiaFacts(), { vfio_ids: ['10de:1f91'] }).devices.map((d) => d.address), ['0000:01:00.0']);
  t.deepEqual(planDevices(pveNvidiaFacts(), { passthrough_slots: ['0000:01:00.1'] }).devices.map((d) => d.address), ['0000:01:00.1']);
  t.deepEqual(normalizeSlot('01:00'), { slot: '0000:01:00', fn: null });
  t.is(normalizeSlot('1:0'), null);
});

test('a driver another host device uses is not blacklisted', (t) => {
  // i915 drives the boot iGPU 00:02.0; choosing an Intel display in the lab would want i915 blacklisted.
  const p = planDevices(pveNvidiaFacts(), { passthrough_slots: ['01:00'], blacklist_drivers: ['nouveau', 'i915'] });
  t.deepEqual(p.blacklist, ['nouveau']);
  t.true(p.notes.some((n) => /not blacklisting i915: 0000:00:02.0/.test(n)));
});

test('nothing chosen / missing slot / bad id are device problems', (t) => {
  t.regex(planDevices(labFacts(), {}).deviceProblems[0].msg, /expected passthrough_slots or vfio_ids/);
  const missing = planDevices(labFacts(), { passthrough_slots: ['09:00'] });
  t.regex(missing.deviceProblems[0].msg, /expected a PCI device in slot 09:00, found none/);
  t.regex(missing.deviceProblems[0].hint, /00:05 \(1234:1111\)/);
  t.regex(planDevices(labFacts(), { vfio_ids: ['nvidia'] }).deviceProblems[0].msg, /vendor:device/);
});

test('ids= that would capture an unchosen twin or the boot display: auto binds by address, forced ids is refused', (t) => {
  const twin = planDevices(pveNvidiaFacts({ twin: true }), { ...NV, vfio_bind: 'ids' });
  t.is(twin.captureProblems.length, 1);
  t.regex(twin.captureProblems[0].msg, /ids=10de:1f91 .* also bind 0000:02:00.0 \(not chosen\)/);
  t.regex(twin.captureProblems[0].hint, /vfio_bind: address/);
  const auto = planDevices(pveNvidiaFacts({ twin: true }), NV);
  t.is(auto.bind, 'address');
  t.deepEqual(auto.captureProblems, []);
  t.deepEqual(auto.sameId.map((d) => d.address), ['0000:02:00.0']);
  t.notRegex(auto.vfioConf, /ids=/);
  t.regex(auto.vfioConf, /^softdep nvidia pre: vfio-pci$/m);
  // driver_override for exactly the chosen functions, never the twin.
  t.regex(auto.overrideScript, /^\[ -e \/sys\/bus\/pci\/devices\/0000:01:00\.0 \] && echo vfio-pci > \/sys\/bus\/pci\/devices\/0000:01:00\.0\/driver_override$/m);
  t.regex(auto.overrideScript, /0000:01:00\.1\/driver_override/);
  t.notRegex(auto.overrideScript, /0000:02:00/);
  t.regex(auto.overrideScript, /^prereqs\) prereqs; exit 0 ;;$/m);
  // The twin's driver is not blacklisted.
  t.false(auto.blacklist.includes('nvidia'));
  // Asked for: address binding even when the ids are unique.
  const asked = planDevices(pveNvidiaFacts(), { ...NV, vfio_bind: 'address' });
  t.is(asked.bind, 'address');
  t.is(asked.bindReason, 'vfio_bind is address');
  t.is(planDevices(pveNvidiaFacts(), NV).bind, 'ids');
  t.is(planDevices(pveNvidiaFacts(), NV).overrideScript, '');
  t.regex(planDevices(pveNvidiaFacts(), { ...NV, vfio_bind: 'slot' as 'ids' }).deviceProblems[0].msg, /expected vfio_bind auto, ids or address, found 'slot'/);
  // Same id as the boot display (a lab with QEMU's std VGA, also 1234:1111, as console):
  const f = labFacts({}, {});
  f.pci.push({ ...f.pci.find((d) => d.address === '0000:00:05.0')!, address: '0000:00:01.0', slot: '00:01', class: '0300', bootVga: true });
  const boot = planDevices(f, { ...LAB, vfio_bind: 'ids' });
  t.regex(boot.captureProblems[0].msg, /the boot display 0000:00:01.0/);
  t.regex(boot.captureProblems[0].hint, /lose its console/);
  const bootAuto = planDevices(f, LAB);
  t.is(bootAuto.bind, 'address');
  t.regex(bootAuto.bindReason, /0000:00:01.0 \(boot display\)/);
});

test('group isolation: bridges allowed, a SATA controller is not; ACS need and support', (t) => {
  const ok = planDevices(pveNvidiaFacts(), NV);
  t.deepEqual(ok.groups, [{ group: 1, members: ['0000:00:01.0', '0000:01:00.0', '0000:01:00.1'], foreign: [], isolated: true }]);
  t.false(ok.acs.needed);
  t.false(ok.acs.enable);
  const bad = planDevices(pveNvidiaFacts({ sataInGroup: true }), NV);
  t.false(bad.isolated);
  t.deepEqual(bad.groups[0].foreign, ['0000:00:17.0']);
  t.true(bad.acs.needed);
  t.true(bad.acs.supported); // -pve kernel
  t.true(bad.acs.enable); // auto
  t.false(planDevices(pveNvidiaFacts({ sataInGroup: true }), { ...NV, acs_override: 'off' }).acs.enable);
  t.false(planDevices(labFacts(), { ...LAB, acs_override: 'on' }).acs.supported); // Debian kernel
  t.is(planDevices(labFacts({ iommu: false }), LAB).isolated, null);
});

test('vendor-reset family lookup and decision', (t) => {
  t.is(vendorResetFamily('1002:67df'), 'polaris10');
  t.is(vendorResetFamily('1002:731f'), 'navi10');
  t.is(vendorResetFamily('1002:7340'), 'navi14');
  t.is(vendorResetFamily('1002:744c'), null); // Navi 31: not handled
  t.is(vendorResetFamily('10de:1f91'), null);
  const f = pveNvidiaFacts();
  const amd = f.pci.find((d) => d.address === '0000:01:00.0')!;
  Object.assign(amd, { vendor: '1002', device: '67df', id: '1002:67df' });
  const p = planDevices(f, NV);
  t.true(p.vendorReset.enable);
  t.deepEqual(p.vendorReset.devices, [{ address: '0000:01:00.0', id: '1002:67df', family: 'polaris10' }]);
  t.regex(p.vendorReset.udevRules, /ATTR\{device\}=="0x67df".*device_specific/);
  t.is(p.vendorReset.headersPackage, 'proxmox-headers-6.8.12-4-pve');
  t.deepEqual(p.blacklist, ['amdgpu', 'radeon']);
  t.false(planDevices(f, { ...NV, vendor_reset: 'off' }).vendorReset.enable);
  t.false(planDevices(pveNvidiaFacts(), NV).vendorReset.enable);
  t.is(planDevices({ ...pveNvidiaFacts(), pveMajor: 7 }, NV).vendorReset.headersPackage, 'pve-headers-6.8.12-4-pve');
  t.is(planDevices(labFacts(), LAB).vendorReset.headersPackage, 'linux-headers-6.1.0-28-amd64');
});

test('vfio_virqfd only below 6.2', (t) => {
  t.true(needsVfioVirqfd('5.15.158'));
  t.false(needsVfioVirqfd('6.2.0'));
  t.false(needsVfioVirqfd('6.8.12'));
  t.deepEqual(planDevices(pveNvidiaFacts(), NV).modulesAbsent, ['vfio_virqfd']);
  const old = planDevices({ ...labFacts(), kernelVersion: '5.15.30' }, LAB);
  t.true(old.modules.includes('vfio_virqfd'));
  t.deepEqual(old.modulesAbsent, []);
});

test('hugepages: fit, refusal above the share, boot-time parameters for 1G', (t) => {
  const f = pveNvidiaFacts(); // 32768000 kB
  const ok = planHugepages(f, { hugepages: { size: '2M', count: 1024 } });
  t.is(ok.mode, 'runtime');
  t.is(ok.problem, null);
  const big = planHugepages(f, { hugepages: { size: '1G', count: 28 } });
  t.regex(big.problem?.msg ?? '', /expected at most 23\.4 GiB of hugepages \(75% of MemTotal 31\.3 GiB\), found a request for 28 x 1G = 28\.0 GiB/);
  t.regex(big.problem?.hint ?? '', /at most 23\b/);
  const g = planHugepages(f, { hugepages: { size: '1G', count: '16' } });
  t.deepEqual(g.cmdline, ['default_hugepagesz=1G', 'hugepagesz=1G', 'hugepages=16']);
  t.is(planHugepages(f, {}).mode, 'off');
  t.regex(planHugepages(f, { hugepages: { size: '4M', count: 1 } }).problem?.msg ?? '', /2M or 1G/);
  t.is(planHugepages(f, { hugepages: { size: '1G', count: 28 }, hugepages_max_share: 0.9 }).problem, null);
});

// ---------------------------------------------------------------- preflight checks

test('preflight-cpu', (t) => {
  t.is(check('preflight-cpu', labFacts(), {}).kind, 'noop');
  const novmx = { ...labFacts(), cpuVirtualization: false };
  const p = check('preflight-cpu', novmx, {});
  t.regex(failMsg(p), /expected the vmx flag in \/proc\/cpuinfo, found none/);
  t.regex(hint(p), /VT-x/);
  t.is(check('preflight-cpu', novmx, { cpu_virtualization_required: false }).kind, 'noop');
  t.regex(failMsg(check('preflight-cpu', { ...labFacts(), cpuVendor: 'other' }, {})), /Intel or AMD/);
});

test('preflight-bootloader', (t) => {
  const p = check('preflight-bootloader', labFacts(), {});
  t.is(p.kind, 'noop');
  const unknown = { ...labFacts(), bootloader: 'unknown' as const, bootloaderEvidence: ['UEFI boot, but efibootmgr shows no BootCurrent entry'] };
  const q = check('preflight-bootloader', unknown, {});
  t.regex(failMsg(q), /expected to know which bootloader/);
  t.regex(hint(q), /no BootCurrent/);
  t.is(check('preflight-bootloader', unknown, { bootloader: 'grub' }).kind, 'noop');
});

test('preflight-devices: passes with the plan as data, refuses the capture', (t) => {
  const p = check('preflight-devices', labFacts(), LAB);
  t.is(p.kind, 'noop');
  t.deepEqual((p as { data: { ids: string[] } }).data.ids, ['1234:1111', '8086:293e']);
  const q = check('preflight-devices', pveNvidiaFacts({ twin: true }), { ...NV, vfio_bind: 'ids' });
  t.regex(failMsg(q), /also bind 0000:02:00.0/);
  const a = check('preflight-devices', pveNvidiaFacts({ twin: true }), NV);
  t.is(a.kind, 'noop');
  t.regex((a as { reason: string }).reason, /by address/);
  t.regex(failMsg(check('preflight-devices', labFacts(), {})), /found neither/);
});

test('preflight-isolation and preflight-acs', (t) => {
  t.is(check('preflight-isolation', pveNvidiaFacts(), NV).kind, 'noop');
  const off = check('preflight-isolation', pveNvidiaFacts({ sataInGroup: true }), { ...NV, acs_override: 'off' });
  t.regex(failMsg(off), /found group 1 also holding 0000:00:17.0/);
  t.regex(hint(off), /another slot/);
  t.regex((check('preflight-isolation', pveNvidiaFacts({ sataInGroup: true }), NV) as { reason: string }).reason, /ACS override will split it/);
  t.regex((check('preflight-isolation', labFacts({ iommu: false }), LAB) as { reason: string }).reason, /unknown until the IOMMU is active/);
  const acs = check('preflight-acs', labFacts(), { ...LAB, acs_override: 'on' });
  t.regex(failMsg(acs), /expected a kernel carrying the ACS override patch \(acs_override: on\), found 6\.1\.0-28-amd64/);
  t.is(check('preflight-acs', pveNvidiaFacts(), { ...NV, acs_override: 'on' }).kind, 'noop');
});

test('preflight-hugepages and preflight-container-toolkit', (t) => {
  t.regex(failMsg(check('preflight-hugepages', pveNvidiaFacts(), { hugepages: { size: '1G', count: 30 } })), /expected at most/);
  t.is(check('preflight-hugepages', pveNvidiaFacts(), { hugepages: { size: '2M', count: 512 } }).kind, 'noop');
  t.regex(failMsg(check('preflight-container-toolkit', labFacts(), {})), /expected docker on this host/);
  t.is(check('preflight-container-toolkit', { ...labFacts(), docker: { installed: true, runtimes: ['runc'] } }, {}).kind, 'noop');
});

// ---------------------------------------------------------------- gates

test('gate-cmdline: booted, configured-but-not-booted, not configured', (t) => {
  const f = labFacts({ cmdline: 'quiet intel_iommu=on iommu=pt' });
  t.is(check('gate-cmdline', f, {}, ['intel_iommu=on', 'iommu=pt']).kind, 'noop');
  const pending = { ...labFacts(), cmdlineConfigured: 'quiet intel_iommu=on iommu=pt' };
  const p = check('gate-cmdline', pending, {}, ['intel_iommu=on', 'iommu=pt']);
  t.regex(failMsg(p), /expected intel_iommu=on iommu=pt in \/proc\/cmdline, found intel_iommu=on iommu=pt configured but not booted \(reboot pending\)/);
  const absent = check('gate-cmdline', labFacts(), {}, ['iommu=pt']);
  t.regex(failMsg(absent), /neither booted nor in \/etc\/default\/grub/);
  t.regex(hint(absent), /grub-bios/);
});

test('gate-iommu: active; off after the parameter = firmware, no software fix', (t) => {
  t.regex((check('gate-iommu', labFacts(), {}) as { reason: string }).reason, /IOMMU active: 5 groups/);
  const off = check('gate-iommu', labFacts({ iommu: false, cmdline: 'quiet intel_iommu=on' }), {});
  t.regex(failMsg(off), /expected IOMMU groups in \/sys\/kernel\/iommu_groups, found none although the kernel booted with intel_iommu=on/);
  t.regex(hint(off), /VT-d in the firmware setup\. No software setting can fix this/);
  t.regex(hint(check('gate-iommu', labFacts({ iommu: false }), {})), /run the iommu role and reboot/);
});

test('gate-vfio', (t) => {
  t.is(check('gate-vfio', labFacts({ bound: true }), LAB).kind, 'noop');
  const p = check('gate-vfio', labFacts(), LAB);
  t.regex(failMsg(p), /expected vfio-pci in use for 0000:00:05.0, 0000:00:05.1, found bochs-drm, snd_hda_intel/);
  t.regex(hint(p), /vfio_pci is not loaded/);
  // Identical boot display (address binding): the chosen functions on vfio-pci AND the boot display on its own driver.
  const twin = () => {
    const f = labFacts({ bound: true });
    f.pci.push({ ...f.pci.find((d) => d.address === '0000:00:05.0')!, address: '0000:00:01.0', slot: '00:01', bootVga: true, driver: 'bochs-drm' });
    return f;
  };
  const ok = check('gate-vfio', twin(), LAB);
  t.is(ok.kind, 'noop');
  t.regex((ok as { reason: string }).reason, /\(driver_override by address\); same id kept: 0000:00:01.0 on bochs-drm/);
  const taken = twin();
  taken.pci.find((d) => d.address === '0000:00:01.0')!.driver = 'vfio-pci';
  t.regex(failMsg(check('gate-vfio', taken, LAB)), /expected 0000:00:01.0 \(boot display\) \(same id, not chosen\) on its own driver, found vfio-pci/);
  const lost = twin();
  lost.pci.find((d) => d.address === '0000:00:01.0')!.driver = null;
  t.regex(failMsg(check('gate-vfio', lost, LAB)), /found no driver/);
  const unbound = twin();
  unbound.pci.find((d) => d.address === '0000:00:05.0')!.driver = 'bochs-drm';
  t.regex(hint(check('gate-vfio', unbound, LAB)), /passthru-vfio-override/);
});

test('kernel-aware IOMMU parameters: intel_iommu=on only while a kernel older than 6.8 may boot', (t) => {
  const f = pveNvidiaFacts(); // Intel, 6.8.12-4-pve only
  t.deepEqual(iommuParams(f, {}).params, ['iommu=pt']);
  t.regex(iommuParams(f, {}).reason, /every kernel .* is 6\.8 or newer/);
  const fallback = { ...f, kernelsInstalled: ['6.8.12-4-pve', '6.5.13-6-pve'] };
  t.deepEqual(iommuParams(fallback, {}).params, ['intel_iommu=on', 'iommu=pt']);
  t.regex(iommuParams(fallback, {}).reason, /6\.5\.13-6-pve is older than 6\.8/);
  t.deepEqual(iommuParams(labFacts(), {}).params, ['intel_iommu=on', 'iommu=pt']); // Debian 6.1
  t.deepEqual(iommuParams(f, { intel_iommu_on: 'always' }).params, ['intel_iommu=on', 'iommu=pt']);
  t.deepEqual(iommuParams(fallback, { intel_iommu_on: 'never' }).params, ['iommu=pt']);
  // A user's own list is kept (intel_iommu=on listed by hand stays).
  t.deepEqual(iommuParams(f, { iommu_params_intel: ['intel_iommu=on', 'iommu=pt'] }).params, ['intel_iommu=on', 'iommu=pt']);
  t.deepEqual(iommuParams({ ...f, cpuVendor: 'amd' }, {}).params, ['iommu=pt']);
  // The gate checks the same list on the booted command line.
  t.is(check('gate-iommu-cmdline', { ...f, cmdlineRunning: 'root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt' }, {}).kind, 'noop');
  t.regex(failMsg(check('gate-iommu-cmdline', { ...fallback, cmdlineRunning: 'root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt' }, {})), /expected intel_iommu=on in \/proc\/cmdline/);
});

test('gate-blacklist', (t) => {
  t.is(check('gate-blacklist', labFacts({ bound: true }), LAB).kind, 'noop');
  t.regex(failMsg(check('gate-blacklist', labFacts(), LAB)), /expected bochs not loaded, found it in \/proc\/modules/);
});

test('gate-vendor-reset', (t) => {
  t.regex((check('gate-vendor-reset', pveNvidiaFacts(), NV) as { reason: string }).reason, /not needed/);
  const f = pveNvidiaFacts();
  Object.assign(f.pci.find((d) => d.address === '0000:01:00.0')!, { vendor: '1002', device: '67df', id: '1002:67df' });
  t.regex(failMsg(check('gate-vendor-reset', f, NV)), /expected vendor-reset built by DKMS for every installed kernel, found 6\.8\.12-4-pve \(running\) without it \(builds: 6\.8\.12-2-pve\)/);
  // A kernel upgrade: 6.8.12-5-pve installed, boots next, no build for it yet. The gate names it.
  const up = { ...f, kernelsInstalled: ['6.8.12-5-pve', '6.8.12-4-pve'], kernelNext: '6.8.12-5-pve', dkms: { 'vendor-reset': ['6.8.12-4-pve'] }, modules: [...f.modules, 'vendor_reset'] };
  const upFail = check('gate-vendor-reset', up, NV);
  t.regex(failMsg(upFail), /found 6\.8\.12-5-pve \(boots next\) without it \(builds: 6\.8\.12-4-pve\)/);
  t.regex(hint(upFail), /proxmox-headers-6\.8\.12-5-pve/);
  const plan = planDevices(up, NV).vendorReset;
  t.deepEqual(plan.kernels, ['6.8.12-4-pve', '6.8.12-5-pve']);
  t.deepEqual(plan.aptPackages, ['dkms', 'git', 'build-essential', 'proxmox-headers-6.8.12-4-pve', 'proxmox-headers-6.8.12-5-pve']);
  f.dkms = { 'vendor-reset': ['6.8.12-4-pve'] };
  t.regex(failMsg(check('gate-vendor-reset', f, NV)), /vendor_reset module loaded/);
  f.modules.push('vendor_reset');
  t.regex(failMsg(check('gate-vendor-reset', f, NV)), /expected reset_method device_specific for 0000:01:00.0, found bus/);
  f.pci.find((d) => d.address === '0000:01:00.0')!.resetMethod = ['device_specific', 'bus'];
  t.is(check('gate-vendor-reset', f, NV).kind, 'noop');
});

test('gate-hugepages', (t) => {
  const vars = { hugepages: { size: '2M', count: 512 } };
  const f = pveNvidiaFacts();
  t.regex(failMsg(check('gate-hugepages', f, vars)), /expected HugePages_Total 512 \(2M\), found 0/);
  f.memory.hugepagesTotal = 512;
  t.is(check('gate-hugepages', f, vars).kind, 'noop');
  t.regex(failMsg(check('gate-hugepages', f, { hugepages: { size: '1G', count: 4 } })), /expected the default hugepage size 1G, found 2048 kB/);
  t.is(check('gate-hugepages', f, {}).kind, 'noop');
});

test('gate-container-toolkit through plan() (reads nvidia-smi and nvidia-ctk)', async (t) => {
  const run = async (facts: Facts, smiCode: number) =>
    passthroughCheckModule.plan(
      { check: 'gate-container-toolkit', params: [] },
      {
        host: 'g',
        facts,
        vars: {},
        check: false,
        observe: {
          file: async () => ({ exists: false, content: '' }),
          stat: async () => ({ exists: false, content: '' }),
          cmd: async (c) => (c.startsWith('nvidia-smi') ? { code: smiCode, stdout: '', stderr: smiCode ? 'NVIDIA-SMI has failed' : '' } : { code: 0, stdout: 'NVIDIA Container Toolkit CLI version 1.17.3', stderr: '' }),
        },
      },
    );
  const bad = await run({ ...labFacts(), docker: { installed: true, runtimes: ['runc'] } }, 9);
  t.regex(failMsg(bad), /docker runtimes runc \(no nvidia\); nvidia-smi failed \(NVIDIA-SMI has failed\)/);
  const good = await run({ ...labFacts(), packages: { 'nvidia-container-toolkit': '1.17.3-1' }, docker: { installed: true, runtimes: ['nvidia', 'runc'] } }, 0);
  t.is(good.kind, 'noop');
  t.true(passthroughCheckModule.readOnly);
});

test('gate-assignable through reads() and plan(): one declared probe read, its answer judged; none when it cannot help', async (t) => {
  const facts = labFacts({ bound: true });
  const vars = { ...LAB };
  const args = { check: 'gate-assignable' as const, params: [] };
  const reads = passthroughCheckModule.reads!(args, facts, vars);
  t.is(reads.length, 1);
  const probe = reads[0]!;
  t.is(probe.kind, 'cmd');
  t.is(probe.kind === 'cmd' ? probe.command : '', assignableCommand(facts, vars) ?? 'no command');
  t.regex(probe.kind === 'cmd' ? probe.command : '', / -- 3=0000:00:05\.0,0000:00:05\.1$/);
  const asked: string[] = [];
  const plan = (answer: string) =>
    passthroughCheckModule.plan(args, {
      host: 'h',
      facts,
      vars,
      check: false,
      observe: {
        file: async () => ({ exists: false, content: '' }),
        stat: async () => ({ exists: false, content: '' }),
        cmd: async (c) => {
          asked.push(c);
          return { code: 0, stdout: answer, stderr: '' };
        },
      },
    });
  const ok = await plan(PROBE.pass);
  t.is(ok.kind, 'noop', failMsg(ok));
  t.deepEqual(asked, [probe.kind === 'cmd' ? probe.command : ''], 'plan() read exactly the declared command');
  t.regex(failMsg(await plan(PROBE.busy)), /busy \(EBUSY\)/);
  // Nothing to probe: devices not on vfio-pci, an undo, no variables (speculative, before the facts), IOMMU off.
  t.deepEqual(passthroughCheckModule.reads!(args, labFacts(), vars), []);
  t.deepEqual(passthroughCheckModule.reads!(args, facts, { ...vars, passthrough: 'absent' }), []);
  t.deepEqual(passthroughCheckModule.reads!(args, facts), []);
  t.deepEqual(passthroughCheckModule.reads!(args, labFacts({ bound: true, iommu: false }), vars), []);
});
