/** The lab fleet the benchmarks converge: a mix of the hardware profiles, cycled to N nodes. */
export const MIX: Array<[profile: string, nodes: number]> = [
  ['intel-grub-pve8-rtx4090', 1],
  ['amd-systemdboot-zfs-pve8-rx6800', 1],
  ['pve7-kernel515', 1],
  ['shared-group-usb', 1],
  ['cluster3', 3],
  ['debian-guest-nvidia-docker', 1],
];

/** Scenarios adding up to exactly n nodes: whole cycles of MIX, then what fits. */
export function scenariosFor(n: number): string[] {
  const out: string[] = [];
  let left = n;
  for (let i = 0; left > 0; i++) {
    const [p, k] = MIX[i % MIX.length]!;
    if (k <= left) {
      out.push(p);
      left -= k;
    }
  }
  return out;
}
