/**
 * The main job (`npm start`): a simulated Proxmox lab on this machine, converged by the
 * built-in GPU passthrough playbook with the live display, then `check` to show there is no
 * drift left, then the lab goes down again (unless --keep).
 */
import { fileURLToPath } from 'node:url';
import { EXIT } from '../model/types.ts';
import { labDown, labUp } from '../lab/index.ts';
import type { Io } from './io.ts';
import { runCommand, type RunFlags } from './run.ts';

export const DEMO_SCENARIOS = [
  'intel-grub-pve8-rtx4090',
  'amd-systemdboot-zfs-pve8-rx6800',
  'pve7-kernel515',
  'cluster3',
  'debian-guest-nvidia-docker',
];

export const BUILTIN_PLAYBOOK = fileURLToPath(new URL('../../playbooks/gpu-passthrough.yaml', import.meta.url));

export async function demo(o: { dir: string; keep: boolean }, io: Io): Promise<number> {
  io.out(`Bringing up the lab in ${o.dir}: ${DEMO_SCENARIOS.join(', ')}\n`);
  let info;
  try {
    info = await labUp({ dir: o.dir, scenarios: DEMO_SCENARIOS });
  } catch (e) {
    io.err(`error: ${(e as Error).message}\n`);
    return EXIT.invalidInput;
  }
  const flags: RunFlags = {
    inventory: info.inventoryPath,
    forks: '10',
    extraVars: [],
    verbose: 0,
    reboot: true,
    progress: 'auto',
    color: true,
    commandTimeout: '600',
    // The lab's nodes run guests, as real ones do: shut them down cleanly for the reboot.
    guests: 'shutdown',
  };
  let code: number = EXIT.ok;
  try {
    io.out(`\n== passthru apply ${BUILTIN_PLAYBOOK} -i ${info.inventoryPath}\n`);
    code = await runCommand(BUILTIN_PLAYBOOK, flags, io);
    if (code === EXIT.interrupted) return code;
    io.out(`\n== passthru check (a converged fleet shows no drift)\n`);
    const checkCode = await runCommand(BUILTIN_PLAYBOOK, { ...flags, check: true, diff: true }, io);
    if (code === EXIT.ok) code = checkCode;
    io.out(code === EXIT.ok ? '\nConverged, verified, and no drift.\n' : `\nfinished with exit code ${code}\n`);
  } finally {
    if (!o.keep) {
      await labDown(o.dir);
      io.out(`lab in ${o.dir} is down\n`);
    } else {
      io.out(`lab left up: passthru lab down --dir ${o.dir}\n`);
    }
  }
  return code;
}
