/**
 * Can the chosen devices really be assigned to a VM? The `gate-assignable` probe runs on the host
 * the VFIO sequence that QEMU's vfio-pci device runs when a VM starts with the device:
 *
 *   open /dev/vfio/vfio, VFIO_GET_API_VERSION (0), VFIO_CHECK_EXTENSION(VFIO_TYPE1_IOMMU) (1);
 *   per IOMMU group: a fresh container, open /dev/vfio/GROUP, VFIO_GROUP_GET_STATUS (viable),
 *   VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU(TYPE1), VFIO_GROUP_GET_DEVICE_FD(address) for each
 *   chosen function of the group; everything is closed again before the next group.
 *
 * The probe is Perl: perl-base is Essential on every Debian, Proxmox VE itself is written in Perl,
 * and Perl has sysopen and ioctl. The script is a fixed constant; the groups and addresses reach
 * it only as arguments (`GROUP=ADDR,ADDR`), validated here before the command is built and again
 * by the script itself, so no value ever becomes code. Its output is one line per step that
 * decides (`api`, `group`, `device`) and `done` at the end, parsed by a pure function.
 *
 * Opening a device fd makes vfio-pci enable and reset the function, as a VM start does; that is
 * why the gate runs only when asked (`vfio_assignable_gate: true`).
 */
import type { Facts } from '../facts/types.ts';
import { hostpciOf, slotOf } from '../facts/guests.ts';
import { fullFunction } from './selection.ts';
import { shq } from '../model/shell.ts';
import type { PassthroughConfig } from './config.ts';

/** A PCI function address as sysfs writes it: `0000:01:00.0`. */
export const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/**
 * The probe, run as `perl -e SCRIPT -- GROUP=ADDR[,ADDR] ...`. Ioctl numbers are
 * `_IO(VFIO_TYPE ';', VFIO_BASE 100 + n)` from linux/vfio.h: 0x3B64 GET_API_VERSION, 0x3B65
 * CHECK_EXTENSION, 0x3B66 SET_IOMMU, 0x3B67 GROUP_GET_STATUS, 0x3B68 GROUP_SET_CONTAINER,
 * 0x3B6A GROUP_GET_DEVICE_FD. A numeric third argument is passed by value, a string by pointer
 * (the status struct `{argsz, flags}`, the container fd as an int, the device name with its NUL);
 * perl writes into a string argument (it may grow it), so each one is a variable, never a temporary.
 *
 * Output lines: `api ok version V type1 N`, `group G ok flags 0xF`, `device G ADDR ok`, or
 * `KIND IDS fail STEP ERRNO TEXT` (ERRNO `-` when no system call failed), then `done`.
 */
export const ASSIGNABLE_PROBE = String.raw`use strict;
use warnings;
use Fcntl qw(O_RDWR);
use POSIX ();
use Errno ();
$| = 1;
sub why {
  my $n = $! + 0;
  my $text = "$!";
  my ($name) = grep { $!{$_} } sort keys %!;
  return ($name // "E$n") . " $text";
}
my @groups;
for my $arg (@ARGV) {
  my ($g, $list) = $arg =~ /\A([0-9]{1,6})=([0-9a-f:.,]{1,2000})\z/;
  my @devs = defined $list ? split(/,/, $list) : ();
  if (!@devs || grep { !/\A[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\z/ } @devs) {
    print "usage fail argument - not GROUP=DDDD:BB:DD.F[,...]\n";
    exit 2;
  }
  push @groups, [$g, \@devs];
}
my $c;
if (!sysopen($c, '/dev/vfio/vfio', O_RDWR)) { print 'api fail open ', why(), "\n"; print "done\n"; exit 0 }
my $api = ioctl($c, 0x3B64, 0);
if (!defined $api) { print 'api fail version ', why(), "\n"; print "done\n"; exit 0 }
my $type1 = ioctl($c, 0x3B65, 1);
if (!defined $type1) { print 'api fail extension ', why(), "\n"; print "done\n"; exit 0 }
$api += 0;
$type1 += 0;
if ($api != 0 || $type1 != 1) { print "api fail extension - version $api type1 $type1\n"; print "done\n"; exit 0 }
print "api ok version $api type1 $type1\n";
close($c);
GROUP: for my $t (@groups) {
  my ($g, $devs) = @$t;
  my ($k, $gf);
  if (!sysopen($k, '/dev/vfio/vfio', O_RDWR)) { print "group $g fail container ", why(), "\n"; next GROUP }
  if (!sysopen($gf, "/dev/vfio/$g", O_RDWR)) { print "group $g fail open ", why(), "\n"; next GROUP }
  my $st = pack('LL', 8, 0);
  if (!ioctl($gf, 0x3B67, $st)) { print "group $g fail status ", why(), "\n"; next GROUP }
  my $flags = (unpack('LL', $st))[1];
  if (!($flags & 1)) { printf "group %s fail viable - flags 0x%x: not viable\n", $g, $flags; next GROUP }
  my $kfd = pack('i', fileno($k));
  if (!ioctl($gf, 0x3B68, $kfd)) { print "group $g fail set-container ", why(), "\n"; next GROUP }
  if (!ioctl($k, 0x3B66, 1)) { print "group $g fail set-iommu ", why(), "\n"; next GROUP }
  printf "group %s ok flags 0x%x\n", $g, $flags;
  for my $d (@$devs) {
    my $name = "$d\0";
    my $fd = ioctl($gf, 0x3B6A, $name);
    if (!defined $fd) { print "device $g $d fail get-device-fd ", why(), "\n"; next }
    POSIX::close($fd + 0);
    print "device $g $d ok\n";
  }
}
print "done\n";
`;

/** One IOMMU group to probe and the chosen functions in it. */
export interface AssignableTarget {
  group: number;
  devices: string[];
}

/** The command line of the probe for these groups. Throws on a group or address that is not one. */
export function assignableProbeCommand(targets: AssignableTarget[]): string {
  const args = targets.map((t) => {
    if (!Number.isInteger(t.group) || t.group < 0 || t.group > 999999) throw new Error(`not an IOMMU group number: ${String(t.group)}`);
    if (t.devices.length === 0) throw new Error(`IOMMU group ${t.group}: no device to open`);
    for (const d of t.devices) if (!PCI_ADDRESS.test(d)) throw new Error(`not a PCI function address: ${JSON.stringify(d)}`);
    return `${t.group}=${t.devices.join(',')}`;
  });
  return ['perl', '-e', shq(ASSIGNABLE_PROBE), '--', ...args.map(shq)].join(' ');
}

/** A step that failed: which, and the errno (`ENOENT`, or `-` when no system call failed) with its text. */
export interface ProbeFailure {
  step: string;
  errno: string;
  text: string;
}

export interface ProbeGroup {
  group: number;
  ok: boolean;
  flags?: number;
  failure?: ProbeFailure;
  devices: Array<{ address: string; ok: boolean; failure?: ProbeFailure }>;
}

export interface ProbeOutput {
  /** `/dev/vfio/vfio` and the API: null when the output has no such line. */
  api: { ok: true; version: number; type1: number } | { ok: false; failure: ProbeFailure } | null;
  groups: ProbeGroup[];
  /** The script printed `done`: every line it had to print is here. */
  done: boolean;
  /** Lines that are none of the above (a perl error, say). */
  other: string[];
}

const failureOf = (rest: string[]): ProbeFailure => ({ step: rest[0] ?? '?', errno: rest[1] ?? '-', text: rest.slice(2).join(' ') });

/** Parse the probe's output. Pure. */
export function parseAssignableOutput(stdout: string): ProbeOutput {
  const out: ProbeOutput = { api: null, groups: [], done: false, other: [] };
  const group = (n: number): ProbeGroup => {
    let g = out.groups.find((x) => x.group === n);
    if (!g) out.groups.push((g = { group: n, ok: false, devices: [] }));
    return g;
  };
  for (const line of stdout.split('\n')) {
    const w = line.trim().split(/\s+/).filter(Boolean);
    if (w.length === 0) continue;
    if (w[0] === 'done' && w.length === 1) {
      out.done = true;
    } else if (w[0] === 'api' && w[1] === 'ok') {
      const kv = Object.fromEntries([[w[2], w[3]], [w[4], w[5]]]);
      out.api = { ok: true, version: Number(kv.version), type1: Number(kv.type1) };
    } else if (w[0] === 'api' && w[1] === 'fail') {
      out.api = { ok: false, failure: failureOf(w.slice(2)) };
    } else if (w[0] === 'group' && /^\d+$/.test(w[1] ?? '') && (w[2] === 'ok' || w[2] === 'fail')) {
      const g = group(Number(w[1]));
      if (w[2] === 'ok') {
        g.ok = true;
        if (w[3] === 'flags' && w[4]) g.flags = Number.parseInt(w[4], 16);
      } else {
        g.failure = failureOf(w.slice(3));
        const flags = /flags 0x([0-9a-f]+)/.exec(line);
        if (flags) g.flags = Number.parseInt(flags[1], 16);
      }
    } else if (w[0] === 'device' && /^\d+$/.test(w[1] ?? '') && PCI_ADDRESS.test(w[2] ?? '') && (w[3] === 'ok' || w[3] === 'fail')) {
      group(Number(w[1])).devices.push(w[3] === 'ok' ? { address: w[2], ok: true } : { address: w[2], ok: false, failure: failureOf(w.slice(4)) });
    } else {
      out.other.push(line.trim());
    }
  }
  return out;
}

/** Drivers that leave a group viable for VFIO (they do their own DMA management, or none). */
export const VIABLE_DRIVERS = ['vfio-pci', 'pci-stub', 'pcieport'];

export interface AssignablePlan {
  targets: AssignableTarget[];
  /** The probe's command line, null when the facts already show the devices cannot be assigned. */
  command: string | null;
  /** Chosen functions that are not on vfio-pci. */
  notOnVfio: Array<{ address: string; driver: string | null }>;
  /** Other members of the chosen groups whose driver makes the group not viable. */
  blockers: Array<{ group: number; address: string; driver: string }>;
  /** Chosen functions without an IOMMU group. */
  ungrouped: string[];
}

/**
 * What the probe should open, from the facts: each chosen function's group with the chosen
 * functions in it, and what the facts already show stands in the way (a chosen function not on
 * vfio-pci, another member on a host driver). The probe runs only when nothing does.
 */
export function assignablePlan(facts: Facts, p: PassthroughConfig): AssignablePlan {
  const byAddr = new Map(facts.pci.map((d) => [d.address, d]));
  const targets: AssignableTarget[] = [];
  const ungrouped: string[] = [];
  for (const d of p.devices) {
    if (d.iommuGroup === null) {
      ungrouped.push(d.address);
      continue;
    }
    let t = targets.find((x) => x.group === d.iommuGroup);
    if (!t) targets.push((t = { group: d.iommuGroup, devices: [] }));
    t.devices.push(d.address);
  }
  const chosen = new Set(p.devices.map((d) => d.address));
  const notOnVfio = p.devices.filter((d) => d.driver !== 'vfio-pci').map((d) => ({ address: d.address, driver: d.driver }));
  const blockers: AssignablePlan['blockers'] = [];
  for (const t of targets) {
    for (const a of facts.iommuGroups[String(t.group)] ?? []) {
      if (chosen.has(a)) continue;
      const dev = byAddr.get(a);
      const drv = dev?.driver ?? null;
      // PCI bridges are the kernel's to judge (the probe asks it); other members must be free.
      if (drv === null || VIABLE_DRIVERS.includes(drv) || dev?.class === '0604') continue;
      blockers.push({ group: t.group, address: a, driver: drv });
    }
  }
  const clean = targets.length > 0 && ungrouped.length === 0 && notOnVfio.length === 0 && blockers.length === 0 && targets.every((t) => t.devices.every((a) => PCI_ADDRESS.test(a)));
  return { targets, command: clean ? assignableProbeCommand(targets) : null, notOnVfio, blockers, ungrouped };
}

/**
 * Running VMs of this node that use a device of these addresses (by `hostpciN` address or through
 * a PCI mapping's entry for this node). Such a VM holds the group's /dev/vfio file: EBUSY.
 */
export function runningVmsUsing(facts: Facts, addresses: string[], node: string = facts.hostname): string[] {
  const slots = new Set(addresses.map((a) => slotOf(a)));
  const fns = new Set(addresses);
  const hits = (a: string): boolean => (/\.[0-7]$/.test(a) ? fns.has(fullFunction(a) ?? a) : slots.has(slotOf(a)));
  const running = new Set(facts.guests.filter((g) => g.kind === 'qm' && g.status === 'running').map((g) => g.id));
  const out: string[] = [];
  for (const vm of facts.vms) {
    if (!running.has(vm.id)) continue;
    const uses = hostpciOf(vm.config).some((h) => {
      if (h.host) return h.host.some(hits);
      const m = facts.pciMappings.find((x) => x.id === h.mapping);
      return (m?.map ?? []).some((e) => e.node === node && e.path.some(hits));
    });
    if (uses) out.push(vm.id);
  }
  return out;
}
