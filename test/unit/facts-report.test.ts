/**
 * `passthru facts` formatting: the summary and the suggested host variables built from probe
 * fixtures (test/fixtures/facts), through the same planner the roles use.
 */
import test from 'ava';
import { describeHost, formatHostFacts, unreachableHost, varsYaml } from '../../src/report/facts.ts';
import { recapTable } from '../../src/report/format.ts';
import { colorEnabled } from '../../src/report/colour.ts';
import type { HostRecap } from '../../src/model/types.ts';
import { labFacts, pveNvidiaFacts } from '../fixtures/facts/hosts.ts';

const plain = { color: false };

test('a PVE node with an iGPU boot display and an NVIDIA card: the card is suggested, the iGPU kept', (t) => {
  const h = describeHost('pve1', pveNvidiaFacts());
  t.is(h.gpus!.length, 2);
  const [igpu, nv] = h.gpus!;
  t.is(igpu.slotVar, '00:02');
  t.true(igpu.bootDisplay);
  t.false(igpu.suggested);
  t.is(nv.slotVar, '01:00');
  t.deepEqual(nv.functions.map((f) => [f.address, f.id, f.iommuGroup, f.driver]), [
    ['0000:01:00.0', '10de:1f91', 1, 'nvidia'],
    ['0000:01:00.1', '10de:10fa', 1, 'snd_hda_intel'],
  ]);
  t.is(nv.isolation.verdict, 'isolated');
  t.true(nv.idsSafe);
  t.deepEqual(h.vars, { passthrough_slots: ['01:00'] });
  const text = formatHostFacts(plain, h);
  const lines = text.split('\n');
  t.is(lines[0], 'pve1');
  t.true(lines.includes('  cpu         intel, virtualisation on (vmx)'), text);
  t.true(lines.includes('  kernel      6.8.12-4-pve (ACS override patch: yes)'), text);
  t.true(lines.includes('  proxmox ve  8.2.4'), text);
  t.true(lines.some((l) => l.startsWith('  bootloader  systemd-boot  (System currently booted with uefi;')), text);
  t.true(lines.includes('  iommu       on, interrupt remapping on'), text);
  t.true(lines.includes('  gpu         01:00  NVIDIA Corporation TU117M [GeForce GTX 1650 Mobile / Max-Q]  [suggested]'), text);
  t.true(lines.includes('                01:00.0  10de:1f91  group 1  driver nvidia'), text);
  t.true(lines.includes('                isolation: isolated (group 1)'), text);
  t.true(lines.includes('  gpu         00:02  8086:3e92  [boot display]'), text);
  t.true(lines.includes('                00:02.0  8086:3e92  group 2  driver i915  boot_vga'), text);
  t.true(lines.includes('    passthrough_slots: ["01:00"]'), text);
  t.true(lines.includes('  note: ids= is safe: no other device on this host has the same vendor:device ids'), text);
  t.false(/\x1b\[/.test(text), 'no escape codes without colour');
  t.true(/\x1b\[/.test(formatHostFacts({ color: true }, h)), 'colour when asked');
});

test('a group shared with the SATA controller: fixable with ACS override on a -pve kernel, not fixable without the patch', (t) => {
  const h = describeHost('pve1', pveNvidiaFacts({ sataInGroup: true }));
  const nv = h.gpus!.find((g) => g.slotVar === '01:00')!;
  t.is(nv.isolation.verdict, 'fixable-with-acs-override');
  t.deepEqual(nv.isolation.sharesWith, ['0000:00:17.0']);
  t.deepEqual(h.vars, { passthrough_slots: ['01:00'], acs_override: 'auto' });
  t.regex(formatHostFacts(plain, h), /isolation: shares group 1 with 00:17\.0: fixable with ACS override/);

  const noPatch = describeHost('pve1', pveNvidiaFacts({ sataInGroup: true }), { acs_override_supported: false });
  const nv2 = noPatch.gpus!.find((g) => g.slotVar === '01:00')!;
  t.is(nv2.isolation.verdict, 'not-fixable');
  t.false(nv2.suggested);
  t.deepEqual(noPatch.vars, {});
  t.true(noPatch.notes!.includes('01:00 cannot be isolated on this kernel: not suggested'));
});

test('two cards with the same ids: passed together ids= is safe; with the twin kept by the host, per-device binding', (t) => {
  const both = describeHost('pve1', pveNvidiaFacts({ twin: true }));
  t.deepEqual(both.vars, { passthrough_slots: ['01:00', '02:00'] });
  t.false(both.gpus![1].idsSafe);
  t.regex(formatHostFacts(plain, both), /ids=: same vendor:device as 02:00\.0: passing one without the other needs per-device binding/);

  // The twin is the boot display: only 01:00 is suggested, and ids= would take the console.
  const f = pveNvidiaFacts({ twin: true });
  f.pci = f.pci.map((d) => ({ ...d, bootVga: d.address === '0000:02:00.0' }));
  const one = describeHost('pve1', f);
  t.deepEqual(one.vars, { passthrough_slots: ['00:02', '01:00'], vfio_bind: 'address' });
  t.true(one.notes!.some((n) => n.startsWith('ids= is not safe: it would also bind 0000:02:00.0')), one.notes!.join('\n'));
});

test('IOMMU off on a kernel that does not turn it on by itself: verdict unknown, hint names the kernel parameter and the firmware', (t) => {
  const h = describeHost('lab1', labFacts({ iommu: false }));
  t.false(h.iommu!.active);
  t.regex(h.iommu!.hint!, /intel_iommu=on iommu=pt .* enable VT-d in the firmware setup/);
  t.is(h.gpus![0].isolation.verdict, 'unknown');
  t.is(h.gpus![0].name, '1234:1111');
  t.deepEqual(h.vars, { passthrough_slots: ['00:05'] });
  const text = formatHostFacts(plain, h);
  t.true(text.includes('  iommu       off\n'), text);
  t.true(text.includes('isolation: unknown until the IOMMU is on'), text);

  // No IOMMU unit on a 6.8 kernel (Intel turns it on by default from 6.8): firmware.
  const f = labFacts({ iommu: false }, { uname: '6.8.12-4-pve' });
  t.regex(describeHost('n', f).iommu!.hint!, /^no IOMMU unit .*enable VT-d in the firmware setup/);
});

test('an unreachable host says why, with the hint', (t) => {
  const text = formatHostFacts(plain, unreachableHost('pve9', 'pve9: cannot connect: connect ECONNREFUSED 10.0.0.19:22', 'check the address'));
  t.is(text, 'pve9  UNREACHABLE\n  pve9: cannot connect: connect ECONNREFUSED 10.0.0.19:22\n  hint: check the address');
});

test('variables print as inventory YAML, quoting what YAML would read otherwise', (t) => {
  t.deepEqual(varsYaml({ passthrough_slots: ['01:00'], vfio_bind: 'address', acs_override: 'off' }), ['passthrough_slots: ["01:00"]', 'vfio_bind: address', 'acs_override: "off"']);
});

test('colour: only on a terminal, never with --no-color or NO_COLOR', (t) => {
  t.true(colorEnabled(undefined, true, {}));
  t.true(colorEnabled(true, true, { NO_COLOR: '' }));
  t.false(colorEnabled(false, true, {}));
  t.false(colorEnabled(true, false, {}));
  t.false(colorEnabled(true, true, { NO_COLOR: '1' }));
});

test('recap: ok counts changed (said in the heading), reboot pending says what to do, check mode says "would reboot" for drift', (t) => {
  const rc = (o: Partial<HostRecap>): HostRecap => ({ ok: 5, changed: 2, failed: 0, skipped: 1, unreachable: 0, rebootPending: false, rebooted: false, ...o });
  const base = { playbook: 'p.yaml', startedAt: '', durationMs: 1500, hosts: {}, failedHosts: [] };
  const apply = recapTable(plain, { ...base, check: false, exitCode: 6, recap: { a: rc({ rebootPending: true }), b: rc({ rebooted: true }) } });
  t.is(
    apply,
    [
      'RECAP (ok counts changed tasks too, as Ansible does)',
      'a     ok=5   changed=2   failed=0   skipped=1   unreachable=0    reboot pending',
      'b     ok=5   changed=2   failed=0   skipped=1   unreachable=0    rebooted',
      'reboot pending on a: configured, not booted yet. In a maintenance window, rerun apply without --no-reboot (add --guests shutdown to stop running guests first), or reboot them yourself and run check.',
      '1.5 s, exit 6 (reboot pending)',
    ].join('\n'),
  );
  const check = recapTable(plain, { ...base, check: true, exitCode: 5, recap: { a: rc({ rebootPending: true }), c: rc({ changed: 0, rebootPending: true }) } });
  t.regex(check, /^a .*drift=2 .* would reboot$/m);
  t.regex(check, /^reboot pending on c: configured but not booted yet\. `apply` reboots and verifies them/m);
  t.regex(check, /exit 5 \(drift: something would change\)$/);
});
