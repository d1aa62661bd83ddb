/**
 * `passthru apply`, `check`, `list` and `validate`: load and check everything before any host is
 * contacted, run the engine with the reporters on its events, and map the outcome to the
 * documented exit codes.
 */
import { hostname, userInfo } from 'node:os';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EXIT, type GuestPolicy, type RunReport } from '../model/types.ts';
import type { ReporterOptions } from '../report/plain.ts';
import type { LiveReporter } from '../report/live.ts';
import { colorEnabled } from '../report/colour.ts';
import { reportError, type Io } from './io.ts';

/**
 * The engine, loaders, modules and reporters (YAML, semver, diff, listr2, ssh2 behind them) load
 * when a command needs them, so `passthru --help` and argument errors start in a fraction of the time.
 */
const engine = () => import('./engine.ts');

export interface RunFlags {
  inventory?: string | string[];
  limit?: string;
  tags?: string;
  skipTags?: string;
  check?: boolean;
  diff?: boolean;
  forks: string;
  extraVars: string[];
  json?: string;
  verbose: number;
  reboot: boolean;
  progress: 'auto' | 'tree' | 'plain' | 'quiet';
  color: boolean;
  commandTimeout: string;
  failedHosts?: string;
  guests?: GuestPolicy;
}

/** Most hosts in parallel: each holds an SSH connection and its commands. */
export const MAX_FORKS = 1000;

/** `--forks`: digits only (1.5, 1e9, 0x10 and 10abc are refused, not read as 1), 1..MAX_FORKS. */
export function parseForks(s: string): number | undefined {
  if (!/^\s*\d{1,7}\s*$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 1 && n <= MAX_FORKS ? n : undefined;
}

const list = (s?: string) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);

interface Loaded {
  pb: Awaited<ReturnType<Awaited<ReturnType<typeof engine>>['loadPlaybook']>>;
  inv: Awaited<ReturnType<Awaited<ReturnType<typeof engine>>['loadInventory']>>;
  extra: Record<string, unknown>;
}

/**
 * Everything a command needs before connecting, each check failing with file:line:col. `list` and
 * `validate` (opts.offline) check the host variables here; `apply`/`check` leave that to
 * runPlaybook, which does it before its first connection (once per run, for any caller).
 */
async function load(pbPath: string, flags: RunFlags, io: Io, opts: { offline?: boolean } = {}): Promise<Loaded> {
  const { loadInventory, loadPlaybook, modules, loadExtraVars, planRun, unknownTags, knownTags, checkHostVars, installedRoleCache } = await engine();
  const inv = await loadInventory(flags.inventory!);
  const pb = await loadPlaybook(pbPath, { modules, cache: installedRoleCache() });
  if (flags.guests) pb.stages = pb.stages.map((st) => ({ ...st, guestPolicy: flags.guests! }));
  const extra = loadExtraVars(flags.extraVars ?? [], process.cwd());
  const plan = planRun(pb, inv, flags.limit); // --limit resolves and some stage has a host, or ConfigError before connecting
  // every host variable fits its role's argument spec, or ConfigError before connecting
  if (opts.offline) checkHostVars(pb, inv, extra, plan);
  // A run reports skipped stages as it reaches them; list and validate say it up front.
  if (opts.offline) for (const p of plan) if (p.warning) io.err(`warning: ${p.warning}\n`);
  const asked = [...(list(flags.tags) ?? []), ...(list(flags.skipTags) ?? [])];
  const unknown = unknownTags(pb, asked);
  if (unknown.length) {
    io.err(`warning: unknown tag(s) ${unknown.join(', ')}; known tags: ${knownTags(pb).join(', ')}\n`);
  }
  return { pb, inv, extra };
}

export async function runCommand(pbPath: string, flags: RunFlags, io: Io): Promise<number> {
  const {
    EventBus, liveReporter, plainReporter, Limiter, terminalPrompt, runPlaybook, modules, openConnection,
    recapTable, paint, defaultFailedHostsPath, writeFailedHosts,
  } = await engine();
  let loaded: Loaded;
  try {
    loaded = await load(pbPath, flags, io);
  } catch (e) {
    return reportError(e, io);
  }
  const forks = parseForks(flags.forks);
  if (forks === undefined) {
    io.err(`error: --forks must be a whole number from 1 to ${MAX_FORKS}, got '${flags.forks}'\n  hint: e.g. --forks 10 (hosts in parallel within a stage)\n`);
    return EXIT.invalidInput;
  }
  const commandTimeoutS = Number(flags.commandTimeout);
  if (!Number.isFinite(commandTimeoutS) || commandTimeoutS <= 0) {
    io.err(`error: --command-timeout must be a number of seconds > 0, got '${flags.commandTimeout}'\n`);
    return EXIT.invalidInput;
  }
  const check = Boolean(flags.check);
  const jsonToStdout = flags.json === '-';
  const human = jsonToStdout ? io.err : io.out;
  const ropts: ReporterOptions = {
    color: colorEnabled(flags.color, io.isTTY),
    check,
    diff: Boolean(flags.diff) || check,
    verbose: (flags.verbose ?? 0) > 0,
    write: human,
  };
  const bus = new EventBus();
  const mode = flags.progress === 'auto' ? (io.isTTY ? 'tree' : 'plain') : flags.progress;
  let live: LiveReporter | undefined;
  if (mode === 'tree') live = liveReporter(bus, { ...ropts, rebootTimeoutS: (name) => loaded.pb.stages.find((st) => st.name === name)?.rebootTimeoutS });
  else if (mode === 'plain') plainReporter(bus, ropts);

  const abort = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    abort.abort();
    io.err('\ninterrupted: starting no new work; running commands finish or time out (Ctrl-C again to quit now)\n');
  };
  process.on('SIGINT', onSigint);
  const handshakes = new Limiter(16);
  // Passphrases of encrypted keys: from the env variable named by passphrase_env, else asked here.
  const prompt = process.stdin.isTTY ? terminalPrompt() : undefined;
  const commandTimeoutMs = commandTimeoutS * 1000;
  let report: RunReport;
  try {
    report = await runPlaybook({
      playbook: loaded.pb,
      inventory: loaded.inv,
      modules,
      limit: flags.limit,
      tags: list(flags.tags),
      skipTags: list(flags.skipTags),
      check,
      forks,
      extraVars: loaded.extra,
      noReboot: flags.reboot === false,
      bus,
      signal: abort.signal,
      commandTimeoutMs,
      connect: (host) => openConnection(host, { handshakes, commandTimeoutMs, prompt, check }),
      // One apply at a time per node: a second run waits 10 s for the lock, then stops for that host.
      hostLock: { waitS: 10, owner: `${userInfo().username}@${hostname()} pid ${process.pid}, started ${new Date().toISOString()}` },
    });
  } catch (e) {
    return reportError(e, io);
  } finally {
    process.off('SIGINT', onSigint);
  }
  await live?.flush();
  if (mode !== 'quiet') human(`\n${recapTable(ropts, report)}\n`);

  // Always written, so a list from an earlier run never lingers (empty when nothing failed).
  const failedPath = flags.failedHosts ?? defaultFailedHostsPath(process.cwd());
  await writeFailedHosts(failedPath, report.failedHosts);
  if (report.failedHosts.length) {
    human(`${paint(ropts, 'yellow', `failed or unreachable hosts written to ${path.relative(process.cwd(), failedPath) || failedPath}`)}: rerun them with --limit @${path.relative(process.cwd(), failedPath)}\n`);
  }
  if (flags.json) {
    const text = `${JSON.stringify(report, null, 2)}\n`;
    if (jsonToStdout) io.out(text);
    else await writeFile(flags.json, text);
  }
  return report.exitCode;
}

export async function listCommand(pbPath: string, flags: RunFlags, io: Io): Promise<number> {
  const { planRun, selectedSteps } = await engine();
  let loaded: Loaded;
  try {
    loaded = await load(pbPath, { ...flags, extraVars: [] }, io, { offline: true });
  } catch (e) {
    return reportError(e, io);
  }
  const sel = { tags: list(flags.tags), skipTags: list(flags.skipTags) };
  for (const { stage, hosts } of planRun(loaded.pb, loaded.inv, flags.limit)) {
    io.out(`stage: ${stage.name}  (hosts: ${stage.hosts}; reboot: ${stage.reboot}${stage.serial ? `; serial: ${stage.serial.join(',')}` : ''})\n`);
    io.out(`  hosts (${hosts.length}): ${hosts.join(', ') || (flags.limit ? '(none within --limit)' : '(no host matches)')}\n`);
    for (const part of ['tasks', 'gates'] as const) {
      const steps = selectedSteps(loaded.pb, stage, part, sel);
      if (!steps.length) continue;
      io.out(`  ${part}:\n`);
      for (const s of steps) {
        const tags = [...new Set([...s.task.tags, ...(s.ref?.tags ?? [])])];
        io.out(`    ${s.task.role} › ${s.task.name}  [${s.task.module}]  tags: ${tags.join(',') || '-'}\n`);
      }
    }
  }
  return EXIT.ok;
}

export async function validateCommand(pbPath: string, flags: RunFlags, io: Io): Promise<number> {
  const { planRun, selectedSteps } = await engine();
  let loaded: Loaded;
  try {
    loaded = await load(pbPath, flags, io, { offline: true });
  } catch (e) {
    return reportError(e, io);
  }
  const { pb, inv } = loaded;
  const plan = planRun(pb, inv, flags.limit);
  const sel = { tags: list(flags.tags), skipTags: list(flags.skipTags) };
  const roles = new Set(pb.stages.flatMap((st) => st.roles.map((r) => r.name)));
  let tasks = 0;
  for (const p of plan) tasks += selectedSteps(pb, p.stage, 'tasks', sel).length + selectedSteps(pb, p.stage, 'gates', sel).length;
  const running = plan.filter((p) => p.hosts.length);
  io.out(
    `ok: ${pbPath}: ${pb.stages.length} stage(s), ${roles.size} role(s), ${tasks} task(s) and gate(s) selected; ` +
      `${inv.file}: ${inv.hosts.size} host(s); ${running.length} stage(s) would run on ${new Set(running.flatMap((p) => p.hosts)).size} host(s)` +
      `${plan.length > running.length ? `, ${plan.length - running.length} skipped` : ''}. No host was contacted.\n`,
  );
  return EXIT.ok;
}
