/**
 * `passthru inventory -i SRC [-i SRC...] [--list | --host NAME | --graph [GROUP]]`: the inventory
 * as passthru reads it, printed the way `ansible-inventory` prints it (same JSON: `_meta.hostvars`
 * and each group's hosts and children; same --graph tree), so the two can be compared and
 * scripts can consume either. Reads files only; no host is contacted.
 */
import type { Command } from 'commander';
import { EXIT } from '../model/types.ts';
import { ConfigError } from '../model/errors.ts';
import { reportError, type Io } from './io.ts';

/** Collects a repeatable option's values (`-i a -i b`). */
export const repeatable = (v: string, prev?: string[]): string[] => [...(prev ?? []), v];

interface Flags {
  inventory: string[];
  list?: boolean;
  host?: string;
  graph?: boolean | string;
}

export function inventoryCommand(program: Command, io: Io, setCode: (c: number) => void): void {
  program
    .command('inventory')
    .description('print the inventory as ansible-inventory does (--list JSON, --host NAME, --graph); contacts no host')
    .requiredOption('-i, --inventory <source>', 'YAML or INI file, directory, or host list a,b, (repeatable, merged in order)', repeatable)
    .option('--list', 'every host with its variables, and every group (the default)')
    .option('--host <name>', "one host's variables")
    .option('--graph [group]', 'the group tree, from all or from GROUP')
    .action(async (flags: Flags) => {
      setCode(await inventoryMain(flags, io));
    });
}

async function inventoryMain(flags: Flags, io: Io): Promise<number> {
  // Loaded here, not at start: `passthru --help` and the other commands never pay for them.
  const { suggest } = await import('../load/yaml.ts');
  const { graphText, hostJson, listJson, pyJson, readSources } = await import('../inventory/ansible.ts');
  const { loadInventory } = await import('../inventory/index.ts');
  const modes = [flags.list, flags.host !== undefined, flags.graph !== undefined].filter(Boolean).length;
  if (modes > 1) {
    io.err('error: choose one of --list, --host NAME, --graph\n');
    return EXIT.invalidInput;
  }
  try {
    // the full load also checks every host's connection settings, as apply would
    await loadInventory(flags.inventory);
    const inv = await readSources(flags.inventory);
    inv.errs.throwIfAny();
    if (flags.host !== undefined) {
      if (!inv.hosts.has(flags.host)) {
        const near = suggest(flags.host, inv.hosts.keys());
        throw new ConfigError(`no host '${flags.host}' in the inventory`, undefined, near ? `did you mean '${near}'?` : '`passthru inventory -i ... --list` shows every host');
      }
      io.out(pyJson(await hostJson(inv, flags.host)) + '\n');
    } else if (flags.graph !== undefined) {
      const group = typeof flags.graph === 'string' ? flags.graph : 'all';
      if (!inv.groups.has(group)) {
        const near = suggest(group, inv.groups.keys());
        throw new ConfigError(`no group '${group}' in the inventory`, undefined, near ? `did you mean '${near}'?` : undefined);
      }
      io.out(graphText(inv, group) + '\n');
    } else {
      io.out(pyJson(await listJson(inv)) + '\n');
    }
    return EXIT.ok;
  } catch (e) {
    return reportError(e, io);
  }
}
