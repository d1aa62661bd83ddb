/**
 * The `passthru` command line: apply, check, list, facts, lab, demo, modules. Parses flags (commander),
 * loads and validates everything before any host is contacted, wires reporters to the engine's
 * events, and maps the outcome to the documented exit codes.
 */
import { Command, CommanderError, Option } from 'commander';
import { EXIT } from '../model/types.ts';
import { defaultIo, reportError, type Io } from './io.ts';
import { listCommand, runCommand, validateCommand, type RunFlags } from './run.ts';
import { labCommand } from './lab.ts';
import { inventoryCommand, repeatable } from './inventory.ts';
import { factsCommand } from './facts.ts';

export { reportError, type Io } from './io.ts';
export { MAX_FORKS, parseForks, runCommand, type RunFlags } from './run.ts';

/** The modules' list (`passthru modules`) loads when that command runs. */
const engine = () => import('./engine.ts');

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  let code: number = EXIT.ok;
  const program = new Command('passthru')
    .description('Make a fleet of Proxmox VE nodes ready for GPU passthrough, and keep them that way.')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError('(passthru --help shows every command)');

  const runOptions = (c: Command) =>
    c
      .requiredOption('-i, --inventory <source>', 'inventory: YAML or INI file, directory or host list (repeatable, merged in order)', repeatable)
      .option('--limit <pattern>', 'only hosts matching this pattern (names, groups, *, a:b, a:&b, a:!b, @file)')
      .option('--tags <tags>', 'only tasks with these tags (comma separated)')
      .option('--skip-tags <tags>', 'skip tasks with these tags')
      .option('-e, --extra-vars <kv>', 'key=value, @file.yaml or a YAML map; highest precedence (repeatable)', (v: string, p: string[]) => [...p, v], [] as string[])
      .option('--forks <n>', 'hosts in parallel within a stage', '10')
      .option('--json <file>', 'write the JSON report to a file (- for stdout)')
      .option('-v, --verbose', 'show unchanged tasks too', (_: string, p: number) => p + 1, 0)
      .addOption(new Option('--progress <mode>', 'live tree, plain lines, or quiet').choices(['auto', 'tree', 'plain', 'quiet']).default('auto'))
      .option('--no-color', 'no ANSI colours')
      .option('--command-timeout <s>', 'per-command timeout in seconds', '600')
      .option('--failed-hosts <file>', 'where to write failed/unreachable hosts for --limit @file')
      .addOption(new Option('--guests <policy>', "running guests on a host to reboot, for every stage (overrides the playbook's guests:)").choices(['refuse', 'shutdown', 'ignore']));

  runOptions(program.command('apply <playbook>').description('run a playbook: change what differs, reboot what needs it, verify'))
    .option('--check', 'check mode: change nothing, report what would change')
    .option('--diff', 'show file diffs of changed tasks')
    .option('--no-reboot', 'never reboot; hosts that need one end as "reboot pending"')
    .action(async (pb: string, flags: RunFlags) => {
      code = await runCommand(pb, flags, io);
    });

  runOptions(program.command('check <playbook>').description('the same run in check mode with diffs: nothing changes on any host; exit 5 on drift'))
    .option('--no-reboot', '(implied)')
    .action(async (pb: string, flags: RunFlags) => {
      code = await runCommand(pb, { ...flags, check: true, diff: true }, io);
    });

  program
    .command('list <playbook>')
    .description('print the stages, roles, tasks and tags a run would execute, per host, without connecting')
    .requiredOption('-i, --inventory <source>', 'inventory (repeatable)', repeatable)
    .option('--limit <pattern>', 'host pattern')
    .option('--tags <tags>', 'only these tags')
    .option('--skip-tags <tags>', 'skip these tags')
    .action(async (pb: string, flags: RunFlags) => {
      code = await listCommand(pb, flags, io);
    });

  program
    .command('validate <playbook>')
    .description('every load-time check of a playbook, its roles and an inventory (formats, module arguments, templates, host patterns, tags, extra vars, host variables against the argument specs of the roles), without connecting')
    .requiredOption('-i, --inventory <source>', 'inventory (repeatable)', repeatable)
    .option('--limit <pattern>', 'host pattern')
    .option('--tags <tags>', 'only these tags')
    .option('--skip-tags <tags>', 'skip these tags')
    .option('-e, --extra-vars <kv>', 'key=value, @file.yaml or a YAML map (repeatable)', (v: string, p: string[]) => [...p, v], [] as string[])
    .action(async (pb: string, flags: RunFlags) => {
      code = await validateCommand(pb, flags, io);
    });

  program
    .command('modules')
    .description('list the modules with their arguments')
    .action(async () => {
      const { modules, moduleText } = await engine();
      for (const m of modules.values()) io.out(moduleText(m));
    });

  factsCommand(program, io, (c) => (code = c));

  labCommand(program, io, (c) => (code = c));
  inventoryCommand(program, io, (c) => (code = c));

  program
    .command('demo')
    .description('the main job: bring up a simulated Proxmox lab, converge it with the GPU passthrough playbook, show there is no drift, tear it down')
    .option('--dir <dir>', 'lab directory', '.lab')
    .option('--keep', 'leave the lab up afterwards')
    .action(async (flags: { dir: string; keep?: boolean }) => {
      const { demo } = await import('./demo.ts');
      code = await demo({ dir: flags.dir, keep: Boolean(flags.keep) }, io);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? EXIT.ok : EXIT.invalidInput;
    }
    return reportError(e, io);
  }
  return code;
}
