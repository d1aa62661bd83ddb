/**
 * Running the CLI in-process for tests: `main(argv, io)` from src/cli/main.ts with captured output
 * and a `--json` report file, then the report read back.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, type Io } from '../../src/cli/main.ts';
import type { RunReport, TaskResult } from '../../src/model/types.ts';

/** An `Io` that collects stdout and stderr together (as a terminal shows them), never a TTY. */
export interface CapturedIo extends Io {
  /** Everything written so far, both streams in order. */
  text: () => string;
}

/** A fresh captured `Io`. */
export function captureIo(): CapturedIo {
  let buf = '';
  return { out: (s) => void (buf += s), err: (s) => void (buf += s), isTTY: false, text: () => buf };
}

/** One CLI run: its exit code, the JSON report it wrote and its output (stdout and stderr merged). */
export interface CliRun {
  code: number;
  report: RunReport;
  text: string;
}

/** A JSON report path in the system temp dir that no other run uses. */
export function tempReportPath(): string {
  return join(tmpdir(), `passthru-report-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
}

/**
 * Runs `main([...argv, '--json', json], io)` in-process and reads the report it wrote.
 * Throws (with the exit code and the output) when no JSON report was written.
 * `keep: false` removes the report file afterwards (default: kept, e.g. for a test's artifacts).
 */
export async function runCli(argv: string[], opts: { json: string; keep?: boolean }): Promise<CliRun> {
  const io = captureIo();
  const code = await main([...argv, '--json', opts.json], io);
  const text = io.text();
  let report: RunReport;
  try {
    report = JSON.parse(readFileSync(opts.json, 'utf8')) as RunReport;
  } catch {
    throw new Error(`no JSON report (exit ${code}):\n${text}`);
  } finally {
    if (opts.keep === false) rmSync(opts.json, { force: true });
  }
  return { code, report, text };
}

/** The task results of one host in a report (tasks, handlers and gates, in run order); none if absent. */
export const tasks = (r: RunReport, host: string): TaskResult[] => r.hosts[host]?.tasks ?? [];

/**
 * A `run(cmd, ...args)` for a lab test: `passthru <cmd> PLAYBOOK -i INVENTORY --progress plain
 * --guests shutdown --failed-hosts OUT/failed-N ...args`, its JSON report in OUT. The inventory
 * and OUT are functions, as they are known only once the lab is up. With PASSTHRU_TEST_DEBUG=DIR
 * each run's output is kept as DIR/<name>-run-N.txt.
 */
export function labRunner(o: { name: string; playbook: string; inventory: () => string; out: () => string }): (cmd: 'apply' | 'check', ...args: string[]) => Promise<CliRun> {
  let n = 0;
  return async (cmd, ...args) => {
    const i = ++n;
    const out = o.out();
    const r = await runCli([cmd, o.playbook, '-i', o.inventory(), '--progress', 'plain', '--guests', 'shutdown', '--failed-hosts', join(out, `failed-hosts-${i}`), ...args], {
      json: join(out, `run-${i}.json`),
    });
    const debug = process.env.PASSTHRU_TEST_DEBUG;
    if (debug) writeFileSync(join(debug, `${o.name}-run-${i}.txt`), `${cmd} ${args.join(' ')}\nexit ${r.code}\n${r.text}`);
    return r;
  };
}
