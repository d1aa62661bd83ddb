/**
 * The gates: run after the reboot, they prove on the booted kernel that what was configured took
 * effect (command line, IOMMU, isolation, vfio-pci binding, blacklist, vendor-reset, hugepages,
 * the container toolkit), or fail with "expected …, found …" and the likely cause.
 */
import { assignablePlan, parseAssignableOutput, runningVmsUsing, type ProbeFailure } from '../assignable.ts';
import { passthroughConfig } from '../config.ts';
import { modName } from '../drivers.ts';
import { hugepages1gCmdline, hugepagesConfig } from '../hugepages.ts';
import { firmwareIommuName, headersPackage, iommuParams } from '../kernel.ts';
import { bootFile, fail, noDevices, notIsolatedMsg, pass, tokens, type CheckInput, type CheckResult } from './check.ts';

/** Every parameter in `params` is on /proc/cmdline; a parameter only configured means a reboot is pending. */
export function gateCmdline({ facts: f, params }: CheckInput): CheckResult {
  const running = tokens(f.cmdlineRunning);
  const configured = tokens(f.cmdlineConfigured);
  const missing = params.filter((p) => !running.includes(p));
  if (missing.length === 0) return pass(`/proc/cmdline has ${params.join(' ') || 'nothing to check'}`);
  const pending = missing.filter((p) => configured.includes(p));
  const absent = missing.filter((p) => !configured.includes(p));
  const parts = [];
  if (pending.length) parts.push(`${pending.join(' ')} configured but not booted (reboot pending)`);
  if (absent.length) parts.push(`${absent.join(' ')} neither booted nor in ${bootFile(f)}`);
  return {
    ok: false,
    msg: `expected ${missing.join(' ')} in /proc/cmdline, found ${parts.join('; ')}`,
    hint: absent.length
      ? `the host boots ${f.bootloader} (${f.bootloaderEvidence.join('; ')}): was the other bootloader's file edited, or the refresh (update-grub / proxmox-boot-tool refresh) not run?`
      : 'reboot the host (run without --no-reboot), then run the gates again with --tags verify',
    data: { running: f.cmdlineRunning, configured: f.cmdlineConfigured, missing },
    // Everything missing is configured: only the reboot is missing.
    ...(absent.length ? {} : { pending: true }),
  };
}

/** gate-cmdline with the IOMMU parameters this host's kernels need (see iommuParams). */
export function gateIommuCmdline(input: CheckInput): CheckResult {
  return gateCmdline({ ...input, params: iommuParams(input.facts, input.vars).params });
}

/** The IOMMU translates: groups exist on the booted kernel. */
export function gateIommu({ facts: f }: CheckInput): CheckResult {
  if (f.iommu.active) {
    // Proven from the booted kernel (groups and its log), not from the command line: on 6.8+
    // the Intel IOMMU is on without intel_iommu=on.
    const logged = f.iommu.evidence.filter((e) => !e.startsWith('/sys/')).slice(0, 2);
    return pass(`IOMMU active: ${Object.keys(f.iommuGroups).length} groups${f.iommu.irqRemapping ? ', interrupt remapping on' : ''}${logged.length ? `; kernel log: ${logged.join('; ')}` : ''}`, f.iommu);
  }
  const asked = tokens(f.cmdlineRunning).some((t) => t === 'intel_iommu=on' || t.startsWith('iommu=') || t.startsWith('amd_iommu'));
  return fail(
    `expected IOMMU groups in /sys/kernel/iommu_groups, found none${asked ? ` although the kernel booted with ${tokens(f.cmdlineRunning).filter((t) => /iommu/.test(t)).join(' ')}` : ''}`,
    asked
      ? `the firmware has the IOMMU off or the CPU/board lacks it: enable ${firmwareIommuName(f)} in the firmware setup. No software setting can fix this.`
      : 'the IOMMU parameters are not on the running command line: run the iommu role and reboot',
    f.iommu,
  );
}

/** Each chosen device's IOMMU group holds only its own functions and PCI bridges. */
export function gateIsolation({ facts: f, vars }: CheckInput): CheckResult {
  const p = passthroughConfig(f, vars);
  if (p.devices.length === 0) return noDevices(p);
  if (p.isolated === true) return pass(`isolated: ${p.groups.map((g) => `group ${g.group} = ${g.members.join(' ')}`).join('; ')}`);
  if (p.isolated === null) return fail('expected IOMMU groups for the chosen devices, found the IOMMU off', 'see gate-iommu: the IOMMU must be active before groups exist');
  const acsBooted = tokens(f.cmdlineRunning).some((t) => t.startsWith('pcie_acs_override='));
  return fail(
    notIsolatedMsg(p),
    acsBooted
      ? `pcie_acs_override is on the command line but did not split the group: kernel ${f.kernelRelease} may lack the patch, or the devices sit behind one bridge without ACS; use another slot`
      : p.acs.enable
        ? 'the ACS override is wanted now that the groups are known: run apply again (acs-override role), then reboot'
        : 'move the card to another slot, pass the whole group, or set acs_override: auto|on',
  );
}

/** vfio-pci drives every chosen function; every other device with the same id keeps its driver. */
export function gateVfio({ facts: f, vars }: CheckInput): CheckResult {
  const p = passthroughConfig(f, vars);
  if (p.devices.length === 0) return noDevices(p);
  const wrong = p.devices.filter((d) => d.driver !== 'vfio-pci');
  // Devices with a chosen id that were not chosen keep their own driver (the boot display).
  const current = new Map(f.pci.map((d) => [d.address, d]));
  const taken = p.sameId.filter((d) => {
    const drv = current.get(d.address)?.driver ?? null;
    // A boot display without a driver lost its console too (a blacklist of its driver).
    return drv === 'vfio-pci' || (drv === null && d.bootVga);
  });
  const how = p.bind === 'ids' ? `ids=${p.ids.join(',')}` : 'driver_override by address';
  if (wrong.length === 0 && taken.length === 0) {
    const kept = p.sameId.map((d) => `${d.address} on ${current.get(d.address)?.driver}`);
    return pass(`vfio-pci drives ${p.devices.map((d) => d.address).join(', ')} (${how})${kept.length ? `; same id kept: ${kept.join(', ')}` : ''}`, p.devices);
  }
  if (wrong.length === 0) {
    return fail(
      `expected ${taken.map((d) => `${d.address}${d.bootVga ? ' (boot display)' : ''}`).join(', ')} (same id, not chosen) on ${taken.length === 1 ? 'its' : 'their'} own driver, found ${taken.map((d) => current.get(d.address)?.driver ?? 'no driver').join(', ')}`,
      p.bind === 'ids'
        ? 'ids= binds every device with the id: set vfio_bind: address, run apply again and reboot'
        : `something else binds by id (an ids= line in /etc/modprobe.d other than vfio.conf, or a blacklist of the host driver): grep -r vfio-pci /etc/modprobe.d, then update-initramfs -u -k all and reboot`,
      p.devices,
    );
  }
  const loaded = f.modules.includes('vfio_pci');
  return fail(
    `expected vfio-pci in use for ${wrong.map((d) => d.address).join(', ')}, found ${wrong.map((d) => d.driver ?? 'no driver').join(', ')}`,
    !loaded
      ? 'vfio_pci is not loaded: check /etc/modules, then update-initramfs -u -k all and reboot'
      : p.bind === 'address'
        ? `a host driver claimed the device first: check /etc/initramfs-tools/scripts/init-top/passthru-vfio-override is executable and in the initramfs (lsinitramfs /boot/initrd.img-$(uname -r) | grep passthru), cat /sys/bus/pci/devices/${wrong[0].address}/driver_override, run update-initramfs -u -k all, reboot`
        : `a host driver claimed the device first: check the softdep/blacklist lines in /etc/modprobe.d, run update-initramfs -u -k all, reboot (lspci -nnk -s ${wrong[0].address} shows the driver)`,
    p.devices,
  );
}

/** What each step of the VFIO probe is, for messages. */
const VFIO_STEP: Record<string, string> = {
  open: 'open',
  version: 'VFIO_GET_API_VERSION',
  extension: 'VFIO_CHECK_EXTENSION(VFIO_TYPE1_IOMMU)',
  container: 'open /dev/vfio/vfio',
  status: 'VFIO_GROUP_GET_STATUS',
  viable: 'VFIO_GROUP_GET_STATUS',
  'set-container': 'VFIO_GROUP_SET_CONTAINER',
  'set-iommu': 'VFIO_SET_IOMMU(VFIO_TYPE1_IOMMU)',
  'get-device-fd': 'VFIO_GROUP_GET_DEVICE_FD',
};
const failed = (x: ProbeFailure): string => `${VFIO_STEP[x.step] ?? x.step} failed: ${x.errno === '-' ? '' : `${x.errno} `}${x.text}`.trim();

/**
 * When asked (`vfio_assignable_gate`): each chosen function's IOMMU group is viable and the VFIO
 * sequence a VM start runs succeeds on the host (src/passthrough/assignable.ts: the container,
 * the group in it with the type1 IOMMU, a device fd per chosen function). A group a running VM
 * of this node uses is busy (EBUSY) and counts as proven by that VM.
 */
export function gateAssignable({ facts: f, vars, vfioProbe }: CheckInput): CheckResult {
  const p = passthroughConfig(f, vars);
  if (p.devices.length === 0) return noDevices(p);
  if (!f.iommu.active) return fail('expected IOMMU groups for the chosen devices, found the IOMMU off', 'see gate-iommu: the IOMMU must be active before a device can be assigned');
  const a = assignablePlan(f, p);
  const groupText = (g: number) => (f.iommuGroups[String(g)] ?? []).map((m) => `${m} (${f.pci.find((d) => d.address === m)?.driver ?? 'no driver'})`).join(', ');
  if (a.ungrouped.length) {
    return fail(`expected an IOMMU group for ${a.ungrouped.join(', ')}, found none`, 'a device outside every IOMMU group cannot be assigned: check gate-iommu and dmesg | grep -i -e DMAR -e AMD-Vi', a);
  }
  if (a.notOnVfio.length) {
    return fail(
      `expected ${a.notOnVfio.map((d) => d.address).join(', ')} on vfio-pci before a VM can take ${a.notOnVfio.length === 1 ? 'it' : 'them'}, found ${a.notOnVfio.map((d) => d.driver ?? 'no driver').join(', ')}`,
      'see gate-vfio: the binding did not take effect on the booted kernel',
      a,
    );
  }
  if (a.blockers.length) {
    const groups = [...new Set(a.blockers.map((b) => b.group))];
    return fail(
      `expected IOMMU group ${groups.join(', ')} viable (every device in it on vfio-pci, pci-stub, a PCIe port or no driver), found ${a.blockers.map((b) => `${b.address} bound to ${b.driver}`).join(', ')}`,
      'a VM takes a whole IOMMU group: pass those devices too (passthrough_slots), move the card to another slot, or split the group (acs_override: auto|on)',
      a,
    );
  }
  if (!vfioProbe) return fail('expected the VFIO probe to have run, found no output', 'passthrough_check reads the probe for gate-assignable: run the gate through the vfio role', a);
  const out = parseAssignableOutput(vfioProbe.stdout);
  const data = { targets: a.targets, probe: out };
  if (!out.done) {
    const why = [vfioProbe.stderr.trim().split('\n').slice(-1)[0], ...out.other].filter(Boolean).join('; ') || 'no output';
    return fail(
      `expected the VFIO probe (perl) to finish, found exit ${vfioProbe.code}: ${why}`,
      vfioProbe.code === 127 ? 'perl is missing: perl-base is Essential on Debian and Proxmox VE (apt-get install --reinstall perl-base)' : 'run it by hand to see more: see README, "The assignable gate"',
      data,
    );
  }
  if (!out.api?.ok) {
    const x = out.api?.failure ?? { step: 'open', errno: '-', text: 'no answer' };
    return fail(
      `expected the VFIO container /dev/vfio/vfio with API 0 and the type1 IOMMU, found ${x.step === 'open' ? `open /dev/vfio/vfio failed: ${x.errno} ${x.text}` : failed(x)}`,
      x.errno === 'ENOENT' ? 'the vfio modules are not loaded: check /etc/modules (vfio, vfio_iommu_type1, vfio_pci), lsmod | grep vfio; modprobe vfio_pci shows the error' : 'lsmod | grep vfio and dmesg | grep -i vfio show the kernel side',
      data,
    );
  }
  const problems: string[] = [];
  const hints: string[] = [];
  const proven: string[] = [];
  const node = typeof vars.pve_node === 'string' && vars.pve_node ? vars.pve_node : f.hostname;
  for (const t of a.targets) {
    const g = out.groups.find((x) => x.group === t.group);
    const dev = `/dev/vfio/${t.group}`;
    if (!g) {
      problems.push(`no answer for group ${t.group}`);
      hints.push('the probe stopped early: run it by hand');
      continue;
    }
    const x = g.failure;
    if (x) {
      if (x.step === 'open' && x.errno === 'ENOENT') {
        problems.push(`no ${dev} for IOMMU group ${t.group} (ENOENT)`);
        hints.push(`vfio-pci does not hold group ${t.group}: ${dev} appears once vfio-pci drives its devices (see gate-vfio; lspci -nnk -s ${t.devices[0]}; ls /dev/vfio)`);
      } else if (x.step === 'open' && x.errno === 'EBUSY') {
        const vms = runningVmsUsing(f, f.iommuGroups[String(t.group)] ?? t.devices, node);
        if (vms.length) {
          proven.push(`group ${t.group} held by running VM ${vms.join(', ')} (${dev} busy, as expected while a VM uses it)`);
          continue;
        }
        problems.push(`${dev} busy (EBUSY): another process holds IOMMU group ${t.group}`);
        hints.push(`expected while a VM uses the device: a running VM holds its group (qm list; fuser -v ${dev}); stop it and run the gates again (--tags verify)`);
      } else if (x.step === 'viable') {
        problems.push(`IOMMU group ${t.group} not viable by the kernel (${x.text.replace(/: not viable$/, '')}): ${groupText(t.group)}`);
        hints.push('every device of the group must be on vfio-pci, pci-stub, a PCIe port driver or no driver: pass the whole group, or split it (acs_override)');
      } else if (x.step === 'set-iommu' && x.errno === 'EPERM') {
        problems.push(`group ${t.group}: ${failed(x)}`);
        hints.push('vfio_iommu_type1 refuses without interrupt remapping (dmesg: "No interrupt remapping support"): enable it in the firmware (VT-d/AMD-Vi with x2APIC), or accept the risk with options vfio_iommu_type1 allow_unsafe_interrupts=1');
      } else {
        problems.push(`group ${t.group}: ${failed(x)}`);
        hints.push(`dmesg | grep -i vfio shows the kernel's reason`);
      }
      continue;
    }
    const bad = t.devices.map((addr) => ({ addr, d: g.devices.find((d) => d.address === addr) })).filter((x) => !x.d?.ok);
    if (bad.length) {
      problems.push(bad.map((b) => `${b.addr}: ${b.d?.failure ? failed(b.d.failure) : 'no answer'}`).join('; '));
      hints.push(`vfio-pci refused the device: dmesg | grep -i vfio shows why (a failed reset, a device fd already open elsewhere: EBUSY)`);
      continue;
    }
    proven.push(`group ${t.group} viable, set in a type1 container, device fds opened for ${t.devices.join(', ')}`);
  }
  if (problems.length) {
    return fail(`expected each chosen IOMMU group to open as a VM start opens it, found ${problems.join('; ')}`, [...new Set(hints)].join('; '), data);
  }
  return pass(`assignable (VFIO API ${out.api.version}): ${proven.join('; ')}`, data);
}

/** No blacklisted module is loaded. */
export function gateBlacklist({ facts: f, vars }: CheckInput): CheckResult {
  const p = passthroughConfig(f, vars);
  const loaded = new Set(f.modules.map(modName));
  const bad = p.blacklist.filter((m) => loaded.has(modName(m)));
  if (bad.length === 0) return pass(`not loaded: ${p.blacklist.join(', ') || '(nothing blacklisted)'}`);
  return fail(
    `expected ${bad.join(', ')} not loaded, found ${bad.length === 1 ? 'it' : 'them'} in /proc/modules`,
    'the blacklist is read from the initramfs too: run update-initramfs -u -k all and reboot; a module pulled in as a dependency needs `install <name> /bin/false`',
  );
}

/** When wanted: vendor-reset built for every installed kernel, loaded, and device_specific reset on its devices. */
export function gateVendorReset({ facts: f, vars }: CheckInput): CheckResult {
  const vr = passthroughConfig(f, vars).vendorReset;
  if (!vr.enable) return pass(`vendor-reset not needed: ${vr.reason}`);
  const dkms = f.dkms['vendor-reset'] ?? [];
  // Every installed kernel, the next boot's above all: a kernel upgrade must not lose the module.
  const lacking = vr.kernels.filter((k) => !dkms.includes(k));
  if (lacking.length > 0) {
    const which = lacking.map((k) => `${k}${k === f.kernelRelease ? ' (running)' : ''}${k === f.kernelNext && k !== f.kernelRelease ? ' (boots next)' : ''}`);
    return fail(
      `expected vendor-reset built by DKMS for every installed kernel, found ${which.join(', ')} without it (builds: ${dkms.length ? dkms.join(', ') : 'none'})`,
      `its DKMS build often breaks on new kernels: install ${lacking.map((k) => headersPackage(f, k)).join(' ')}, run \`dkms autoinstall -k ${lacking[0]}\` and read /var/lib/dkms/vendor-reset/*/build/make.log; or run apply again`,
    );
  }
  if (!f.modules.includes('vendor_reset')) {
    return fail('expected the vendor_reset module loaded, found it missing from /proc/modules', 'list vendor-reset in /etc/modules and reboot; `modprobe vendor-reset` shows the error (e.g. a rejected key under Secure Boot)');
  }
  const byAddr = new Map(f.pci.map((d) => [d.address, d]));
  const wrong = vr.devices.filter((d) => !(byAddr.get(d.address)?.resetMethod ?? []).includes('device_specific'));
  if (wrong.length > 0) {
    return fail(
      `expected reset_method device_specific for ${wrong.map((d) => d.address).join(', ')}, found ${wrong.map((d) => byAddr.get(d.address)?.resetMethod.join(' ') || 'none').join(', ')}`,
      'on kernels >= 5.15 vendor-reset only acts through the device_specific reset method: check /etc/udev/rules.d/99-vendor-reset.rules and reboot',
    );
  }
  return pass(`vendor-reset loaded on ${f.kernelRelease}, built for ${vr.kernels.join(', ')}; device_specific reset on ${vr.devices.map((d) => d.address).join(', ')}`);
}

/** The default hugepage size and HugePages_Total are what was asked. */
export function gateHugepages({ facts: f, vars }: CheckInput): CheckResult {
  const h = hugepagesConfig(f, vars);
  if (h.problem) return fail(h.problem.msg, h.problem.hint);
  if (h.mode === 'off') return pass('no hugepages asked');
  const m = f.memory;
  if (m.hugepageSizeKb !== h.sizeKb) {
    return fail(
      `expected the default hugepage size ${h.size}, found ${m.hugepageSizeKb} kB`,
      h.size === '1G' ? 'default_hugepagesz=1G must be on the booted command line: check gate-cmdline, reboot' : 'remove default_hugepagesz= from the kernel command line',
    );
  }
  if (m.hugepagesTotal !== h.count) {
    return fail(
      `expected HugePages_Total ${h.count} (${h.size}), found ${m.hugepagesTotal}`,
      m.hugepagesTotal < h.count
        ? h.mode === 'runtime'
          ? 'memory too fragmented to reserve them at runtime: reboot (sysctl.d applies early), or use 1G pages reserved at boot'
          : 'not enough contiguous memory at boot, or the hugepages= parameter did not boot: check /proc/cmdline'
        : 'something else reserves hugepages (another sysctl.d file or kernel parameter)',
    );
  }
  return pass(`HugePages_Total ${m.hugepagesTotal} x ${h.size} (${m.hugepagesFree} free)`);
}

// ---------------------------------------------------------------- after an undo (passthrough: absent)

const keyOf = (p: string): string => (p.includes('=') ? p.slice(0, p.indexOf('=')) : p);

/**
 * Undo: no kernel parameter of the kinds passthru adds (IOMMU, ACS override, 1G hugepages) is on
 * the booted command line unless the configured one still has it (a parameter the user had before
 * passthru stays in both). One that is only booted is a reboot pending.
 */
export function gateUndoneCmdline({ facts: f, vars }: CheckInput): CheckResult {
  const acs = Array.isArray(vars.acs_override_params) ? (vars.acs_override_params as unknown[]).map(String) : ['pcie_acs_override=downstream,multifunction'];
  const keys = new Set([...iommuParams(f, vars).params, 'intel_iommu=on', ...acs, ...hugepages1gCmdline(0)].map(keyOf));
  const configured = tokens(f.cmdlineConfigured);
  const left = tokens(f.cmdlineRunning).filter((t) => keys.has(keyOf(t)) && !configured.includes(t));
  if (left.length === 0) {
    const kept = tokens(f.cmdlineRunning).filter((t) => keys.has(keyOf(t)));
    return pass(`/proc/cmdline has no parameter passthru added${kept.length ? ` (kept, configured by the user: ${kept.join(' ')})` : ''}`);
  }
  return {
    ok: false,
    msg: `expected ${left.join(' ')} off /proc/cmdline (no longer in ${bootFile(f)}), found ${left.length === 1 ? 'it' : 'them'} still booted`,
    hint: 'reboot the host (run without --no-reboot); if it stays, the bootloader was not refreshed: run update-grub or proxmox-boot-tool refresh',
    data: { running: f.cmdlineRunning, configured: f.cmdlineConfigured, left },
    pending: true,
  };
}

/** Undo: no chosen function is on vfio-pci any more (back on its own driver, or on none). */
export function gateUndoneDrivers({ facts: f, vars }: CheckInput): CheckResult {
  const p = passthroughConfig(f, vars);
  if (p.devices.length === 0) return pass(`no chosen device on this host${p.deviceProblems.length ? ` (${p.deviceProblems.map((x) => x.msg).join('; ')})` : ''}`);
  const still = p.devices.filter((d) => d.driver === 'vfio-pci');
  const drivers = p.devices.map((d) => `${d.address} on ${d.driver ?? 'no driver'}`).join(', ');
  if (still.length === 0) return pass(`off vfio-pci: ${drivers}`, p.devices.map((d) => ({ address: d.address, driver: d.driver })));
  return fail(
    `expected ${still.map((d) => d.address).join(', ')} back on ${still.length === 1 ? 'its' : 'their'} own driver, found vfio-pci`,
    `reboot the host (the initramfs decides the binding at boot); if it stays, something else binds it: grep -r vfio /etc/modprobe.d /etc/modules /etc/initramfs-tools, cat /sys/bus/pci/devices/${still[0].address}/driver_override, update-initramfs -u -k all`,
    p.devices.map((d) => ({ address: d.address, driver: d.driver })),
  );
}

/** In the guest: nvidia-container-toolkit installed, docker's nvidia runtime, and a working nvidia-smi. */
export function gateContainerToolkit({ facts: f, nvidiaSmi: smi, nvidiaCtk: ctk }: CheckInput): CheckResult {
  const problems: string[] = [];
  const hints: string[] = [];
  if (!f.packages['nvidia-container-toolkit'] && !(ctk && ctk.code === 0)) {
    problems.push('nvidia-container-toolkit not installed');
    hints.push('check the apt source /etc/apt/sources.list.d/nvidia-container-toolkit.list and its keyring');
  }
  if (!f.docker.runtimes.includes('nvidia')) {
    problems.push(`docker runtimes ${f.docker.runtimes.join(', ') || 'none'} (no nvidia)`);
    hints.push('run `nvidia-ctk runtime configure --runtime=docker` and restart docker');
  }
  if (smi && smi.code !== 0) {
    problems.push(`nvidia-smi failed (${(smi.stderr || smi.stdout).trim().split('\n')[0] || `exit ${smi.code}`})`);
    hints.push('the NVIDIA driver does not run in this guest: install it, check the GPU is passed through (lspci)');
  }
  if (problems.length) return fail(`expected nvidia-ctk, docker's nvidia runtime and a working nvidia-smi, found ${problems.join('; ')}`, hints.join('; '));
  return pass(`nvidia-container-toolkit ${f.packages['nvidia-container-toolkit'] ?? ''} with docker runtime nvidia${smi ? ', nvidia-smi works' : ''}`.trim());
}
