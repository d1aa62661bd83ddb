/**
 * vendor-reset (gnif/vendor-reset): which chosen AMD devices need it, the kernels its DKMS build
 * must cover, the packages that build needs, and the udev rules that make it act.
 */
import type { Facts } from '../facts/types.ts';
import { resetMethodUdevRules } from './config-text.ts';
import { headersPackage } from './kernel.ts';
import type { Selection } from './selection.ts';
import { switchMode, uniq, type PassthroughVars } from './vars.ts';

/**
 * AMD device ids the vendor-reset module handles, by family (from gnif/vendor-reset's
 * src/device-db.h: Polaris 10/11/12, Vega 10/20, Navi 10/12/14, Navi 23, Arcturus).
 */
export const VENDOR_RESET_FAMILIES: Record<string, string[]> = {
  polaris10: ['67c0', '67c1', '67c2', '67c4', '67c7', '67d0', '67df', '67c8', '67c9', '67ca', '67cc', '67cf', '6fdf'],
  polaris11: ['67e0', '67e3', '67e8', '67eb', '67ef', '67ff', '67e1', '67e7', '67e9'],
  polaris12: ['6980', '6981', '6985', '6986', '6987', '6995', '6997', '699f'],
  vega10: ['6860', '6861', '6862', '6863', '6864', '6867', '6868', '6869', '686a', '686b', '686c', '686d', '686e', '686f', '687f'],
  vega20: ['66a0', '66a1', '66a2', '66a3', '66a4', '66a7', '66af', '738c'],
  navi10: ['7310', '7312', '7318', '7319', '731a', '731b', '731e', '731f', '15bf', '15dd', '15de', '15e7', '1636', '1638', '164c'],
  navi12: ['7360', '7362'],
  navi14: ['7340', '7341', '7347', '734f'],
  navi23: ['73ff'],
};

export function vendorResetFamily(id: string): string | null {
  const [v, d] = id.toLowerCase().split(':');
  if (v !== '1002') return null;
  for (const [family, ids] of Object.entries(VENDOR_RESET_FAMILIES)) if (ids.includes(d)) return family;
  return null;
}

export interface VendorResetConfig {
  mode: string;
  enable: boolean;
  devices: Array<{ address: string; id: string; family: string }>;
  headersPackage: string;
  /** Every installed kernel (and the one that boots next): DKMS builds the module for each. */
  kernels: string[];
  /** Packages the build needs: dkms, git, build tools and the headers of every kernel in `kernels`. */
  aptPackages: string[];
  udevRules: string;
  reason: string;
}

export function vendorResetConfig(facts: Facts, vars: PassthroughVars, sel: Selection): VendorResetConfig {
  const mode = switchMode(vars.vendor_reset);
  const devices = sel.chosen.flatMap((d) => {
    const family = vendorResetFamily(d.id);
    return family ? [{ address: d.address, id: d.id, family }] : [];
  });
  // A kernel upgrade installs a kernel that boots next: the module must be there for it too.
  const kernels = uniq([facts.kernelRelease, facts.kernelNext, ...facts.kernelsInstalled].filter((k) => !!k));
  return {
    mode,
    enable: mode === 'on' || (mode === 'auto' && devices.length > 0),
    devices,
    headersPackage: headersPackage(facts),
    kernels,
    aptPackages: ['dkms', 'git', 'build-essential', ...kernels.map((k) => headersPackage(facts, k))],
    udevRules: resetMethodUdevRules(devices.map((d) => d.id)),
    reason:
      mode === 'off'
        ? 'vendor_reset is off'
        : devices.length
          ? `${devices.map((d) => `${d.address} (${d.family})`).join(', ')} need vendor-reset`
          : mode === 'on'
            ? 'vendor_reset is on (no chosen device is in its device list)'
            : 'no chosen device is in vendor-reset\'s device list',
  };
}
