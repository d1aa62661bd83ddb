/**
 * SR-IOV pieces: the sriov_devices reading, the unit the role writes, the lab's reading of that
 * unit with the kernel's rules for sriov_numvfs, the VF layout, a lab boot of the SR-IOV profile,
 * and the probe's virtfn lines.
 */
import test from 'ava';
import { fullFunction } from '../../src/passthrough/selection.ts';
import { parsePciExtra } from '../../src/facts/guests.ts';
import { boot } from '../../src/lab/boot.ts';
import { loadProfile } from '../../src/lab/profile.ts';
import { addRid, parseSriovUnit, runSriovUnit, vfsOf, writeNumvfs, sriovPfs, type PfState } from '../../src/lab/sriov.ts';
import { grubCfg, snapshotOf } from '../../src/lab/node.ts';
import { sriovRequests, sriovUnitText, SRIOV_UNIT } from '../../src/passthrough/sriov.ts';
import { memoryView } from '../helpers/node-view.ts';

const view = memoryView;

const PF = '0000:00:02.0';
const pf = (numvfs = 0, driver: string | null = 'i915'): PfState => ({ address: PF, totalvfs: 7, numvfs, driver });

test('sriov_devices: addresses normalized, whole counts only, duplicates and bad slots refused', (t) => {
  t.is(fullFunction('00:02.0'), PF);
  t.is(fullFunction('0000:03:00.1'), '0000:03:00.1');
  t.is(fullFunction('03:00'), null);
  t.deepEqual(sriovRequests([{ slot: '00:02.0', numvfs: 4 }, { slot: '0000:03:00.0', numvfs: '2' }]).requests, [
    { address: PF, numvfs: 4 },
    { address: '0000:03:00.0', numvfs: 2 },
  ]);
  t.regex(sriovRequests([{ slot: '00:02.0', numvfs: true }]).problems[0]!.msg, /whole number >= 0, found 'true'/);
  t.regex(sriovRequests([{ slot: '00:02.0', numvfs: -1 }]).problems[0]!.msg, /whole number/);
  t.regex(sriovRequests([{ slot: '00:02.0; touch x', numvfs: 1 }]).problems[0]!.msg, /expected a PCI function/);
  t.regex(sriovRequests([{ slot: '00:02.0', numvfs: 1 }, { slot: PF, numvfs: 2 }]).problems[0]!.msg, /found 0000:00:02\.0 twice/);
  t.deepEqual(sriovRequests(null), { requests: [], problems: [] });
});

test('the unit: waits for the driver, writes 0 before N unless N is live, no systemd expansion characters', (t) => {
  const text = sriovUnitText([{ address: PF, numvfs: 4 }, { address: '0000:03:00.0', numvfs: 0 }]);
  t.regex(text, /^Type=oneshot$/m);
  t.regex(text, /^RemainAfterExit=yes$/m);
  t.regex(text, /^Before=pve-guests\.service$/m);
  t.regex(text, /^WantedBy=multi-user\.target$/m);
  t.regex(text, /^ExecStartPre=\/usr\/bin\/timeout 60 \/bin\/sh -c 'until \[ -e \/sys\/bus\/pci\/devices\/0000:00:02\.0\/driver \]; do sleep 1; done'$/m);
  t.regex(text, /^ExecStart=\/bin\/sh -c 'grep -qx 4 \/sys\/bus\/pci\/devices\/0000:00:02\.0\/sriov_numvfs \|\| \{ echo 0 > \/sys\/bus\/pci\/devices\/0000:00:02\.0\/sriov_numvfs && echo 4 > /m);
  t.regex(text, /^ExecStart=\/bin\/sh -c 'grep -qx 0 \/sys\/bus\/pci\/devices\/0000:03:00\.0\/sriov_numvfs \|\| echo 0 > /m);
  t.notRegex(text, /ExecStartPre=.*0000:03:00\.0\/driver/, 'a count of 0 does not wait for a driver');
  const exec = text.split('\n').filter((l) => l.startsWith('Exec')).join('\n');
  t.false(/[$%]/.test(exec), 'systemd would expand $ and % in Exec lines');
  t.is(sriovUnitText([]), '');
});

test('the kernel: more than totalvfs ERANGE, no driver ENOENT, a live count EBUSY, 0 then N works', (t) => {
  t.regex(writeNumvfs(pf(), 8).error!, /Numerical result out of range/);
  const noDrv = writeNumvfs(pf(0, null), 2);
  t.regex(noDrv.error!, /No such file or directory/);
  t.regex(noDrv.log[0]!, /Driver does not support SRIOV configuration via sysfs/);
  t.regex(writeNumvfs(pf(0, 'vfio-pci'), 2).error!, /No such file/);
  const live = pf(2);
  const busy = writeNumvfs(live, 4);
  t.regex(busy.error!, /Device or resource busy/);
  t.regex(busy.log[0]!, /2 VFs already enabled\. Disable before enabling 4 VFs/);
  t.is(live.numvfs, 2);
  t.true(writeNumvfs(live, 2).ok, 'the same count is a no-op');
  t.true(writeNumvfs(live, 0).ok);
  t.true(writeNumvfs(live, 4).ok);
  t.is(live.numvfs, 4);
});

test('the lab runs the role\'s unit: guard, 0 first, N; a unit without the 0 fails on a live count; no driver fails the wait', (t) => {
  const unit = parseSriovUnit(SRIOV_UNIT, sriovUnitText([{ address: PF, numvfs: 4 }]))!;
  t.deepEqual(unit.waitDriver, [PF]);
  t.deepEqual(unit.execs, [{ guard: { address: PF, n: 4 }, writes: [{ address: PF, n: 0 }, { address: PF, n: 4 }] }]);
  const live = new Map([[PF, pf(2)]]);
  t.true(runSriovUnit(unit, live).ok);
  t.is(live.get(PF)!.numvfs, 4);
  const naive = parseSriovUnit('naive.service', "[Service]\nExecStart=/bin/sh -c 'echo 4 > /sys/bus/pci/devices/0000:00:02.0/sriov_numvfs'\n")!;
  const busy = new Map([[PF, pf(2)]]);
  const r = runSriovUnit(naive, busy);
  t.false(r.ok);
  t.regex(r.error!, /busy/);
  t.is(busy.get(PF)!.numvfs, 2);
  t.false(runSriovUnit(unit, new Map([[PF, pf(0, null)]])).ok);
  t.is(parseSriovUnit('x.service', '[Service]\nExecStart=/bin/true\n'), null);
});

test('VF addresses follow First VF Offset and VF Stride (routing ids), spilling onto the next bus', (t) => {
  t.is(addRid(PF, 1), '0000:00:02.1');
  t.is(addRid(PF, 6), '0000:00:02.6');
  t.is(addRid('0000:03:00.0', 0x80), '0000:03:10.0');
  t.is(addRid('0000:03:1f.7', 1), '0000:04:00.0');
  const p = loadProfile('intel-igpu-sriov-pve8');
  const vfs = vfsOf(p, sriovPfs(p)[0]!, 3, 'i915', true);
  t.deepEqual(vfs.map((v) => [v.address, v.device, v.driver, v.group, v.index]), [
    ['0000:00:02.1', '46d3', 'i915', 13, 0],
    ['0000:00:02.2', '46d3', 'i915', 14, 1],
    ['0000:00:02.3', '46d3', 'i915', 15, 2],
  ]);
  t.true(vfsOf(p, sriovPfs(p)[0]!, 2, 'i915', false).every((v) => v.group === null));
});

/** A freshly installed node of the profile, plus `extra` files. */
function node(extra: Record<string, string> = {}) {
  const p = loadProfile('intel-igpu-sriov-pve8');
  const v = view({ '/etc/modules': '', ...extra });
  v.files['/boot/grub/grub.cfg'] = grubCfg(p.kernel.installed, p.root.device, '', p.cmdline, 'Proxmox VE');
  v.files[`/boot/initrd.img-${p.kernel.release}`] = snapshotOf(v);
  return { p, v };
}
const UNIT_PATH = `/etc/systemd/system/${SRIOV_UNIT}`;
const WANTS = `/etc/systemd/system/multi-user.target.wants/${SRIOV_UNIT}`;

test('lab boot: no VFs without a unit; an enabled unit creates them in IOMMU groups; a disabled one does nothing', (t) => {
  const bare = node();
  const r0 = boot(bare.p, bare.v);
  t.deepEqual(r0.sriov!.numvfs, { [PF]: 0 });
  t.deepEqual(r0.sriov!.vfs, []);
  const text = sriovUnitText([{ address: PF, numvfs: 4 }]);
  const off = node({ [UNIT_PATH]: text });
  t.deepEqual(boot(off.p, off.v).sriov!.vfs, [], 'written but not enabled: not run at boot');
  const on = node({ [UNIT_PATH]: text, [WANTS]: text });
  const r = boot(on.p, on.v);
  t.deepEqual(r.sriov!.numvfs, { [PF]: 4 });
  t.deepEqual(r.sriov!.vfs.map((v) => v.address), ['0000:00:02.1', '0000:00:02.2', '0000:00:02.3', '0000:00:02.4']);
  t.deepEqual(r.groups['13'], ['0000:00:02.1']);
  t.true(r.log.includes('i915 0000:00:02.0: Enabled 4 VFs'));
  t.deepEqual(r.failedUnits, []);
  const tooMany = node({ [UNIT_PATH]: sriovUnitText([{ address: PF, numvfs: 9 }]), [WANTS]: '' });
  const bad = boot(tooMany.p, tooMany.v);
  t.deepEqual(bad.failedUnits, [SRIOV_UNIT]);
  t.deepEqual(bad.sriov!.vfs, []);
});

test('probe: virtfn links give each PF its VFs in index order', (t) => {
  const x = parsePciExtra(
    ['/sys/bus/pci/devices/0000:00:02.0/sriov_totalvfs:7', '/sys/bus/pci/devices/0000:00:02.0/sriov_numvfs:2', '/sys/bus/pci/devices/0000:00:02.0/virtfn1:../0000:00:02.2', '/sys/bus/pci/devices/0000:00:02.0/virtfn0:../0000:00:02.1'].join('\n'),
  );
  t.deepEqual(x[PF]!.sriovVfs, ['0000:00:02.1', '0000:00:02.2']);
  t.is(x[PF]!.sriovNumVfs, 2);
});
