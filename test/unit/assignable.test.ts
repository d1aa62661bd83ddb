/**
 * The assignable probe (src/passthrough/assignable.ts): its command line (values validated, never
 * code), the Perl script itself run here (it compiles, refuses a crafted argument, reports a host
 * without VFIO), the parser of its output, what it is to open, and which running VM holds a group.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGuestConfig, parsePciMappingCfg } from '../../src/facts/guests.ts';
import { ASSIGNABLE_PROBE, assignablePlan, assignableProbeCommand, parseAssignableOutput, runningVmsUsing } from '../../src/passthrough/assignable.ts';
import { passthroughConfig } from '../../src/passthrough/config.ts';
import { labFacts, pveNvidiaBoundFacts as nvidiaBound } from '../fixtures/facts/hosts.ts';
import { PROBE } from '../fixtures/vfio-probe.ts';


test('the command: the fixed script, then GROUP=ADDR,ADDR arguments after --', (t) => {
  const cmd = assignableProbeCommand([{ group: 3, devices: ['0000:00:05.0', '0000:00:05.1'] }, { group: 12, devices: ['0000:01:00.0'] }]);
  t.true(cmd.startsWith("perl -e 'use strict;"), cmd.slice(0, 40));
  t.true(cmd.endsWith(' -- 3=0000:00:05.0,0000:00:05.1 12=0000:01:00.0'), cmd.slice(-60));
  // What sh would hand perl: the script unchanged as one word.
  const argv = execFileSync('sh', ['-c', `printf '%s\\0' ${cmd.slice('perl '.length)}`]).toString().split('\0');
  t.is(argv[0], '-e');
  t.is(argv[1], ASSIGNABLE_PROBE);
  t.deepEqual(argv.slice(2, 5), ['--', '3=0000:00:05.0,0000:00:05.1', '12=0000:01:00.0']);
});

test('the command refuses anything but group numbers and PCI function addresses', (t) => {
  for (const devices of [['0000:00:05.0;reboot'], ['$(reboot)'], ['00:05.0'], ['0000:00:05'], ['0000:00:05.8'], ['0000:00:05.0 0000:00:05.1'], []]) {
    t.throws(() => assignableProbeCommand([{ group: 3, devices }]), undefined, JSON.stringify(devices));
  }
  for (const group of [-1, 1.5, Number.NaN, 1e9]) t.throws(() => assignableProbeCommand([{ group, devices: ['0000:00:05.0'] }]), undefined, String(group));
});

test('the Perl script compiles, and refuses a crafted argument by itself before doing anything', (t) => {
  const check = spawnSync('perl', ['-c', '-e', ASSIGNABLE_PROBE], { encoding: 'utf8' });
  t.is(check.status, 0, check.stderr);
  const dir = mkdtempSync(join(tmpdir(), 'assignable-'));
  try {
    const marker = join(dir, 'ran');
    for (const arg of [`3=0000:00:05.0;touch ${marker}`, `3=$(touch ${marker})`, '3=0000:00:05.0,../../x', 'x=0000:00:05.0', '3=', `3=0000:00:05.0\ntouch ${marker}`]) {
      const r = spawnSync('perl', ['-e', ASSIGNABLE_PROBE, '--', arg], { encoding: 'utf8' });
      t.is(r.status, 2, `${JSON.stringify(arg)}: ${r.stdout}${r.stderr}`);
      t.regex(r.stdout, /^usage fail argument - /, JSON.stringify(arg));
    }
    t.deepEqual(readdirSync(dir), [], 'nothing ran');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the Perl script on a host: without /dev/vfio it says so, with ENOENT, and finishes', (t) => {
  const r = spawnSync('sh', ['-c', assignableProbeCommand([{ group: 3, devices: ['0000:00:05.0'] }])], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const out = parseAssignableOutput(r.stdout);
  t.true(out.done, r.stdout);
  t.deepEqual(out.other, []);
  if (existsSync('/dev/vfio/vfio')) {
    // A machine with VFIO (not the usual test machine): the API answers, and group 3 is ours to judge only there.
    t.truthy(out.api, r.stdout);
  } else {
    t.deepEqual(out.api, { ok: false, failure: { step: 'open', errno: 'ENOENT', text: 'No such file or directory' } });
    t.deepEqual(out.groups, [], 'no group is tried without the container');
  }
});

test('parse: a pass, and each kind of failure with its step and errno', (t) => {
  const ok = parseAssignableOutput(PROBE.pass);
  t.deepEqual(ok, {
    api: { ok: true, version: 0, type1: 1 },
    groups: [{ group: 3, ok: true, flags: 1, devices: [{ address: '0000:00:05.0', ok: true }, { address: '0000:00:05.1', ok: true }] }],
    done: true,
    other: [],
  });
  const busy = parseAssignableOutput(PROBE.busy);
  t.deepEqual(busy.groups[0], { group: 3, ok: false, failure: { step: 'open', errno: 'EBUSY', text: 'Device or resource busy' }, devices: [] });
  const viable = parseAssignableOutput(PROBE.notViable);
  t.deepEqual(viable.groups[0].failure, { step: 'viable', errno: '-', text: 'flags 0x0: not viable' });
  t.is(viable.groups[0].flags, 0);
  const dev = parseAssignableOutput(PROBE.deviceBusy);
  t.deepEqual(dev.groups[0].devices[1], { address: '0000:00:05.1', ok: false, failure: { step: 'get-device-fd', errno: 'EBUSY', text: 'Device or resource busy' } });
  t.true(dev.groups[0].ok, 'the group itself opened');
  const api = parseAssignableOutput(PROBE.noContainer);
  t.deepEqual(api.api, { ok: false, failure: { step: 'open', errno: 'ENOENT', text: 'No such file or directory' } });
  // Cut short (perl missing, killed): no done, and whatever else it printed is kept.
  const cut = parseAssignableOutput('sh: 1: perl: not found\n');
  t.false(cut.done);
  t.deepEqual(cut.other, ['sh: 1: perl: not found']);
  t.is(cut.api, null);
});

test('assignablePlan: the chosen functions by group; the probe only when the facts allow it', (t) => {
  const bound = labFacts({ bound: true });
  const p = assignablePlan(bound, passthroughConfig(bound, { passthrough_slots: ['00:05'] }));
  t.deepEqual(p.targets, [{ group: 3, devices: ['0000:00:05.0', '0000:00:05.1'] }]);
  t.is(p.command, assignableProbeCommand(p.targets));
  // One function of the slot chosen: the other member is on its host driver, the group not viable.
  const half = labFacts({ bound: false });
  half.pci = half.pci.map((d) => (d.address === '0000:00:05.0' ? { ...d, driver: 'vfio-pci' } : d));
  const hp = assignablePlan(half, passthroughConfig(half, { passthrough_slots: ['00:05.0'] }));
  t.deepEqual(hp.blockers, [{ group: 3, address: '0000:00:05.1', driver: 'snd_hda_intel' }]);
  t.is(hp.command, null);
  // Not bound yet: nothing to open.
  const un = assignablePlan(labFacts(), passthroughConfig(labFacts(), { passthrough_slots: ['00:05'] }));
  t.deepEqual(un.notOnVfio.map((d) => d.driver), ['bochs-drm', 'snd_hda_intel']);
  t.is(un.command, null);
  // A PCIe root port in the group (pcieport) does not stand in the way.
  const nv = nvidiaBound();
  const np = assignablePlan(nv, passthroughConfig(nv, { passthrough_slots: ['01:00'] }));
  t.deepEqual(np.blockers, []);
  t.deepEqual(np.targets, [{ group: 1, devices: ['0000:01:00.0', '0000:01:00.1'] }]);
  t.truthy(np.command);
});

test('runningVmsUsing: a running VM by hostpci address or by mapping; a stopped one does not count', (t) => {
  const f = nvidiaBound();
  // qm list fixture: 103 running, 9000 stopped.
  f.vms = [
    parseGuestConfig('name: vaultwarden\nhostpci0: 0000:01:00,pcie=1\n', 'qm', '/etc/pve/qemu-server/103.conf'),
    parseGuestConfig('name: tmpl\nhostpci0: 01:00.0\n', 'qm', '/etc/pve/qemu-server/9000.conf'),
  ];
  t.deepEqual(runningVmsUsing(f, ['0000:01:00.0', '0000:01:00.1']), ['103']);
  t.deepEqual(runningVmsUsing(f, ['0000:02:00.0']), []);
  f.vms = [parseGuestConfig('hostpci0: mapping=gpu,pcie=1\n', 'qm', '/etc/pve/qemu-server/104.conf')];
  f.pciMappings = parsePciMappingCfg('gpu\n\tmap id=10de:1f91,node=pve1,path=0000:01:00\n\tmap id=10de:1f91,node=pve2,path=0000:02:00\n').mappings;
  t.deepEqual(runningVmsUsing(f, ['0000:01:00.0']), ['104']);
  t.deepEqual(runningVmsUsing(f, ['0000:02:00.0']), [], 'the mapping entry of another node');
  t.deepEqual(runningVmsUsing(f, ['0000:01:00.0'], 'pve2'), [], 'this node named pve2: its entry is 02:00');
});
