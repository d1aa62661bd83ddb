/**
 * `passthru lab up|status|down`: the simulated Proxmox lab (src/lab) from the command line.
 */
import type { Command } from 'commander';
import { EXIT } from '../model/types.ts';
import type { Io } from './io.ts';

/** The lab's code (YAML, profiles, boot simulator) loads when a lab command runs, not at every start. */
const labModule = () => import('../lab/index.ts');

export function labCommand(program: Command, io: Io, setCode: (c: number) => void): void {
  const lab = program.command('lab').description('simulated Proxmox VE nodes (real sshd in mount namespaces on 127.0.x.y), needs root');
  lab
    .command('up')
    .description('start lab nodes and write DIR/inventory.yaml')
    .option('--nodes <n>', 'number of nodes, cycling through the hardware profiles')
    .option('--scenario <name...>', 'hardware profiles to start, one node each (cluster3: three)')
    .option('--dir <dir>', 'lab directory', '.lab')
    .option('--reboot-delay <s>', 'seconds a node stays down when rebooted', '3')
    .action(async (f: { nodes?: string; scenario?: string[]; dir: string; rebootDelay: string }) => {
      setCode(
        await guard(io, async () => {
          const info = await (await labModule()).labUp({
            dir: f.dir,
            nodes: f.nodes ? Number.parseInt(f.nodes, 10) : undefined,
            scenarios: f.scenario,
            rebootDelayS: Number(f.rebootDelay),
          });
          for (const n of info.nodes) io.out(`${n.name.padEnd(24)} ${n.address.padEnd(14)} ${n.profile}\n`);
          io.out(`inventory: ${info.inventoryPath}\n`);
        }),
      );
    });
  lab
    .command('status')
    .option('--dir <dir>', 'lab directory', '.lab')
    .action(async (f: { dir: string }) => {
      setCode(await guard(io, async () => io.out(`${JSON.stringify(await (await labModule()).labStatus(f.dir), null, 2)}\n`)));
    });
  lab
    .command('down')
    .option('--dir <dir>', 'lab directory', '.lab')
    .action(async (f: { dir: string }) => {
      setCode(await guard(io, async () => (await labModule()).labDown(f.dir)));
    });
}

async function guard(io: Io, fn: () => Promise<void>): Promise<number> {
  try {
    await fn();
    return EXIT.ok;
  } catch (e) {
    io.err(`error: ${(e as Error).message}\n`);
    return EXIT.invalidInput;
  }
}
