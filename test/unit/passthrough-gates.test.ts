/**
 * Each preflight and gate of src/passthrough/gates, called by its own name on the fixture hosts
 * (test/fixtures/facts/hosts.ts): one test per check, its pass and its main failure.
 */
import test from 'ava';
import type { Facts } from '../../src/facts/types.ts';
import { CHECKS } from '../../src/modules/passthrough_check.ts';
import {
  CHECK_NAMES,
  CHECKS_BY_NAME,
  checkFor,
  gateAssignable,
  gateBlacklist,
  gateCmdline,
  gateContainerToolkit,
  gateSriov,
  gateHugepages,
  gateIommu,
  gateIommuCmdline,
  gateIsolation,
  gateUndoneCmdline,
  gateUndoneDrivers,
  gateVendorReset,
  gateVfio,
  preflightAcs,
  preflightBootloader,
  preflightContainerToolkit,
  preflightCpu,
  preflightDevices,
  preflightHugepages,
  preflightIsolation,
  preflightVendorReset,
  preflightSriov,
  type CheckInput,
  type CheckResult,
} from '../../src/passthrough/gates/index.ts';
import { blacklistConfText, resetMethodUdevRules, vfioConfText } from '../../src/passthrough/index.ts';
import { labFacts, labSections, pveNvidiaBoundFacts, pveNvidiaFacts } from '../fixtures/facts/hosts.ts';
import { PROBE } from '../fixtures/vfio-probe.ts';
import { parseGuestConfig } from '../../src/facts/guests.ts';
import { gateNvidiaDriver, parseSmiQuery, preflightNvidiaDriver } from '../../src/passthrough/gates/index.ts';
import { headerPackages } from '../../src/passthrough/gates/nvidia-driver.ts';
import { editDeb822, editOneLine, parseOsRelease } from '../../src/passthrough/apt-sources.ts';
import type { PciDevice } from '../../src/facts/types.ts';

const LAB = { passthrough_slots: ['00:05'] };
const NV = { passthrough_slots: ['01:00'] };
const input = (facts: Facts, vars: Record<string, unknown> = {}, more: Partial<CheckInput> = {}): CheckInput => ({ facts, vars, params: [], ...more });
const msg = (r: CheckResult) => (r.ok ? `passed: ${r.reason}` : r.msg);
const reason = (r: CheckResult) => (r.ok ? r.reason : `failed: ${r.msg}`);
const hintOf = (r: CheckResult) => (r.ok ? '' : r.hint);

test('registry: every check is a named function, preflights first; the CHECKS of passthrough_check are its keys', (t) => {
  t.deepEqual([...CHECKS], CHECK_NAMES);
  for (const [name, fn] of Object.entries(CHECKS_BY_NAME)) {
    t.regex(name, /^(preflight|gate)-[a-z-]+$/);
    const camel = name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    t.is(fn.name, camel, `${name} is ${camel}`);
  }
  const firstGate = CHECK_NAMES.findIndex((n) => n.startsWith('gate-'));
  t.true(CHECK_NAMES.slice(firstGate).every((n) => n.startsWith('gate-')));
});

test('preflightCpu: vmx present passes with the IOMMU parameters; a firmware-off IOMMU refuses', (t) => {
  const ok = preflightCpu(input(labFacts()));
  t.true(ok.ok);
  t.deepEqual((ok as { data: { params: string[] } }).data.params, ['intel_iommu=on', 'iommu=pt']);
  const off = { ...pveNvidiaFacts(), iommu: { active: false, present: false, evidence: [], irqRemapping: false } };
  t.regex(msg(preflightCpu(input(off))), /expected an IOMMU unit \(\/sys\/class\/iommu\), found none on kernel 6\.8\.12-4-pve that turns the IOMMU on by default/);
});

test('preflightBootloader: detected from proxmox-boot-tool; unknown refuses unless set', (t) => {
  t.regex(reason(preflightBootloader(input(pveNvidiaFacts()))), /boots systemd-boot/);
  const unknown = { ...labFacts(), bootloader: 'unknown' as const };
  t.false(preflightBootloader(input(unknown)).ok);
  t.regex(reason(preflightBootloader(input(unknown, { bootloader: 'systemd-boot' }))), /set by the host variable/);
});

test('preflightDevices: the whole configuration as data; a forced ids= capture refuses', (t) => {
  const r = preflightDevices(input(pveNvidiaFacts(), NV));
  t.true(r.ok);
  const data = (r as { data: { vfioConf: string; blacklistConf: string } }).data;
  t.regex(data.vfioConf, /^options vfio-pci ids=10de:1f91,10de:10fa disable_vga=1$/m);
  t.regex(data.blacklistConf, /^blacklist nouveau$/m);
  t.regex(msg(preflightDevices(input(pveNvidiaFacts({ twin: true }), { ...NV, vfio_bind: 'ids' }))), /would also bind 0000:02:00.0 \(not chosen\)/);
});

test('preflightIsolation: isolated group passes; a foreign member refuses when ACS override is off', (t) => {
  t.regex(reason(preflightIsolation(input(pveNvidiaFacts(), NV))), /isolated: group 1 = /);
  const shared = preflightIsolation(input(pveNvidiaFacts({ sataInGroup: true }), { ...NV, acs_override: 'off' }));
  t.regex(msg(shared), /found group 1 also holding 0000:00:17\.0/);
  t.regex(msg(preflightIsolation(input(labFacts(), {}))), /found neither/);
});

test('preflightAcs: on with a -pve kernel passes, on with a Debian kernel refuses', (t) => {
  t.true(preflightAcs(input(pveNvidiaFacts(), { ...NV, acs_override: 'on' })).ok);
  t.regex(msg(preflightAcs(input(labFacts(), { ...LAB, acs_override: 'on' }))), /found 6\.1\.0-28-amd64/);
});

test('preflightVendorReset: never fails; an AMD Polaris card is wanted', (t) => {
  t.regex(reason(preflightVendorReset(input(pveNvidiaFacts(), NV))), /not wanted/);
  const f = pveNvidiaFacts();
  Object.assign(f.pci.find((d) => d.address === '0000:01:00.0')!, { vendor: '1002', device: '67df', id: '1002:67df' });
  const r = preflightVendorReset(input(f, NV));
  t.regex(reason(r), /wanted: 0000:01:00\.0 \(polaris10\) need vendor-reset/);
  t.regex((r as { data: { udevRules: string } }).data.udevRules, /ATTR\{device\}=="0x67df"/);
});

test('preflightHugepages: 2M fits; more than the share of MemTotal refuses', (t) => {
  t.regex(reason(preflightHugepages(input(pveNvidiaFacts(), { hugepages: { size: '2M', count: 512 } }))), /512 x 2M = 1\.0 GiB fits/);
  t.regex(msg(preflightHugepages(input(pveNvidiaFacts(), { hugepages: { size: '1G', count: 30 } }))), /expected at most/);
});

test('preflightContainerToolkit: docker required', (t) => {
  t.regex(msg(preflightContainerToolkit(input(labFacts()))), /expected docker on this host/);
  t.true(preflightContainerToolkit(input({ ...labFacts(), docker: { installed: true, runtimes: [] } })).ok);
});

test('gateCmdline: booted passes; configured but not booted is a pending reboot', (t) => {
  t.true(gateCmdline(input(labFacts({ cmdline: 'quiet iommu=pt' }), {}, { params: ['iommu=pt'] })).ok);
  const pending = gateCmdline(input({ ...labFacts(), cmdlineConfigured: 'quiet iommu=pt' }, {}, { params: ['iommu=pt'] }));
  t.false(pending.ok);
  t.true(!pending.ok && pending.pending === true);
  const absent = gateCmdline(input(labFacts(), {}, { params: ['iommu=pt'] }));
  t.true(!absent.ok && absent.pending === undefined);
});

test('gateIommuCmdline: checks the kernel-aware IOMMU parameters', (t) => {
  t.true(gateIommuCmdline(input(labFacts({ cmdline: 'quiet intel_iommu=on iommu=pt' }))).ok);
  t.regex(msg(gateIommuCmdline(input(labFacts()))), /expected intel_iommu=on iommu=pt in \/proc\/cmdline/);
});

test('gateIommu: groups prove it; none after the parameter points at the firmware', (t) => {
  t.regex(reason(gateIommu(input(labFacts()))), /IOMMU active: 5 groups/);
  t.regex(hintOf(gateIommu(input(labFacts({ iommu: false, cmdline: 'quiet intel_iommu=on' })))), /No software setting can fix this/);
});

test('gateIsolation: isolated passes; the IOMMU off fails; a shared group names the member', (t) => {
  t.true(gateIsolation(input(pveNvidiaFacts(), NV)).ok);
  t.regex(msg(gateIsolation(input(labFacts({ iommu: false }), LAB))), /found the IOMMU off/);
  const shared = gateIsolation(input(pveNvidiaFacts({ sataInGroup: true }), NV));
  t.regex(msg(shared), /group 1 also holding 0000:00:17\.0/);
  t.regex(hintOf(shared), /run apply again \(acs-override role\)/);
});

test('gateVfio: bound passes; host drivers still in use fail', (t) => {
  t.regex(reason(gateVfio(input(labFacts({ bound: true }), LAB))), /vfio-pci drives 0000:00:05\.0, 0000:00:05\.1 \(ids=1234:1111,8086:293e\)/);
  t.regex(msg(gateVfio(input(labFacts(), LAB))), /found bochs-drm, snd_hda_intel/);
});

test('gateAssignable: the probe passing passes; each failure says what and why', (t) => {
  const bound = labFacts({ bound: true });
  const probe = (stdout: string, code = 0, stderr = '') => ({ vfioProbe: { code, stdout, stderr } });
  const run = (out: string, more: Partial<CheckInput> = {}, facts = bound) => gateAssignable(input(facts, LAB, { ...probe(out), ...more }));
  const ok = run(PROBE.pass);
  t.regex(reason(ok), /^assignable \(VFIO API 0\): group 3 viable, set in a type1 container, device fds opened for 0000:00:05\.0, 0000:00:05\.1$/);
  // /dev/vfio/3 missing: vfio-pci does not hold the group.
  const enoent = run(PROBE.noGroupFile);
  t.regex(msg(enoent), /found no \/dev\/vfio\/3 for IOMMU group 3 \(ENOENT\)/);
  t.regex(hintOf(enoent), /vfio-pci does not hold group 3/);
  // Busy, and no running VM of this node uses it: fail, saying that a VM holding it is expected.
  const busy = run(PROBE.busy);
  t.regex(msg(busy), /\/dev\/vfio\/3 busy \(EBUSY\): another process holds IOMMU group 3/);
  t.regex(hintOf(busy), /expected while a VM uses the device: a running VM holds its group \(qm list; fuser -v \/dev\/vfio\/3\)/);
  // Busy on a Proxmox node whose running VM 103 uses the card: that VM proves it.
  const nv = pveNvidiaBoundFacts();
  nv.vms = [parseGuestConfig('hostpci0: 0000:01:00,pcie=1\n', 'qm', '/etc/pve/qemu-server/103.conf')];
  const held = gateAssignable(input(nv, NV, probe('api ok version 0 type1 1\ngroup 1 fail open EBUSY Device or resource busy\ndone\n')));
  t.regex(reason(held), /group 1 held by running VM 103 \(\/dev\/vfio\/1 busy, as expected while a VM uses it\)/);
  nv.guests = nv.guests.map((g) => ({ ...g, status: 'stopped' }));
  t.false(gateAssignable(input(nv, NV, probe('api ok version 0 type1 1\ngroup 1 fail open EBUSY Device or resource busy\ndone\n'))).ok, 'the VM stopped: busy is a failure');
  // The kernel says not viable: the members and their drivers are named.
  const nv2 = run(PROBE.notViable);
  t.regex(msg(nv2), /IOMMU group 3 not viable by the kernel \(flags 0x0\): 0000:00:05\.0 \(vfio-pci\), 0000:00:05\.1 \(vfio-pci\)/);
  // Type1 refused (no interrupt remapping).
  t.regex(hintOf(run(PROBE.setIommuEperm)), /allow_unsafe_interrupts/);
  t.regex(msg(run(PROBE.setContainerEinval)), /group 3: VFIO_GROUP_SET_CONTAINER failed: EINVAL Invalid argument/);
  // One function refused.
  const dev = run(PROBE.deviceBusy);
  t.regex(msg(dev), /0000:00:05\.1: VFIO_GROUP_GET_DEVICE_FD failed: EBUSY Device or resource busy/);
  t.notRegex(msg(dev), /0000:00:05\.0:/);
  // The container: the vfio modules are not loaded.
  const api = run(PROBE.noContainer);
  t.regex(msg(api), /found open \/dev\/vfio\/vfio failed: ENOENT No such file or directory/);
  t.regex(hintOf(api), /vfio modules are not loaded/);
  // No perl, or the script cut short.
  const noPerl = run('', {}, bound);
  t.regex(msg(noPerl), /expected the VFIO probe \(perl\) to finish, found exit 0: no output/);
  const p127 = gateAssignable(input(bound, LAB, probe('', 127, 'sh: 1: perl: not found\n')));
  t.regex(msg(p127), /found exit 127: sh: 1: perl: not found/);
  t.regex(hintOf(p127), /perl-base is Essential/);
  // A device missing from the answer is not a pass.
  t.false(run(PROBE.deviceMissing).ok);
  t.false(run(PROBE.groupMissing).ok, 'no answer for the group');
});

test('gateAssignable: what the facts already show fails without the probe', (t) => {
  // Not on vfio-pci (no reboot yet, or the binding did not take).
  const un = gateAssignable(input(labFacts(), LAB));
  t.regex(msg(un), /expected 0000:00:05\.0, 0000:00:05\.1 on vfio-pci before a VM can take them, found bochs-drm, snd_hda_intel/);
  // One function chosen, the other member of its group on a host driver: not viable.
  const half = labFacts();
  half.pci = half.pci.map((d) => (d.address === '0000:00:05.0' ? { ...d, driver: 'vfio-pci' } : d));
  const r = gateAssignable(input(half, { passthrough_slots: ['00:05.0'] }));
  t.regex(msg(r), /expected IOMMU group 3 viable \(every device in it on vfio-pci, pci-stub, a PCIe port or no driver\), found 0000:00:05\.1 bound to snd_hda_intel/);
  t.regex(hintOf(r), /a VM takes a whole IOMMU group/);
  t.regex(msg(gateAssignable(input(labFacts({ iommu: false, bound: true }), LAB))), /found the IOMMU off/);
  // Bound and viable, but the probe's output is missing: never a pass.
  t.false(gateAssignable(input(labFacts({ bound: true }), LAB)).ok);
  // Undoing: a configure gate.
  t.regex(reason(checkFor('gate-assignable')(input(labFacts(), { ...LAB, passthrough: 'absent' }))), /taken back, not proven/);
});

test('gateUndoneCmdline: passthru\'s parameters off the booted line passes, the user\'s kept ones too; one only booted is a pending reboot', (t) => {
  t.true(gateUndoneCmdline(input(labFacts({ cmdline: 'quiet' }))).ok);
  // The user's own iommu=pt, still configured: not passthru's to take away.
  t.regex(reason(gateUndoneCmdline(input({ ...labFacts({ cmdline: 'quiet iommu=pt' }), cmdlineConfigured: 'quiet iommu=pt' }))), /kept, configured by the user: iommu=pt/);
  const left = gateUndoneCmdline(input({ ...labFacts({ cmdline: 'quiet intel_iommu=on iommu=pt pcie_acs_override=downstream,multifunction' }), cmdlineConfigured: 'quiet iommu=pt' }));
  t.regex(msg(left), /expected intel_iommu=on pcie_acs_override=downstream,multifunction off \/proc\/cmdline/);
  t.true(!left.ok && left.pending === true);
});

test('gateUndoneDrivers: chosen functions back on their own drivers pass; still on vfio-pci fails', (t) => {
  t.regex(reason(gateUndoneDrivers(input(labFacts(), LAB))), /off vfio-pci: 0000:00:05\.0 on bochs-drm, 0000:00:05\.1 on snd_hda_intel/);
  const still = gateUndoneDrivers(input(labFacts({ bound: true }), LAB));
  t.regex(msg(still), /expected 0000:00:05\.0, 0000:00:05\.1 back on their own driver, found vfio-pci/);
  t.regex(hintOf(still), /reboot/);
});

test('gateBlacklist: a loaded blacklisted module fails', (t) => {
  t.regex(reason(gateBlacklist(input(labFacts({ bound: true }), LAB))), /not loaded: bochs/);
  t.regex(msg(gateBlacklist(input(pveNvidiaFacts(), NV))), /expected nvidia not loaded, found it in \/proc\/modules/);
});

test('gateVendorReset: not needed passes; a missing DKMS build for the running kernel fails', (t) => {
  t.regex(reason(gateVendorReset(input(pveNvidiaFacts(), NV))), /not needed/);
  t.regex(msg(gateVendorReset(input(pveNvidiaFacts(), { ...NV, vendor_reset: 'on' }))), /found 6\.8\.12-4-pve \(running\) without it/);
});

test('gateHugepages: HugePages_Total must match the request', (t) => {
  const f = pveNvidiaFacts();
  t.regex(msg(gateHugepages(input(f, { hugepages: { size: '2M', count: 16 } }))), /expected HugePages_Total 16 \(2M\), found 0/);
  f.memory.hugepagesTotal = 16;
  t.true(gateHugepages(input(f, { hugepages: { size: '2M', count: 16 } })).ok);
});

test('gateContainerToolkit: toolkit, nvidia runtime and nvidia-smi', (t) => {
  const good = { ...labFacts(), packages: { 'nvidia-container-toolkit': '1.17.3-1' }, docker: { installed: true, runtimes: ['nvidia', 'runc'] } };
  t.regex(reason(gateContainerToolkit(input(good, {}, { nvidiaSmi: { code: 0, stdout: 'GPU 0', stderr: '' } }))), /nvidia-smi works/);
  const r = gateContainerToolkit(input(good, {}, { nvidiaSmi: { code: 9, stdout: '', stderr: 'NVIDIA-SMI has failed' } }));
  t.regex(msg(r), /nvidia-smi failed \(NVIDIA-SMI has failed\)/);
  t.regex(msg(gateContainerToolkit(input(labFacts()))), /nvidia-container-toolkit not installed; docker runtimes none \(no nvidia\)/);
});

test('config text: vfio.conf by ids and by address, blacklist, reset_method udev rules', (t) => {
  t.is(vfioConfText({ bind: 'ids', ids: [], disableVga: true, softdeps: ['bochs'] }), '');
  t.regex(vfioConfText({ bind: 'ids', ids: ['1234:1111'], disableVga: false, softdeps: ['bochs'] }), /^options vfio-pci ids=1234:1111\nsoftdep bochs pre: vfio-pci\n$/m);
  const byAddress = vfioConfText({ bind: 'address', ids: ['1234:1111'], disableVga: true, softdeps: [] });
  t.regex(byAddress, /bound by address \(passthru-vfio-override in the initramfs\)/);
  t.notRegex(byAddress, /ids=/);
  t.is(blacklistConfText([]), '');
  t.regex(blacklistConfText(['nouveau']), /^blacklist nouveau$/m);
  t.is(resetMethodUdevRules([]), '');
  t.is(resetMethodUdevRules(['1002:67df', '1002:67df']).split('\n').filter((l) => l.startsWith('ACTION')).length, 1);
});

test('checkFor: every gate runs in either mode and proves only what that mode did', (t) => {
  const bound = labFacts({ bound: true, cmdline: 'quiet intel_iommu=on iommu=pt' });
  const unbound = labFacts();
  // Configuring: the undo gates stand aside, the configure gates prove.
  t.regex(reason(checkFor('gate-undone-drivers')(input(bound, LAB))), /not absent: nothing of it was undone/);
  t.true(checkFor('gate-vfio')(input(bound, LAB)).ok);
  t.false(checkFor('gate-vfio')(input(unbound, LAB)).ok, 'a configure gate still fails when the binding is missing');
  // Undoing: the configure gates stand aside, the undo gates prove.
  const undo = { ...LAB, passthrough: 'absent' };
  t.regex(reason(checkFor('gate-vfio')(input(unbound, undo))), /taken back, not proven/);
  t.false(checkFor('gate-undone-drivers')(input(bound, undo)).ok, 'an undo gate fails while a chosen function is still on vfio-pci');
  t.true(checkFor('gate-undone-drivers')(input(unbound, undo)).ok);
  // Preflights are not gates: they run as they are (their tasks carry the mode's when:).
  t.is(msg(checkFor('preflight-cpu')(input(unbound, undo))), msg(CHECKS_BY_NAME['preflight-cpu'](input(unbound, undo))));
});

/**
 * The lab guest plus an SR-IOV capable iGPU (Alder Lake-N, 8086:46d3, sriov_totalvfs 7) at
 * 00:06.0 with `vfs` VFs as the probe reads them: sysfs lines, IOMMU groups, the PF's virtfn links.
 */
function sriovFacts(vfs: number, opts: { numvfs?: number; groups?: boolean; driver?: string } = {}): Facts {
  const base = labSections();
  const vf = Array.from({ length: vfs }, (_, k) => `0000:00:06.${k + 1}`);
  const drv = opts.driver ?? 'i915';
  return labFacts({}, {
    pci: [base.pci, `0000:00:06.0\t0x8086\t0x46d3\t0x030000\t0\tflr\t${drv}\t${drv.replace(/-/g, '_')}`, ...vf.map((a) => `${a}\t0x8086\t0x46d3\t0x030000\t0\tflr\ti915\ti915`)].join('\n'),
    'iommu-groups': [base['iommu-groups'], '/sys/kernel/iommu_groups/5/devices/0000:00:06.0', ...(opts.groups === false ? [] : vf.map((a, k) => `/sys/kernel/iommu_groups/${10 + k}/devices/${a}`))].join('\n'),
    'pci-extra': [
      '/sys/bus/pci/devices/0000:00:06.0/sriov_totalvfs:7',
      `/sys/bus/pci/devices/0000:00:06.0/sriov_numvfs:${opts.numvfs ?? vfs}`,
      ...vf.map((a, k) => `/sys/bus/pci/devices/0000:00:06.0/virtfn${k}:../${a}`),
    ].join('\n'),
  });
}
const SRIOV = (numvfs: number, slot = '00:06.0') => ({ sriov_devices: [{ slot, numvfs }] });
const UNIT_4 = { code: 0, stdout: "ExecStart=/bin/sh -c 'grep -qx 4 /sys/bus/pci/devices/0000:00:06.0/sriov_numvfs || { echo 0 > /sys/bus/pci/devices/0000:00:06.0/sriov_numvfs && echo 4 > /sys/bus/pci/devices/0000:00:06.0/sriov_numvfs; }'\n", stderr: '' };

test('preflightSriov: a capable device passes with the plan; a missing, incapable or too small device refuses', (t) => {
  const none = preflightSriov(input(sriovFacts(0), SRIOV(4)));
  t.regex(reason(none), /0000:00:06\.0: 4 of 7 VFs \(now 0, created now\)/);
  t.like((none as { data: { applyNow: boolean; reboot: boolean } }).data, { applyNow: true, reboot: false });
  const live = preflightSriov(input(sriovFacts(2), SRIOV(4)));
  t.like((live as { data: { applyNow: boolean; reboot: boolean; rebootReason: string } }).data, { applyNow: false, reboot: true });
  t.regex((live as { data: { rebootReason: string } }).data.rebootReason, /0000:00:06\.0 2 → 4 VFs/);
  t.like((preflightSriov(input(sriovFacts(4), SRIOV(4))) as { data: { applyNow: boolean; reboot: boolean } }).data, { applyNow: false, reboot: false });
  t.regex(msg(preflightSriov(input(sriovFacts(0), SRIOV(8)))), /expected at most 7 VFs on 0000:00:06\.0 \(its sriov_totalvfs\), found a request for 8/);
  t.regex(hintOf(preflightSriov(input(sriovFacts(0), SRIOV(8)))), /numvfs to 7 or less/);
  t.regex(msg(preflightSriov(input(sriovFacts(0), SRIOV(2, '00:07.0')))), /expected a PCI device at 0000:00:07\.0, found none/);
  t.regex(hintOf(preflightSriov(input(sriovFacts(0), SRIOV(2, '00:07.0')))), /0000:00:06\.0 \(8086:46d3, up to 7 VFs\)/);
  t.regex(msg(preflightSriov(input(sriovFacts(0), SRIOV(2, '00:05.0')))), /expected 0000:00:05\.0 \(1234:1111.*\) to be SR-IOV capable, found no sriov_totalvfs/);
  t.regex(msg(preflightSriov(input(sriovFacts(0, { driver: 'vfio-pci' }), SRIOV(2)))), /expected a host driver bound to 0000:00:06\.0 .* found vfio-pci/);
  t.true(preflightSriov(input(sriovFacts(0), {})).ok, 'no device asked: nothing to refuse');
});

test('gateSriov: numvfs and the VFs (virtfn links, PCI devices, IOMMU groups); a count the unit asks for but not booted is pending', (t) => {
  const ok = gateSriov(input(sriovFacts(4), SRIOV(4)));
  t.regex(reason(ok), /0000:00:06\.0: 4 VFs \(0000:00:06\.1 0000:00:06\.2 0000:00:06\.3 0000:00:06\.4, groups 10 11 12 13\)/);
  const notBooted = gateSriov(input(sriovFacts(0), SRIOV(4), { sriovUnit: UNIT_4 }));
  t.false(notBooted.ok);
  t.regex(msg(notBooted), /expected 4 VFs on 0000:00:06\.0, found 0000:00:06\.0 with sriov_numvfs 0/);
  t.true((notBooted as { pending?: boolean }).pending);
  // the unit ran in this boot and failed: not a reboot pending (another reboot would not help)
  const ran = gateSriov(input(sriovFacts(0), SRIOV(4), { sriovUnit: { ...UNIT_4, stdout: `${UNIT_4.stdout}\n@@failed\nfailed\n` } }));
  t.falsy((ran as { pending?: boolean }).pending);
  t.regex(hintOf(ran), /passthru-sriov\.service failed in this boot: .*journalctl -b -u passthru-sriov\.service/);
  t.true((gateSriov(input(sriovFacts(0), SRIOV(4), { sriovUnit: { ...UNIT_4, stdout: `${UNIT_4.stdout}\n@@failed\nactive\n` } })) as { pending?: boolean }).pending);
  // a unit that writes 0 and then another count does not count as asking for 0
  t.falsy((gateSriov(input(sriovFacts(2, { numvfs: 2 }), SRIOV(0), { sriovUnit: UNIT_4 })) as { pending?: boolean }).pending);
  const noUnit = gateSriov(input(sriovFacts(0), SRIOV(4), { sriovUnit: { code: 1, stdout: '', stderr: 'No such file' } }));
  t.falsy((noUnit as { pending?: boolean }).pending);
  t.regex(hintOf(noUnit), /does not write 4 for 0000:00:06\.0: run apply again/);
  const linksMissing = gateSriov(input(sriovFacts(2, { numvfs: 4 }), SRIOV(4)));
  t.regex(msg(linksMissing), /with 2 virtfn links/);
  t.regex(msg(gateSriov(input(sriovFacts(4, { groups: false }), SRIOV(4)))), /0000:00:06\.1, 0000:00:06\.2, 0000:00:06\.3, 0000:00:06\.4 in no IOMMU group/);
  t.true(checkFor('gate-sriov')(input(sriovFacts(0), { ...SRIOV(4), passthrough: 'absent' })).ok, 'configure gate: passes while undoing');
});

// ---------------------------------------------------------------- nvidia-driver (in a guest)

const DEBIAN12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';
const UBUNTU = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n';
const dev = (address: string, id: string, cls: string, driver: string | null): PciDevice => ({
  address, slot: address.slice(5, 10), vendor: id.slice(0, 4), device: id.slice(5), id, class: cls, driver, bootVga: false, resetMethod: [], iommuGroup: null, name: '',
});
/** A Debian 12 VM guest (from the lab guest's facts) that sees an RTX 4090 at 01:00 on `driver`. */
function guestFacts(driver: string | null, patch: Partial<Facts> = {}): Facts {
  const f = labFacts();
  return { ...f, pveVersion: null, pveMajor: null, kernelRelease: '6.1.0-27-amd64', kernelNext: '6.1.0-27-amd64', pci: [dev('0000:00:01.0', '1234:1111', '0300', 'bochs-drm'), dev('0000:01:00.0', '10de:2684', '0300', driver), dev('0000:01:00.1', '10de:22ba', '0403', 'snd_hda_intel')], ...patch };
}
const DEB822 = 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main contrib # keep this\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n';
const ONELINE = '# Debian\ndeb http://deb.debian.org/debian bookworm main\ndeb-src http://deb.debian.org/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] https://download.docker.com/linux/debian bookworm stable\n# deb http://deb.debian.org/debian bookworm-backports main\ndeb http://security.debian.org/debian-security bookworm-security main non-free\n';
const SRC = (list: string | null, deb822: string | null) => ({ '/etc/apt/sources.list': list, '/etc/apt/sources.list.d/debian.sources': deb822 });

test('apt sources: the driver\'s components join the Debian entries in their own format; everything else is kept', (t) => {
  const want = ['contrib', 'non-free', 'non-free-firmware'];
  const a = editDeb822(DEB822, 'bookworm', want);
  t.is(a.entries, 2);
  t.is(a.content, DEB822.replace('Components: main\n', 'Components: main contrib non-free non-free-firmware\n').replace('Components: main contrib # keep this', 'Components: main contrib non-free non-free-firmware # keep this'));
  t.false(editDeb822(a.content, 'bookworm', want).changed, 'a second edit changes nothing');
  t.is(editDeb822(DEB822.replace(/Types: deb\nURIs: http:\/\/deb.debian.org\/debian\n/, 'Types: deb\nEnabled: no\nURIs: http://deb.debian.org/debian\n'), 'bookworm', want).entries, 1, 'a disabled stanza is left alone');
  const b = editOneLine(ONELINE, 'bookworm', want);
  t.is(b.entries, 3);
  t.is(
    b.content,
    '# Debian\ndeb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware\ndeb-src http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware\ndeb [arch=amd64 signed-by=/k.gpg] https://download.docker.com/linux/debian bookworm stable\n# deb http://deb.debian.org/debian bookworm-backports main\ndeb http://security.debian.org/debian-security bookworm-security main non-free contrib non-free-firmware\n',
  );
  t.false(editOneLine(b.content, 'bookworm', want).changed);
  t.is(editOneLine(ONELINE, 'trixie', want).entries, 0, 'entries of another release are not this release\'s');
  t.deepEqual(parseOsRelease(UBUNTU), { id: 'ubuntu', versionId: '24.04', codename: 'noble', prettyName: 'Ubuntu 24.04.1 LTS' });
});

test('preflightNvidiaDriver: a Debian 12 guest with the GPU passes with the edit and the packages; each refusal says why', (t) => {
  const ok = preflightNvidiaDriver(input(guestFacts('nouveau'), {}, { osRelease: DEBIAN12, aptSources: SRC(null, DEB822) }));
  t.true(ok.ok, msg(ok));
  const d = (ok as { data: any }).data;
  t.true(d.debianSources.changed);
  t.regex(d.debianSources.content, /^Components: main contrib non-free non-free-firmware$/m);
  t.is(d.debianSources.path, '/etc/apt/sources.list.d/debian.sources');
  t.false(d.sourcesList.changed);
  t.deepEqual(d.packages, ['nvidia-driver', 'nvidia-kernel-dkms', 'nvidia-smi', 'libcuda1', 'firmware-misc-nonfree']);
  t.deepEqual(d.headers, ['linux-headers-6.1.0-27-amd64', 'linux-headers-amd64']);
  t.regex(reason(ok), /Debian 12 \(bookworm\) guest with 0000:01:00\.0 \(nouveau\); components to add/);
  // pinned
  const pinned = preflightNvidiaDriver(input(guestFacts('nouveau'), { nvidia_driver_version: '535.216.01-1~deb12u1' }, { osRelease: DEBIAN12, aptSources: SRC(ONELINE, null) }));
  t.deepEqual((pinned as { data: any }).data.packages.slice(0, 2), ['nvidia-driver=535.216.01-1~deb12u1', 'nvidia-kernel-dkms=535.216.01-1~deb12u1']);
  // the pin holds every package of the source package (their exact-version dependencies too)
  t.deepEqual((pinned as { data: any }).data.pin, {
    path: '/etc/apt/preferences.d/passthru-nvidia-driver',
    content: '# passthru (role nvidia-driver): the NVIDIA driver stays at nvidia_driver_version\nPackage: src:nvidia-graphics-drivers\nPin: version 535.216.01-1~deb12u1\nPin-Priority: 1001\n',
  });
  t.is(d.pin.content, '', 'no version: no pin');
  // trixie's kernel releases name the flavour after +debNN
  t.deepEqual(headerPackages({ ...guestFacts('nouveau'), kernelNext: '6.12.12+deb13-amd64' }), ['linux-headers-6.12.12+deb13-amd64', 'linux-headers-amd64']);
  // refusals
  const ubuntu = preflightNvidiaDriver(input(guestFacts('nouveau'), {}, { osRelease: UBUNTU, aptSources: SRC(ONELINE, null) }));
  t.regex(msg(ubuntu), /expected Debian 11 \(bullseye\), 12 \(bookworm\) or 13 \(trixie\) in \/etc\/os-release, found Ubuntu 24\.04\.1 LTS/);
  t.regex(hintOf(ubuntu), /ubuntu-drivers install.*Nothing was changed/);
  t.regex(msg(preflightNvidiaDriver(input(guestFacts('nouveau'), {}, { osRelease: null, aptSources: SRC(ONELINE, null) }))), /expected \/etc\/os-release/);
  const noGpu = guestFacts(null, { pci: [dev('0000:00:01.0', '1234:1111', '0300', 'bochs-drm')] });
  t.regex(msg(preflightNvidiaDriver(input(noGpu, {}, { osRelease: DEBIAN12, aptSources: SRC(ONELINE, null) }))), /expected an NVIDIA GPU \(vendor 10de, class 03xx\) visible in this guest, found only 0000:00:01\.0 1234:1111 \(bochs-drm\) in lspci/);
  t.regex(msg(preflightNvidiaDriver(input(pveNvidiaFacts(), {}, { osRelease: DEBIAN12, aptSources: SRC(ONELINE, null) }))), /found a Proxmox VE node/);
  t.regex(msg(preflightNvidiaDriver(input(guestFacts('nouveau'), {}, { osRelease: DEBIAN12, aptSources: SRC('deb http://mirror/x trixie main\n', null) }))), /expected the Debian archive for bookworm \(component main\).*found no such entry/);
  t.regex(msg(preflightNvidiaDriver(input(guestFacts('nouveau'), {}, { osRelease: DEBIAN12, aptSources: SRC(null, null) }))), /found neither file/);
});

test('gateNvidiaDriver: nvidia-smi lists the GPU by bus id; not found, no driver, nouveau not yet rebooted, another version', (t) => {
  const smi = (stdout: string, code = 0, stderr = '') => ({ nvidiaSmiQuery: { code, stdout, stderr } });
  const row = '00000000:01:00.0, NVIDIA GeForce RTX 4090, 535.216.01\n';
  t.deepEqual(parseSmiQuery(row), [{ address: '0000:01:00.0', name: 'NVIDIA GeForce RTX 4090', driver: '535.216.01' }]);
  const installed = { packages: { 'nvidia-driver': '535.216.01-1~deb12u1' } };
  const ok = gateNvidiaDriver(input(guestFacts('nvidia', installed), {}, smi(row)));
  t.regex(reason(ok), /nvidia-smi lists 0000:01:00\.0 NVIDIA GeForce RTX 4090 \(driver 535\.216\.01\)/);
  t.true(gateNvidiaDriver(input(guestFacts('nvidia', installed), { nvidia_driver_version: '535.216.01-1~deb12u1' }, smi(row))).ok);
  t.regex(msg(gateNvidiaDriver(input(guestFacts('nvidia', installed), { nvidia_driver_version: '550.54.14-1' }, smi(row)))), /expected driver 550\.54\.14 \(nvidia_driver_version\), found 535\.216\.01 on 0000:01:00\.0/);
  // command not found
  const nf = gateNvidiaDriver(input(guestFacts('nouveau'), {}, smi('', 127, 'sh: 1: nvidia-smi: not found')));
  t.regex(msg(nf), /expected nvidia-smi to list the GPU, found no nvidia-smi command/);
  t.regex(hintOf(nf), /apt install nvidia-driver/);
  // the driver does not run: no package → not installed; package but no DKMS build for this kernel → headers
  const cannot = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.";
  const noMod = gateNvidiaDriver(input(guestFacts(null, installed), {}, smi(cannot, 9)));
  t.regex(msg(noMod), /found it failing \(exit 9\): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/);
  t.regex(hintOf(noMod), /DKMS has no nvidia module for the running kernel 6\.1\.0-27-amd64: install linux-headers-6\.1\.0-27-amd64/);
  t.false((noMod as { pending?: boolean }).pending === true);
  const built = gateNvidiaDriver(input(guestFacts(null, { ...installed, dkms: { 'nvidia-current': ['6.1.0-27-amd64'] } }), {}, smi(cannot, 9)));
  t.regex(hintOf(built), /Secure Boot/);
  // installed, nouveau still has the GPU: not booted yet (pending, so the engine reboots and verifies)
  const pend = gateNvidiaDriver(input(guestFacts('nouveau', installed), {}, smi(cannot, 9)));
  t.regex(msg(pend), /found nouveau still driving it \(nvidia-driver 535\.216\.01-1~deb12u1 installed, not booted yet\)/);
  t.true((pend as { pending?: boolean }).pending);
  // nvidia-smi works but does not list the guest's GPU
  t.regex(msg(gateNvidiaDriver(input(guestFacts('nvidia', installed), {}, smi('00000000:02:00.0, NVIDIA A100, 535.216.01\n')))), /expected nvidia-smi to list 0000:01:00\.0, found 0000:02:00\.0/);
  // no GPU at all
  t.regex(msg(gateNvidiaDriver(input(guestFacts(null, { pci: [] }), {}, smi(row)))), /expected an NVIDIA GPU visible in this guest, found none/);
});
