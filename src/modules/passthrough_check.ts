/**
 * passthrough_check: the preflight checks (before anything changes) and the gates (after the
 * reboot, on the booted kernel) of GPU passthrough. Read-only: it judges the host's facts and
 * variables (`passthrough_slots`, `vfio_ids`, `acs_override`, `vendor_reset`, `hugepages`, …),
 * and passes with what it proved (`noop`, its data registered for the role's later tasks) or
 * fails with "expected …, found …" and the likely cause and fix.
 */
import type { Facts } from '../facts/types.ts';
import { headersPackage, kernelAtLeast, planDevices, planHugepages, switchMode, type PassthroughVars } from '../facts/devices.ts';
import type { Module, Plan, PlanContext } from './contract.ts';

export const CHECKS = [
  'preflight-cpu',
  'preflight-bootloader',
  'preflight-devices',
  'preflight-isolation',
  'preflight-acs',
  'preflight-vendor-reset',
  'preflight-hugepages',
  'preflight-container-toolkit',
  'gate-cmdline',
  'gate-iommu-cmdline',
  'gate-iommu',
  'gate-isolation',
  'gate-vfio',
  'gate-blacklist',
  'gate-vendor-reset',
  'gate-hugepages',
  'gate-container-toolkit',
] as const;

export type CheckName = (typeof CHECKS)[number];

export interface PassthroughCheckArgs {
  check: CheckName;
  /** gate-cmdline: parameters that must be on the running kernel's command line. */
  params: string[];
}

const pass = (reason: string, data?: unknown): Plan => ({ kind: 'noop', reason, data });
const fail = (msg: string, hint: string, data?: unknown): Plan => ({ kind: 'fail', msg, hint, data });
const norm = (m: string) => m.replace(/-/g, '_');
const tokens = (line: string) => line.split(/\s+/).filter(Boolean);

function pvars(ctx: PlanContext): PassthroughVars {
  return ctx.vars as PassthroughVars;
}

function bootFile(facts: Facts): string {
  return facts.bootloader === 'systemd-boot' ? '/etc/kernel/cmdline' : '/etc/default/grub (GRUB_CMDLINE_LINUX_DEFAULT)';
}

/**
 * The IOMMU parameters for the kernel command line, kernel-aware. Intel: `intel_iommu=on` only
 * while some kernel that may boot (the running one, the next one, any installed one) is older
 * than 6.8: from 6.8 the Intel IOMMU is on by default (pve-docs qm-pci-passthrough), so on a host
 * whose every kernel is 6.8+ the parameter changes nothing and is not written; with an older
 * kernel still installed (a fallback boot entry) it is written, or that kernel boots without an
 * IOMMU. `intel_iommu_on: always | never` overrides the choice. AMD: the IOMMU is on by default.
 */
export function iommuParams(f: Facts, vars: Record<string, unknown>): { params: string[]; reason: string } {
  const list = (v: unknown, d: string[]) => (Array.isArray(v) ? v.map(String) : typeof v === 'string' && v.trim() ? v.split(/[,\s]+/).filter(Boolean) : d);
  if (f.cpuVendor !== 'intel') return { params: list(vars.iommu_params_amd, ['iommu=pt']), reason: 'AMD: the IOMMU is on by default when the firmware enables it' };
  const base = list(vars.iommu_params_intel, ['iommu=pt']);
  const mode = { on: 'always', off: 'never', auto: 'auto' }[switchMode(vars.intel_iommu_on, { on: 'always', off: 'never' })];
  const kernels = [...new Set([f.kernelRelease, f.kernelNext, ...f.kernelsInstalled].filter(Boolean))];
  const old = kernels.filter((k) => !kernelAtLeast(k, '6.8.0'));
  const want = mode === 'always' || (mode === 'auto' && old.length > 0);
  const params = want ? ['intel_iommu=on', ...base.filter((p) => p !== 'intel_iommu=on')] : base;
  const reason =
    mode !== 'auto'
      ? `intel_iommu_on: ${mode}`
      : want
        ? `intel_iommu=on: ${old.join(', ')} ${old.length === 1 ? 'is' : 'are'} older than 6.8 (the Intel IOMMU is off by default there)`
        : `no intel_iommu=on: every kernel (${kernels.join(', ')}) is 6.8 or newer, where the Intel IOMMU is on by default`;
  return { params, reason };
}

export function runCheck(args: PassthroughCheckArgs, facts: Facts, vars: PassthroughVars & Record<string, unknown>, extra: { nvidiaSmi?: { code: number; stdout: string; stderr: string }; nvidiaCtk?: { code: number; stdout: string; stderr: string } } = {}): Plan {
  const f = facts;
  switch (args.check) {
    case 'preflight-cpu': {
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
      const defaultOn = f.cpuVendor === 'amd' || kernelAtLeast(f.kernelVersion, '6.8.0');
      const askedNow = tokens(f.cmdlineRunning).some((t) => t === 'intel_iommu=on' || t.startsWith('amd_iommu='));
      if (!f.iommu.active && !f.iommu.present && (defaultOn || askedNow)) {
        return fail(
          `expected an IOMMU unit (/sys/class/iommu), found none on kernel ${f.kernelRelease}${askedNow ? ' booted with the IOMMU asked on' : ' that turns the IOMMU on by default'}`,
          `the firmware has the IOMMU off or the CPU/board lacks it: enable ${f.cpuVendor === 'amd' ? 'AMD-Vi/IOMMU (and SVM)' : 'VT-d'} in the firmware setup. No software setting can fix this; nothing was changed.`,
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
    case 'preflight-bootloader': {
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
    case 'preflight-devices': {
      const p = planDevices(f, vars);
      const problems = [...p.deviceProblems, ...p.captureProblems];
      if (problems.length > 0) return fail(problems.map((x) => x.msg).join('; '), problems.map((x) => x.hint).join(' '), p);
      return pass(
        `${p.devices.map((d) => `${d.address} ${d.id}${d.driver ? ` (${d.driver})` : ''}`).join(', ')}; ${p.bind === 'ids' ? `ids=${p.ids.join(',')}` : `by address (${p.bindReason})`}${p.notes.length ? `; ${p.notes.join('; ')}` : ''}`,
        p,
      );
    }
    case 'preflight-isolation': {
      const p = planDevices(f, vars);
      if (p.devices.length === 0) return fail(p.deviceProblems.map((x) => x.msg).join('; ') || 'expected chosen devices, found none', p.deviceProblems.map((x) => x.hint).join(' '));
      if (p.isolated === null) return pass('IOMMU groups unknown until the IOMMU is active: checked again after the reboot', p);
      if (p.isolated) return pass(`isolated: ${p.groups.map((g) => `group ${g.group} = ${g.members.join(' ')}`).join('; ')}`, p);
      if (p.acs.enable) return pass(`not isolated, ACS override will split it: ${p.acs.reason}`, p);
      const bad = p.groups.filter((g) => !g.isolated);
      return fail(
        `expected each chosen device's IOMMU group to hold only its own functions and PCI bridges, found ${bad.map((g) => `group ${g.group} also holding ${g.foreign.join(', ')}`).join('; ')}`,
        `a group is passed through whole: move the card to another slot, pass the whole group, or set acs_override: auto|on (${p.acs.supported ? 'this kernel supports it' : `kernel ${f.kernelRelease} lacks the ACS override patch; the Proxmox kernel has it`}; it weakens isolation between those devices)`,
        p,
      );
    }
    case 'preflight-acs': {
      const p = planDevices(f, vars);
      if (p.acs.mode === 'on' && !p.acs.supported) {
        return fail(
          `expected a kernel carrying the ACS override patch (acs_override: on), found ${f.kernelRelease}`,
          'pcie_acs_override= is ignored by kernels without the out-of-tree patch (stock Debian); boot a Proxmox (-pve) kernel, or set acs_override_supported: true if your kernel carries it',
          p.acs,
        );
      }
      return pass(`ACS override ${p.acs.enable ? 'enabled' : 'not enabled'}: ${p.acs.reason}`, p.acs);
    }
    case 'preflight-vendor-reset': {
      const p = planDevices(f, vars);
      return pass(`vendor-reset ${p.vendorReset.enable ? 'wanted' : 'not wanted'}: ${p.vendorReset.reason}`, p.vendorReset);
    }
    case 'preflight-hugepages': {
      const h = planHugepages(f, vars);
      if (h.problem) return fail(h.problem.msg, h.problem.hint, h);
      if (h.mode === 'off') return pass('no hugepages asked (hugepages.count is 0)', h);
      return pass(`${h.count} x ${h.size} = ${(h.requestedKb / 1048576).toFixed(1)} GiB fits under ${Math.round(h.share * 100)}% of MemTotal`, h);
    }
    case 'preflight-container-toolkit': {
      if (!f.docker.installed) {
        return fail('expected docker on this host (the toolkit configures its runtime), found no docker command', 'install Docker Engine in the guest first; the NVIDIA driver must run here too (nvidia-smi)');
      }
      return pass(`docker present, runtimes: ${f.docker.runtimes.join(', ') || 'none listed'}`, f.docker);
    }
    case 'gate-iommu-cmdline':
    case 'gate-cmdline': {
      if (args.check === 'gate-iommu-cmdline') args = { ...args, params: iommuParams(f, vars).params };
      const running = tokens(f.cmdlineRunning);
      const configured = tokens(f.cmdlineConfigured);
      const missing = args.params.filter((p) => !running.includes(p));
      if (missing.length === 0) return pass(`/proc/cmdline has ${args.params.join(' ') || 'nothing to check'}`);
      const pending = missing.filter((p) => configured.includes(p));
      const absent = missing.filter((p) => !configured.includes(p));
      const parts = [];
      if (pending.length) parts.push(`${pending.join(' ')} configured but not booted (reboot pending)`);
      if (absent.length) parts.push(`${absent.join(' ')} neither booted nor in ${bootFile(f)}`);
      const plan = fail(
        `expected ${missing.join(' ')} in /proc/cmdline, found ${parts.join('; ')}`,
        absent.length
          ? `the host boots ${f.bootloader} (${f.bootloaderEvidence.join('; ')}): was the other bootloader's file edited, or the refresh (update-grub / proxmox-boot-tool refresh) not run?`
          : 'reboot the host (run without --no-reboot), then run the gates again with --tags verify',
        { running: f.cmdlineRunning, configured: f.cmdlineConfigured, missing },
      );
      return absent.length || plan.kind !== 'fail' ? plan : { ...plan, pending: true };
    }
    case 'gate-iommu': {
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
          ? `the firmware has the IOMMU off or the CPU/board lacks it: enable ${f.cpuVendor === 'amd' ? 'AMD-Vi/IOMMU (and SVM)' : 'VT-d'} in the firmware setup. No software setting can fix this.`
          : 'the IOMMU parameters are not on the running command line: run the iommu role and reboot',
        f.iommu,
      );
    }
    case 'gate-isolation': {
      const p = planDevices(f, vars);
      if (p.devices.length === 0) return fail(p.deviceProblems.map((x) => x.msg).join('; ') || 'expected chosen devices, found none', p.deviceProblems.map((x) => x.hint).join(' '));
      if (p.isolated === true) return pass(`isolated: ${p.groups.map((g) => `group ${g.group} = ${g.members.join(' ')}`).join('; ')}`);
      if (p.isolated === null) return fail('expected IOMMU groups for the chosen devices, found the IOMMU off', 'see gate-iommu: the IOMMU must be active before groups exist');
      const bad = p.groups.filter((g) => !g.isolated);
      const acsBooted = tokens(f.cmdlineRunning).some((t) => t.startsWith('pcie_acs_override='));
      return fail(
        `expected each chosen device's IOMMU group to hold only its own functions and PCI bridges, found ${bad.map((g) => `group ${g.group} also holding ${g.foreign.join(', ')}`).join('; ')}`,
        acsBooted
          ? `pcie_acs_override is on the command line but did not split the group: kernel ${f.kernelRelease} may lack the patch, or the devices sit behind one bridge without ACS; use another slot`
          : p.acs.enable
            ? 'the ACS override is wanted now that the groups are known: run apply again (acs-override role), then reboot'
            : 'move the card to another slot, pass the whole group, or set acs_override: auto|on',
      );
    }
    case 'gate-vfio': {
      const p = planDevices(f, vars);
      if (p.devices.length === 0) return fail(p.deviceProblems.map((x) => x.msg).join('; ') || 'expected chosen devices, found none', p.deviceProblems.map((x) => x.hint).join(' '));
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
    case 'gate-blacklist': {
      const p = planDevices(f, vars);
      const loaded = new Set(f.modules.map(norm));
      const bad = p.blacklist.filter((m) => loaded.has(norm(m)));
      if (bad.length === 0) return pass(`not loaded: ${p.blacklist.join(', ') || '(nothing blacklisted)'}`);
      return fail(
        `expected ${bad.join(', ')} not loaded, found ${bad.length === 1 ? 'it' : 'them'} in /proc/modules`,
        'the blacklist is read from the initramfs too: run update-initramfs -u -k all and reboot; a module pulled in as a dependency needs `install <name> /bin/false`',
      );
    }
    case 'gate-vendor-reset': {
      const p = planDevices(f, vars);
      const vr = p.vendorReset;
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
    case 'gate-hugepages': {
      const h = planHugepages(f, vars);
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
    case 'gate-container-toolkit': {
      const problems: string[] = [];
      const hints: string[] = [];
      const ctk = extra.nvidiaCtk;
      if (!f.packages['nvidia-container-toolkit'] && !(ctk && ctk.code === 0)) {
        problems.push('nvidia-container-toolkit not installed');
        hints.push('check the apt source /etc/apt/sources.list.d/nvidia-container-toolkit.list and its keyring');
      }
      if (!f.docker.runtimes.includes('nvidia')) {
        problems.push(`docker runtimes ${f.docker.runtimes.join(', ') || 'none'} (no nvidia)`);
        hints.push('run `nvidia-ctk runtime configure --runtime=docker` and restart docker');
      }
      const smi = extra.nvidiaSmi;
      if (smi && smi.code !== 0) {
        problems.push(`nvidia-smi failed (${(smi.stderr || smi.stdout).trim().split('\n')[0] || `exit ${smi.code}`})`);
        hints.push('the NVIDIA driver does not run in this guest: install it, check the GPU is passed through (lspci)');
      }
      if (problems.length) return fail(`expected nvidia-ctk, docker's nvidia runtime and a working nvidia-smi, found ${problems.join('; ')}`, hints.join('; '));
      return pass(`nvidia-container-toolkit ${f.packages['nvidia-container-toolkit'] ?? ''} with docker runtime nvidia${smi ? ', nvidia-smi works' : ''}`.trim());
    }
    default: {
      const never: never = args.check;
      return fail(`unknown check ${String(never)}`, `one of: ${CHECKS.join(', ')}`);
    }
  }
}

export const passthroughCheckModule: Module<PassthroughCheckArgs> = {
  name: 'passthrough_check',
  readOnly: true,
  doc:
    'GPU passthrough preflight checks (before changes) and gates (after the reboot): CPU, bootloader, chosen devices and the ids= capture of ' +
    'the boot display, IOMMU group isolation and ACS override, vendor-reset, hugepages fit; then the booted command line, IOMMU, vfio-pci ' +
    'binding, blacklist, vendor-reset, hugepages and the container toolkit. Passes with what it proved (registered as data), fails with ' +
    '"expected …, found …" and a hint.',
  spec: {
    options: {
      check: { type: 'str', required: true, choices: CHECKS, description: 'Which check to run.' },
      params: { type: 'list', elements: 'str', default: [], description: 'gate-cmdline: parameters that must be on /proc/cmdline.' },
    },
  },
  reads(args) {
    return args.check === 'gate-container-toolkit'
      ? [
          { kind: 'cmd', command: 'nvidia-smi -L' },
          { kind: 'cmd', command: 'nvidia-ctk --version' },
        ]
      : [];
  },
  async plan(args, ctx) {
    const extra =
      args.check === 'gate-container-toolkit'
        ? { nvidiaSmi: await ctx.observe.cmd('nvidia-smi -L'), nvidiaCtk: await ctx.observe.cmd('nvidia-ctk --version') }
        : {};
    return runCheck(args, ctx.facts, pvars(ctx) as PassthroughVars & Record<string, unknown>, extra);
  },
};
