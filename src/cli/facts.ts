/**
 * `passthru facts`: the probe the engine runs before every stage (src/facts/), on each host of
 * an inventory (or on one `user@host[:port]`), shown as a summary and the host variables to
 * paste. Read-only: the probe is one `sh -s` that reads /proc, /sys and the tools' status output.
 */
import type { Command } from 'commander';
import { EXIT, type Host } from '../model/types.ts';
import { ConfigError } from '../model/errors.ts';
import type { HostFacts } from '../report/facts.ts';
import type { PassthroughVars } from '../passthrough/vars.ts';
import { colorEnabled } from '../report/colour.ts';
import { terminalPrompt } from './prompt.ts';
import type { Io } from './io.ts';

interface FactsFlags {
  inventory?: string;
  limit?: string;
  json?: boolean;
  color: boolean;
  forks: string;
  port?: string;
  identityFile?: string;
  hostKeyChecking?: 'strict' | 'accept-new' | 'off';
  commandTimeout: string;
}

/** `[user@]host[:port]` → a Host with the defaults an inventory host gets. */
export function adHocHost(target: string, flags: Pick<FactsFlags, 'port' | 'identityFile' | 'hostKeyChecking'>): Host {
  const m = /^(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s]+)(?::(\d+))?$/.exec(target.trim());
  if (!m) {
    throw new ConfigError(`expected a host as [user@]host[:port], found '${target}'`, undefined, 'e.g. passthru facts root@10.0.0.11, or -i inventory.yaml');
  }
  const port = Number(flags.port ?? m[3] ?? 22);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`expected a port between 1 and 65535, found '${flags.port ?? m[3]}'`);
  const user = m[1] ?? 'root';
  const address = m[2].replace(/^\[|\]$/g, '');
  return {
    name: address,
    vars: {},
    groups: ['all', 'ungrouped'],
    conn: {
      host: address,
      port,
      user,
      become: user !== 'root',
      hostKeyChecking: flags.hostKeyChecking ?? 'strict',
      transport: 'ssh',
      ...(flags.identityFile ? { identityFile: flags.identityFile } : {}),
    },
  };
}

export function factsCommand(program: Command, io: Io, setCode: (c: number) => void): void {
  program
    .command('facts [target]')
    .description('probe hosts (read-only) and show CPU, kernel, bootloader, IOMMU, every GPU with its group and verdict, and the host variables to paste')
    .option('-i, --inventory <file>', 'inventory YAML; without it, target is one [user@]host[:port]')
    .option('--limit <pattern>', 'only hosts matching this pattern (with -i; a target given with -i works the same)')
    .option('--json', 'print the facts as JSON (schema passthru-facts/1, see README)')
    .option('--no-color', 'no ANSI colours (NO_COLOR is honoured too)')
    .option('--forks <n>', 'hosts probed in parallel', '10')
    .option('--port <n>', 'SSH port of target (without -i)')
    .option('--identity-file <file>', 'private key for target (without -i)')
    .option('--host-key-checking <mode>', 'strict (default), accept-new or off, for target (without -i)')
    .option('--command-timeout <s>', 'timeout of the probe in seconds', '60')
    .action(async (target: string | undefined, flags: FactsFlags) => {
      setCode(await runFacts(target, flags, io));
    });
}

/** What the command needs (YAML, semver, ssh2 behind it), loaded when it runs, not at every start of the CLI. */
const deps = async () => ({
  ...(await import('../inventory/index.ts')),
  ...(await import('../inventory/patterns.ts')),
  ...(await import('../facts/index.ts')),
  ...(await import('../transport/index.ts')),
  ...(await import('../report/facts.ts')),
});

export async function runFacts(target: string | undefined, flags: FactsFlags, io: Io): Promise<number> {
  const { loadInventory, matchHosts, gatherFacts, openConnection, Limiter, describeHost, FACTS_SCHEMA_ID, formatHostFacts, unreachableHost } = await deps();
  let hosts: Host[];
  try {
    if (flags.inventory) {
      const inv = await loadInventory(flags.inventory);
      const pattern = [target, flags.limit].filter(Boolean).join(':&') || 'all';
      hosts = matchHosts(inv, pattern).map((n) => inv.hosts.get(n)!);
    } else if (target) {
      if (flags.hostKeyChecking && !['strict', 'accept-new', 'off'].includes(flags.hostKeyChecking)) {
        throw new ConfigError(`expected --host-key-checking strict, accept-new or off, found '${flags.hostKeyChecking}'`);
      }
      hosts = [adHocHost(target, flags)];
    } else {
      throw new ConfigError('expected an inventory (-i FILE) or a host ([user@]host[:port]), found neither', undefined, 'passthru facts -i inventory.yaml, or passthru facts root@10.0.0.11');
    }
  } catch (e) {
    const { reportError } = await import('./io.ts');
    return reportError(e, io);
  }
  const forks = Number.parseInt(flags.forks, 10);
  const timeoutS = Number(flags.commandTimeout);
  if (!Number.isInteger(forks) || forks < 1 || !Number.isFinite(timeoutS) || timeoutS <= 0) {
    io.err(`error: --forks must be a whole number >= 1 and --command-timeout a number of seconds > 0\n`);
    return EXIT.invalidInput;
  }
  const style = { color: colorEnabled(flags.color, io.isTTY) };
  const handshakes = new Limiter(16);
  const slots = new Limiter(forks);
  const prompt = process.stdin.isTTY ? terminalPrompt() : undefined;
  if (!flags.json && io.isTTY) io.err(`probing ${hosts.length} host(s), read-only...\n`);
  const results: HostFacts[] = await Promise.all(
    hosts.map((h) =>
      slots.run(async () => {
        let conn;
        try {
          conn = await openConnection(h, { handshakes, commandTimeoutMs: timeoutS * 1000, prompt });
          const f = await gatherFacts(conn, { timeoutMs: timeoutS * 1000 });
          return describeHost(h.name, f, h.vars as PassthroughVars);
        } catch (e) {
          const err = e as Error & { hint?: string };
          return unreachableHost(h.name, err.message, err.hint);
        } finally {
          await conn?.close().catch(() => undefined);
        }
      }),
    ),
  );
  if (flags.json) io.out(`${JSON.stringify({ schema: FACTS_SCHEMA_ID, hosts: results }, null, 2)}\n`);
  else io.out(`${results.map((r) => formatHostFacts(style, r)).join('\n\n')}\n`);
  return results.some((r) => !r.reachable) ? EXIT.unreachable : EXIT.ok;
}
