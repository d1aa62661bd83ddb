/**
 * SR-IOV: N virtual functions (VFs) on a capable physical function (PF) at every boot
 * (`sriov_devices: [{ slot: "0000:00:02.0", numvfs: 4 }]`). Pure: facts and host variables in,
 * the plan out: which devices, what the kernel has now, the systemd unit that creates the VFs at
 * boot, and whether they can be created now or only by a reboot.
 *
 * Kernel facts this follows (drivers/pci/iov.c, sriov_numvfs_store):
 *   - `sriov_numvfs` does not persist: every boot starts with 0 VFs (or what the PF driver makes
 *     by itself), so something must write it at every boot;
 *   - a value above `sriov_totalvfs` is refused (-ERANGE);
 *   - without a PF driver that implements sriov_configure the write is refused (-ENOENT, "Driver
 *     does not support SRIOV configuration via sysfs"): the write must wait for the PF's driver;
 *   - changing a non-zero count to another non-zero count is refused (-EBUSY, "N VFs already
 *     enabled. Disable before enabling M VFs"): 0 must be written first, which removes every VF
 *     at once (the SR-IOV spec has no partial disable), including VFs a running guest uses.
 *
 * Why a systemd oneshot unit and not a udev rule (`ACTION=="add", SUBSYSTEM=="pci",
 * KERNEL=="0000:00:02.0", ATTR{sriov_numvfs}="4"`): the PCI `add` event comes when the device is
 * enumerated, which can be before its driver is bound (a DKMS i915 loaded later by modalias): the
 * write then fails with -ENOENT, and a failed ATTR write is one line in the journal. The unit
 * waits for the PF's driver, writes 0 first when a different count is live, is ordered before
 * pve-guests.service (guests that start on boot with a VF find it), and a failure shows in
 * `systemctl --failed`. The same unit is what the role starts to create the VFs now, so what runs
 * at boot is what was proven at apply time.
 */
import type { Facts, PciDevice } from '../facts/types.ts';
import { fullFunction } from './selection.ts';
import type { Problem } from './vars.ts';

/** The unit passthru writes (one for every device of the host: one ExecStart each). */
export const SRIOV_UNIT = 'passthru-sriov.service';
export const SRIOV_UNIT_PATH = `/etc/systemd/system/${SRIOV_UNIT}`;
/** gate-sriov's read: the unit's text, then `@@failed` and whether it failed in this boot. */
export const SRIOV_UNIT_READ = `cat ${SRIOV_UNIT_PATH} 2>/dev/null; echo; echo @@failed; systemctl is-failed ${SRIOV_UNIT} 2>/dev/null; true`;
/** Seconds the unit waits for the PF's driver to be bound before it fails. */
export const SRIOV_DRIVER_WAIT_S = 60;

export interface SriovRequest {
  address: string;
  numvfs: number;
}

export interface SriovDevicePlan extends SriovRequest {
  totalvfs: number;
  /** `sriov_numvfs` now. */
  current: number;
  driver: string | null;
  /** VFs that exist now (`virtfnN` links), in order. */
  vfs: string[];
  /**
   * none: already so; create: no VF exists now, the count can be written now without removing
   * anything; reboot: a different count is live, changing it removes every VF (a guest's too).
   */
  action: 'none' | 'create' | 'reboot';
}

export interface SriovConfig {
  devices: SriovDevicePlan[];
  problems: Problem[];
  /** The unit's text, '' when no device is asked for. */
  unit: string;
  /** Start the unit now (every change is a creation from 0 VFs). */
  applyNow: boolean;
  /** Only a reboot applies it (a live count would change). */
  reboot: boolean;
  rebootReason: string;
}

/** The `sriov_devices` variable, read: requests and the problems of the list itself. */
export function sriovRequests(raw: unknown): { requests: SriovRequest[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const requests: SriovRequest[] = [];
  const list = raw === null || raw === undefined || raw === '' ? [] : raw;
  if (!Array.isArray(list)) {
    return { requests, problems: [{ msg: `expected sriov_devices to be a list, found ${JSON.stringify(raw)}`, hint: 'sriov_devices: [{ slot: "0000:00:02.0", numvfs: 4 }]' }] };
  }
  for (const item of list) {
    const e = (item ?? {}) as { slot?: unknown; numvfs?: unknown };
    const address = fullFunction(String(e.slot ?? ''));
    if (!address) {
      problems.push({ msg: `expected a PCI function like 0000:00:02.0 in sriov_devices, found '${String(e.slot)}'`, hint: 'the physical function as `lspci -D` prints it (bus:device.function)' });
      continue;
    }
    // a whole number or its digits; `true` is not 1
    const n = typeof e.numvfs === 'number' ? e.numvfs : typeof e.numvfs === 'string' && /^\s*\d{1,5}\s*$/.test(e.numvfs) ? Number(e.numvfs) : Number.NaN;
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      problems.push({ msg: `expected numvfs of ${address} to be a whole number >= 0, found '${String(e.numvfs)}'`, hint: 'numvfs: 4 (0 = no VFs)' });
      continue;
    }
    if (requests.some((r) => r.address === address)) {
      problems.push({ msg: `expected each device once in sriov_devices, found ${address} twice`, hint: 'keep one entry per physical function' });
      continue;
    }
    requests.push({ address, numvfs: n });
  }
  return { requests, problems };
}

const sysfs = (address: string) => `/sys/bus/pci/devices/${address}`;

/** The unit's line that sets one device's count (the gate looks for exactly this line). */
export function sriovExecStart(address: string, numvfs: number): string {
  const f = `${sysfs(address)}/sriov_numvfs`;
  return numvfs === 0 ? `ExecStart=/bin/sh -c 'grep -qx 0 ${f} || echo 0 > ${f}'` : `ExecStart=/bin/sh -c 'grep -qx ${numvfs} ${f} || { echo 0 > ${f} && echo ${numvfs} > ${f}; }'`;
}

/**
 * The unit's text. Each device: wait for its driver (ExecStartPre), then, unless the count is
 * already N, write 0 (the kernel refuses a non-zero change) and N. No `$` or `%` anywhere: systemd
 * would expand them in Exec lines.
 */
export function sriovUnitText(requests: SriovRequest[]): string {
  if (requests.length === 0) return '';
  const lines = [
    '# Managed by passthru (sriov role): SR-IOV virtual functions at every boot (sriov_numvfs does',
    '# not persist). Waits for each physical function\'s driver (the kernel creates VFs through it),',
    '# writes 0 before a new count (the kernel refuses to change a live non-zero count), and runs',
    '# before pve-guests.service so that guests started on boot find their VFs.',
    '[Unit]',
    `Description=SR-IOV virtual functions (${requests.map((r) => `${r.address}: ${r.numvfs}`).join(', ')})`,
    'After=systemd-modules-load.service',
    'Before=pve-guests.service',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
  ];
  // A count of 0 needs no driver (writing 0 to a device without one changes nothing): only the
  // others wait, so one driverless 0-entry cannot hold back every device's VFs.
  for (const r of requests.filter((x) => x.numvfs > 0)) {
    const d = sysfs(r.address);
    lines.push(`ExecStartPre=/usr/bin/timeout ${SRIOV_DRIVER_WAIT_S} /bin/sh -c 'until [ -e ${d}/driver ]; do sleep 1; done'`);
  }
  for (const r of requests) lines.push(sriovExecStart(r.address, r.numvfs));

  lines.push('', '[Install]', 'WantedBy=multi-user.target', '');
  return lines.join('\n');
}

/** SR-IOV capable devices of the host, for hints: `0000:00:02.0 (8086:46d3, 7 VFs)`. */
function capable(facts: Facts): string {
  const c = facts.pci.filter((d) => typeof d.sriovTotalVfs === 'number' && d.sriovTotalVfs > 0);
  return c.length ? c.map((d) => `${d.address} (${d.id}, up to ${d.sriovTotalVfs} VFs)`).join(', ') : 'none';
}

function devicePlan(req: SriovRequest, d: PciDevice): SriovDevicePlan {
  const current = d.sriovNumVfs ?? 0;
  const action = current === req.numvfs ? 'none' : current === 0 ? 'create' : 'reboot';
  return { ...req, totalvfs: d.sriovTotalVfs ?? 0, current, driver: d.driver, vfs: d.sriovVfs ?? [], action };
}

/** The whole SR-IOV plan of one host. */
export function sriovConfig(facts: Facts, vars: Record<string, unknown>): SriovConfig {
  const { requests, problems } = sriovRequests(vars.sriov_devices);
  const byAddr = new Map(facts.pci.map((d) => [d.address, d]));
  const devices: SriovDevicePlan[] = [];
  for (const r of requests) {
    const d = byAddr.get(r.address);
    if (!d) {
      problems.push({ msg: `expected a PCI device at ${r.address}, found none`, hint: `SR-IOV capable devices on this host: ${capable(facts)}; \`lspci -D\` lists the addresses` });
      continue;
    }
    if (d.sriovTotalVfs === null || d.sriovTotalVfs === undefined) {
      problems.push({
        msg: `expected ${r.address} (${d.id}${d.name ? ` ${d.name}` : ''}) to be SR-IOV capable, found no sriov_totalvfs in ${sysfs(r.address)}`,
        hint: `the device has no SR-IOV capability (or it is off in the firmware setup; a VF has none of its own): \`lspci -vvv -s ${r.address}\` shows "Single Root I/O Virtualization" when it has. SR-IOV capable devices on this host: ${capable(facts)}`,
      });
      continue;
    }
    if (r.numvfs > d.sriovTotalVfs) {
      problems.push({
        msg: `expected at most ${d.sriovTotalVfs} VFs on ${r.address} (its sriov_totalvfs), found a request for ${r.numvfs}`,
        hint: `the kernel refuses more than sriov_totalvfs (ERANGE): set numvfs to ${d.sriovTotalVfs} or less`,
      });
      continue;
    }
    if (r.numvfs !== (d.sriovNumVfs ?? 0) && (d.driver === null || d.driver === 'vfio-pci')) {
      problems.push({
        msg: `expected a host driver bound to ${r.address} (the kernel creates VFs through the PF's driver), found ${d.driver ?? 'no driver'}`,
        hint:
          d.driver === 'vfio-pci'
            ? `${r.address} is bound to vfio-pci (passed through whole): take it out of passthrough_slots/vfio_ids to split it into VFs`
            : `load the PF's driver first (an Intel iGPU needs i915 or xe with SR-IOV, e.g. i915-sriov-dkms): \`lspci -nnk -s ${r.address}\` shows "Kernel driver in use"`,
      });
      continue;
    }
    devices.push(devicePlan(r, d));
  }
  const rebooting = devices.filter((d) => d.action === 'reboot');
  const creating = devices.filter((d) => d.action === 'create');
  return {
    devices,
    problems,
    unit: sriovUnitText(requests),
    applyNow: creating.length > 0 && rebooting.length === 0,
    reboot: rebooting.length > 0,
    rebootReason: rebooting.length
      ? `SR-IOV: ${rebooting.map((d) => `${d.address} ${d.current} → ${d.numvfs} VFs`).join(', ')} (a live count changes only through 0, which removes every VF: done at boot)`
      : '',
  };
}
