/**
 * The preflight checks: run before anything changes on the host. Each refuses with "expected …,
 * found …" and a fix, or passes with what it proved; the data of a pass is what the roles
 * register (`vfio_plan.data.vfioConf`, …).
 */
import { passthroughConfig } from '../config.ts';
import { hugepagesConfig } from '../hugepages.ts';
import { firmwareIommuName, iommuOnByDefault, iommuParams } from '../kernel.ts';
import { fail, noDevices, notIsolatedMsg, pass, tokens, type CheckInput, type CheckResult } from './check.ts';

/** An Intel or AMD CPU with virtualization, and an IOMMU the firmware has not turned off. Data: the IOMMU parameters. */
export function preflightCpu({ facts: f, vars }: CheckInput): CheckResult {
  const required = vars.cpu_virtualization_required === undefined ? true : Boolean(vars.cpu_virtualization_required);
  if (f.cpuVendor === 'other') {
    return fail('expected an Intel or AMD CPU, found another vendor', 'VT-d/AMD-Vi passthrough as set up here needs an x86 Intel or AMD host');
  }
  if (!f.cpuVirtualization && required) {
    return fail(
      `expected the ${f.cpuVendor === 'intel' ? 'vmx' : 'svm'} flag in /proc/cpuinfo, found none`,
      `enable ${f.cpuVendor === 'intel' ? 'Intel VT-x' : 'AMD SVM'} in the firmware setup (a nested host needs it exposed by its hypervisor); set cpu_virtualization_required: false only for a test host that never runs VMs`,
    );
  }
  // No IOMMU unit registered although this kernel turns it on by itself (Intel from 6.8, AMD
  // always) or the running command line asks for it: the firmware has it off. Nothing to change
  // on the host would help, so refuse before changing anything.
  const defaultOn = iommuOnByDefault(f);
  const askedNow = tokens(f.cmdlineRunning).some((t) => t === 'intel_iommu=on' || t.startsWith('amd_iommu='));
  if (!f.iommu.active && !f.iommu.present && (defaultOn || askedNow)) {
    return fail(
      `expected an IOMMU unit (/sys/class/iommu), found none on kernel ${f.kernelRelease}${askedNow ? ' booted with the IOMMU asked on' : ' that turns the IOMMU on by default'}`,
      `the firmware has the IOMMU off or the CPU/board lacks it: enable ${firmwareIommuName(f)} in the firmware setup. No software setting can fix this; nothing was changed.`,
    );
  }
  const iommu = f.iommu.active ? 'IOMMU active' : f.iommu.present ? 'IOMMU unit present, translation not on yet' : 'IOMMU not visible yet (the iommu role turns it on; the gate checks after the reboot)';
  const ip = iommuParams(f, vars);
  return pass(`${f.cpuVendor} CPU, virtualization ${f.cpuVirtualization ? 'on' : 'not exposed (allowed)'}, ${iommu}; ${ip.reason}`, {
    vendor: f.cpuVendor,
    virtualization: f.cpuVirtualization,
    iommuActive: f.iommu.active,
    params: ip.params,
    paramsReason: ip.reason,
  });
}

/** The bootloader the host boots from is known (or set by the `bootloader` variable). */
export function preflightBootloader({ facts: f, vars }: CheckInput): CheckResult {
  const override = typeof vars.bootloader === 'string' && vars.bootloader !== 'auto' ? vars.bootloader : null;
  if (override) return pass(`bootloader ${override} (set by the host variable; detected ${f.bootloader})`, { bootloader: override });
  if (f.bootloader === 'unknown') {
    return fail(
      'expected to know which bootloader the host boots from, found no proof',
      `evidence: ${f.bootloaderEvidence.join('; ') || 'none'}. Check \`proxmox-boot-tool status\` and \`efibootmgr -v\`, then set the host variable bootloader: grub | systemd-boot`,
    );
  }
  return pass(`boots ${f.bootloader} (${f.bootloaderEvidence.join('; ')})`, { bootloader: f.bootloader, evidence: f.bootloaderEvidence });
}

/** The chosen devices exist and `ids=` captures nothing else. Data: the whole passthrough configuration. */
export function preflightDevices({ facts, vars }: CheckInput): CheckResult {
  const p = passthroughConfig(facts, vars);
  const problems = [...p.deviceProblems, ...p.captureProblems];
  if (problems.length > 0) return fail(problems.map((x) => x.msg).join('; '), problems.map((x) => x.hint).join(' '), p);
  return pass(
    `${p.devices.map((d) => `${d.address} ${d.id}${d.driver ? ` (${d.driver})` : ''}`).join(', ')}; ${p.bind === 'ids' ? `ids=${p.ids.join(',')}` : `by address (${p.bindReason})`}${p.notes.length ? `; ${p.notes.join('; ')}` : ''}`,
    p,
  );
}

/** Each chosen device's IOMMU group is isolated, unknown yet, or the ACS override will split it. */
export function preflightIsolation({ facts: f, vars }: CheckInput): CheckResult {
  const p = passthroughConfig(f, vars);
  if (p.devices.length === 0) return noDevices(p);
  if (p.isolated === null) return pass('IOMMU groups unknown until the IOMMU is active: checked again after the reboot', p);
  if (p.isolated) return pass(`isolated: ${p.groups.map((g) => `group ${g.group} = ${g.members.join(' ')}`).join('; ')}`, p);
  if (p.acs.enable) return pass(`not isolated, ACS override will split it: ${p.acs.reason}`, p);
  return fail(
    notIsolatedMsg(p),
    `a group is passed through whole: move the card to another slot, pass the whole group, or set acs_override: auto|on (${p.acs.supported ? 'this kernel supports it' : `kernel ${f.kernelRelease} lacks the ACS override patch; the Proxmox kernel has it`}; it weakens isolation between those devices)`,
    p,
  );
}

/** acs_override: on needs a kernel with the patch. Data: the ACS decision. */
export function preflightAcs({ facts: f, vars }: CheckInput): CheckResult {
  const p = passthroughConfig(f, vars);
  if (p.acs.mode === 'on' && !p.acs.supported) {
    return fail(
      `expected a kernel carrying the ACS override patch (acs_override: on), found ${f.kernelRelease}`,
      'pcie_acs_override= is ignored by kernels without the out-of-tree patch (stock Debian); boot a Proxmox (-pve) kernel, or set acs_override_supported: true if your kernel carries it',
      p.acs,
    );
  }
  return pass(`ACS override ${p.acs.enable ? 'enabled' : 'not enabled'}: ${p.acs.reason}`, p.acs);
}

/** Never fails. Data: the vendor-reset configuration (devices, kernels, packages, udev rules). */
export function preflightVendorReset({ facts, vars }: CheckInput): CheckResult {
  const p = passthroughConfig(facts, vars);
  return pass(`vendor-reset ${p.vendorReset.enable ? 'wanted' : 'not wanted'}: ${p.vendorReset.reason}`, p.vendorReset);
}

/** The hugepages asked for fit under hugepages_max_share of MemTotal. Data: the hugepages configuration. */
export function preflightHugepages({ facts, vars }: CheckInput): CheckResult {
  const h = hugepagesConfig(facts, vars);
  if (h.problem) return fail(h.problem.msg, h.problem.hint, h);
  if (h.mode === 'off') return pass('no hugepages asked (hugepages.count is 0)', h);
  return pass(`${h.count} x ${h.size} = ${(h.requestedKb / 1048576).toFixed(1)} GiB fits under ${Math.round(h.share * 100)}% of MemTotal`, h);
}

/** Docker is installed in the guest (the toolkit configures its runtime). */
export function preflightContainerToolkit({ facts: f }: CheckInput): CheckResult {
  if (!f.docker.installed) {
    return fail('expected docker on this host (the toolkit configures its runtime), found no docker command', 'install Docker Engine in the guest first; the NVIDIA driver must run here too (nvidia-smi)');
  }
  return pass(`docker present, runtimes: ${f.docker.runtimes.join(', ') || 'none listed'}`, f.docker);
}
