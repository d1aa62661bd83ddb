/**
 * The text of the files the roles write: /etc/modprobe.d/vfio.conf (`options vfio-pci`, softdep
 * lines), the blacklist file, the initramfs init-top script that binds by address
 * (driver_override), and the udev rules that set reset_method for vendor-reset. Pure: decisions
 * in, file content out.
 */
import type { PciDevice } from '../facts/types.ts';
import { uniq } from './vars.ts';

/** Name of the init-top script (under /etc/initramfs-tools/scripts/init-top/) that binds by address. */
export const OVERRIDE_SCRIPT_NAME = 'passthru-vfio-override';

/**
 * Per-device binding: an initramfs-tools init-top script that writes `vfio-pci` to
 * `driver_override` of exactly the chosen functions.
 *
 * Why this mechanism (on Proxmox kernels): driver_override must be set before the host driver
 * probes the device. init-top scripts run first in the initramfs, before local-top and the root
 * mount, so before the real root's udev ever loads nouveau/amdgpu/snd_hda_intel. A udev rule in
 * /etc/udev/rules.d is not copied into the initramfs (the udev hook takes a fixed list of rules),
 * so it comes too late whenever the GPU driver is in the initramfs; a modprobe `install` rule
 * depends on the driver being a module loaded through modprobe and makes every later load of
 * that driver run a shell. init-top is the one place that runs early on every kernel the
 * initramfs is built for (`update-initramfs -u -k all`). initramfs-tools orders init-top scripts
 * with tsort, so this one may still run after the initramfs udev coldplug: when a host driver
 * already holds a chosen function, the script unbinds it and asks the kernel to re-probe, and
 * driver_override then leaves vfio-pci as the only driver that may take it (vfio-pci loads from
 * /etc/modules, or earlier through the softdep lines). Other devices with the same
 * vendor:device pair are never touched.
 */
export function overrideScriptText(chosen: Array<Pick<PciDevice, 'address' | 'id' | 'name'>>): string {
  const lines = [
    '#!/bin/sh',
    '# Managed by passthru: bind exactly these PCI functions to vfio-pci (driver_override),',
    '# before their host drivers; other devices with the same vendor:device keep their driver.',
    'PREREQ=""',
    'prereqs() { echo "$PREREQ"; }',
    'case "$1" in',
    'prereqs) prereqs; exit 0 ;;',
    'esac',
  ];
  for (const d of chosen) {
    lines.push(`# ${d.address} [${d.id}] ${d.name.replace(/[^\x20-\x7e]/g, '?')}`);
    lines.push(`[ -e /sys/bus/pci/devices/${d.address} ] && echo vfio-pci > /sys/bus/pci/devices/${d.address}/driver_override`);
  }
  lines.push(
    '# A host driver that probed first lets go; driver_override leaves only vfio-pci.',
    `for d in ${chosen.map((d) => d.address).join(' ')}; do`,
    '  p=/sys/bus/pci/devices/$d',
    '  if [ -e "$p/driver" ] && [ ! -e "/sys/bus/pci/drivers/vfio-pci/$d" ]; then',
    '    echo "$d" > "$p/driver/unbind"',
    '    echo "$d" > /sys/bus/pci/drivers_probe',
    '  fi',
    'done',
    'exit 0',
  );
  return lines.join('\n') + '\n';
}

/**
 * /etc/modprobe.d/vfio.conf: `options vfio-pci ids=… disable_vga=1` (ids only when binding by
 * ids) and a `softdep NAME pre: vfio-pci` line per driver to keep away; '' when nothing is chosen.
 */
export function vfioConfText(o: { bind: 'ids' | 'address'; ids: string[]; disableVga: boolean; softdeps: string[] }): string {
  if (o.ids.length === 0) return '';
  const options = o.bind === 'ids' ? [`ids=${o.ids.join(',')}`, ...(o.disableVga ? ['disable_vga=1'] : [])] : o.disableVga ? ['disable_vga=1'] : [];
  return (
    (o.bind === 'ids'
      ? '# Managed by passthru: bind the chosen devices to vfio-pci before their host drivers.\n'
      : `# Managed by passthru: the chosen devices are bound by address (${OVERRIDE_SCRIPT_NAME} in the initramfs), not by vendor:device.\n`) +
    (options.length ? `options vfio-pci ${options.join(' ')}\n` : '') +
    o.softdeps.map((m) => `softdep ${m} pre: vfio-pci\n`).join('')
  );
}

/** The blacklist file: one `blacklist NAME` line per module; '' when there is none. */
export function blacklistConfText(blacklist: string[]): string {
  return blacklist.length ? '# Managed by passthru: host drivers kept off the devices passed through.\n' + blacklist.map((m) => `blacklist ${m}\n`).join('') : '';
}

/** udev rules that set `reset_method` to device_specific for each vendor:device id; '' for none. */
export function resetMethodUdevRules(ids: string[]): string {
  if (ids.length === 0) return '';
  return (
    '# Managed by passthru: vendor-reset only acts when the reset method is device_specific (kernel >= 5.15).\n' +
    uniq(ids)
      .map((id) => {
        const [v, dv] = id.split(':');
        return `ACTION=="add", SUBSYSTEM=="pci", ATTR{vendor}=="0x${v}", ATTR{device}=="0x${dv}", RUN+="/bin/sh -c 'echo device_specific > /sys$env{DEVPATH}/reset_method'"`;
      })
      .join('\n') +
    '\n'
  );
}
