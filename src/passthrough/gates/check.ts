/**
 * What a check (a preflight or a gate) is: a pure function of the host's facts, its variables,
 * the check's parameters and any command output it asked for, returning a typed result.
 * `passthrough_check` turns the result into a module plan (pass → noop, fail → fail).
 */
import type { Facts } from '../../facts/types.ts';
import type { PassthroughConfig } from '../config.ts';
import type { PassthroughVars } from '../vars.ts';

/** Output of a command a check reads on the host (exit status, stdout, stderr). */
export interface CmdOutput {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CheckInput {
  facts: Facts;
  vars: PassthroughVars & Record<string, unknown>;
  /** gate-cmdline: parameters that must be on the running kernel's command line. */
  params: string[];
  /** gate-container-toolkit: `nvidia-smi -L` and `nvidia-ctk --version`, when read. */
  nvidiaSmi?: CmdOutput;
  nvidiaCtk?: CmdOutput;
  /** gate-sriov: `cat` of the SR-IOV unit on the host, when read. */
  sriovUnit?: CmdOutput;
  /** gate-nvidia-driver: `nvidia-smi --query-gpu=pci.bus_id,name,driver_version --format=csv,noheader`. */
  nvidiaSmiQuery?: CmdOutput;
  /** preflight-nvidia-driver: /etc/os-release (null when missing). */
  osRelease?: string | null;
  /** preflight-nvidia-driver: the APT source files that may hold the Debian archive, path → content (null when missing). */
  aptSources?: Record<string, string | null>;
  /** gate-assignable: the VFIO probe's output (src/passthrough/assignable.ts), when it ran. */
  vfioProbe?: CmdOutput;
}

export type CheckResult =
  | { ok: true; reason: string; data?: unknown }
  | {
      ok: false;
      msg: string;
      hint: string;
      data?: unknown;
      /** Failed only because the host has not booted what is configured (a reboot is pending). */
      pending?: boolean;
    };

export type Check = (input: CheckInput) => CheckResult;

export const pass = (reason: string, data?: unknown): CheckResult => ({ ok: true, reason, data });
export const fail = (msg: string, hint: string, data?: unknown): CheckResult => ({ ok: false, msg, hint, data });

export const tokens = (line: string): string[] => line.split(/\s+/).filter(Boolean);

/** The file that holds the kernel command line for this host's bootloader. */
export function bootFile(facts: Facts): string {
  return facts.bootloader === 'systemd-boot' ? '/etc/kernel/cmdline' : '/etc/default/grub (GRUB_CMDLINE_LINUX_DEFAULT)';
}

/** The failure of a check that needs chosen devices and has none. */
export function noDevices(p: PassthroughConfig): CheckResult {
  return fail(p.deviceProblems.map((x) => x.msg).join('; ') || 'expected chosen devices, found none', p.deviceProblems.map((x) => x.hint).join(' '));
}

/** "found group 1 also holding 0000:00:17.0; …" for the groups that are not isolated. */
export function notIsolatedMsg(p: PassthroughConfig): string {
  const bad = p.groups.filter((g) => !g.isolated);
  return `expected each chosen device's IOMMU group to hold only its own functions and PCI bridges, found ${bad.map((g) => `group ${g.group} also holding ${g.foreign.join(', ')}`).join('; ')}`;
}
