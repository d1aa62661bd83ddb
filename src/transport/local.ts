/**
 * The `local` transport: the control machine itself, behind the same Connection interface as
 * SSH. Commands run through `sh -c` in their own process group (so a timeout kills the whole
 * tree); writes run the same atomic write script as SSH (write-script.ts).
 */
import { spawn } from 'node:child_process';
import { CommandError, signalNumber } from './connection.ts';
import type { Connection, ExecOptions, ExecResult, ReconnectOptions, WriteOptions, WriteResult } from './connection.ts';
import { writeOutcome, writeScript } from './write-script.ts';

/** Exit code reported for a command killed by its timeout (the same as coreutils `timeout`). */
export const TIMEOUT_CODE = 124;

export class LocalConnection implements Connection {
  private readonly shell: string;

  constructor(
    readonly host: string,
    opts: { shell?: string } = {},
  ) {
    this.shell = opts.shell ?? 'sh';
  }

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const started = performance.now();
    return new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(this.shell, ['-c', command], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      let timer: NodeJS.Timeout | undefined;
      child.stdout.on('data', (b: Buffer) => {
        out.push(b);
        opts.onStdout?.(b);
      });
      child.stderr.on('data', (b: Buffer) => {
        err.push(b);
        opts.onStderr?.(b);
      });
      // A command that does not read its stdin closes the pipe early: not an error.
      child.stdin.on('error', () => {});
      if (opts.timeoutMs !== undefined && opts.timeoutMs > 0 && !opts.hold) {
        timer = setTimeout(() => {
          timedOut = true;
          killGroup(child.pid);
        }, opts.timeoutMs);
      }
      child.on('error', (e) => {
        if (timer) clearTimeout(timer);
        reject(new Error(`${this.host}: cannot run ${this.shell}: ${e.message}`));
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        let stderr = Buffer.concat(err).toString('utf8');
        let exit = code ?? 128 + signalNumber(signal);
        if (timedOut) {
          exit = TIMEOUT_CODE;
          stderr += `${stderr && !stderr.endsWith('\n') ? '\n' : ''}passthru: timed out after ${opts.timeoutMs} ms`;
        }
        const result: ExecResult = {
          command,
          code: exit,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr,
          durationMs: Math.round(performance.now() - started),
        };
        if (exit !== 0 && !opts.nothrow) reject(new CommandError(this.host, result));
        else resolve(result);
      });
      if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
      else if (opts.hold) {
        if (opts.hold.aborted) child.stdin.end();
        else opts.hold.addEventListener('abort', () => child.stdin.end(), { once: true });
      } else child.stdin.end();
    });
  }

  async write(path: string, content: string | Buffer, opts: WriteOptions = {}): Promise<WriteResult> {
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8');
    const r = await this.exec(writeScript(path, data.length, opts), { stdin: data, nothrow: true });
    return writeOutcome(this.host, path, data.length, r);
  }

  /** Nothing to re-open: the control machine is always there. */
  async reconnect(_opts?: ReconnectOptions): Promise<void> {}

  async close(): Promise<void> {}
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
