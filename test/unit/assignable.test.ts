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
  // perl's ioctl writes into a string argument: a temporary (pack(...), "$d\0") dies with
  // "Modification of a read-only value attempted". Each third argument is a number or a variable.
  const calls = [...ASSIGNABLE_PROBE.matchAll(/ioctl\(([^;]*?)\)[;)]/g)].map((m) => m[1]);
  t.is(calls.length, 6, calls.join(' | '));
  for (const c of calls) t.regex(c, /^\$\w+, 0x3B6[4-9A], (?:\d+|\$\w+)$/, c);
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

/**
 * The kernel side stood in for: sysopen and ioctl overridden (CORE::GLOBAL) before the script is
 * compiled. Each call is logged to stderr; FAKE_FAIL=WHAT:ERRNO makes one fail (WHAT is a path
 * for sysopen, an ioctl number in hex otherwise, with the device name for 3b6a). Like the real
 * ioctl, the stand-in writes into a string argument, so a read-only one dies as it would.
 */
const STAND_IN = String.raw`BEGIN {
  use Errno ();
  my %no = (ENOENT => Errno::ENOENT(), EBUSY => Errno::EBUSY(), EPERM => Errno::EPERM(), EINVAL => Errno::EINVAL());
  my ($what, $err) = split /:(?=[A-Z]+\z)/, $ENV{FAKE_FAIL} // '';
  *CORE::GLOBAL::sysopen = sub {
    print STDERR "sysopen $_[1]
";
    if (defined $what && $_[1] eq $what) { $! = $no{$err}; return 0 }
    return CORE::open($_[0], '<', '/dev/null');
  };
  *CORE::GLOBAL::ioctl = sub {
    my $n = sprintf('%x', $_[1]);
    my $arg = $_[2];
    if ($arg !~ /\A[0-9]+\z/) { substr($_[2], 0, 0) = '' }
    my $key = $n eq '3b6a' ? "$n " . unpack('Z*', $arg) : $n;
    print STDERR "ioctl $key
";
    if (defined $what && $key eq $what) { $! = $no{$err}; return undef }
    return 1 if $n eq '3b65';
    if ($n eq '3b67') { $_[2] = pack('LL', 8, $ENV{FAKE_FLAGS} // 1); return '0 but true' }
    return 100 if $n eq '3b6a';
    return '0 but true';
  };
}
`;
const standIn = (args: string[], fail = '', flags = '1') =>
  spawnSync('perl', ['-e', STAND_IN + ASSIGNABLE_PROBE, '--', ...args], { encoding: 'utf8', env: { ...process.env, FAKE_FAIL: fail, FAKE_FLAGS: flags } });

test('the Perl script runs the whole sequence in order, and reports each failure (the kernel stood in for)', (t) => {
  const ok = standIn(['3=0000:00:05.0,0000:00:05.1']);
  t.is(ok.status, 0, ok.stderr);
  t.is(ok.stdout, PROBE.pass);
  t.deepEqual(ok.stderr.trim().split('\n'), [
    'sysopen /dev/vfio/vfio',
    'ioctl 3b64',
    'ioctl 3b65',
    'sysopen /dev/vfio/vfio',
    'sysopen /dev/vfio/3',
    'ioctl 3b67',
    'ioctl 3b68',
    'ioctl 3b66',
    'ioctl 3b6a 0000:00:05.0',
    'ioctl 3b6a 0000:00:05.1',
  ]);
  t.is(standIn(['3=0000:00:05.0,0000:00:05.1'], '/dev/vfio/3:EBUSY').stdout, PROBE.busy);
  t.is(standIn(['3=0000:00:05.0,0000:00:05.1'], '/dev/vfio/3:ENOENT').stdout, PROBE.noGroupFile);
  t.is(standIn(['3=0000:00:05.0,0000:00:05.1'], '', '0').stdout, PROBE.notViable);
  t.is(standIn(['3=0000:00:05.0,0000:00:05.1'], '3b66:EPERM').stdout, PROBE.setIommuEperm);
  t.is(standIn(['3=0000:00:05.0,0000:00:05.1'], '3b68:EINVAL').stdout, PROBE.setContainerEinval);
  t.is(standIn(['3=0000:00:05.0,0000:00:05.1'], '3b6a 0000:00:05.1:EBUSY').stdout, PROBE.deviceBusy);
  t.is(standIn(['3=0000:00:05.0'], '/dev/vfio/vfio:ENOENT').stdout, PROBE.noContainer);
  // Two groups: a failure in the first does not stop the second.
  const two = standIn(['3=0000:00:05.0', '7=0000:02:00.0'], '/dev/vfio/3:EBUSY');
  t.deepEqual(parseAssignableOutput(two.stdout).groups.map((g) => [g.group, g.ok]), [[3, false], [7, true]]);
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
