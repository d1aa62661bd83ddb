/**
 * The `local` transport: the control machine itself, behind the same Connection interface as
 * SSH. Commands run through `sh -c` in their own process group (so a timeout kills the whole
 * tree); writes are atomic (temp file in the target's directory, fsync, mode/owner, rename).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsc, promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  CommandError,
  cmd,
  type Connection,
  type ExecOptions,
  type ExecResult,
  type ReconnectOptions,
  type WriteOptions,
  type WriteResult,
} from './connection.ts';

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
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      // A command that does not read its stdin closes the pipe early: not an error.
      child.stdin.on('error', () => {});
      if (opts.timeoutMs !== undefined && opts.timeoutMs > 0) {
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
      else child.stdin.end();
    });
  }

  async write(path: string, content: string | Buffer, opts: WriteOptions = {}): Promise<WriteResult> {
    const dir = dirname(path);
    const dirStat = await fs.stat(dir).catch(() => undefined);
    if (!dirStat) throw new Error(`${this.host}: cannot write ${path}: directory ${dir} does not exist`);
    if (!dirStat.isDirectory()) throw new Error(`${this.host}: cannot write ${path}: ${dir} is not a directory`);
    const old = await fs.stat(path).catch(() => undefined);
    if (old?.isDirectory()) throw new Error(`${this.host}: cannot write ${path}: it is a directory`);

    const result: WriteResult = {};
    if (old && opts.backup) result.backupPath = await backupFile(path);

    const mode = opts.mode ?? (old ? old.mode & 0o7777 : 0o644);
    const tmp = join(dir, `.${basename(path)}.passthru-tmp-${randomBytes(6).toString('hex')}`);
    let fh: fs.FileHandle | undefined;
    try {
      fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      await fh.writeFile(content);
      await fh.sync();
      await fh.close();
      fh = undefined;
      await fs.chmod(tmp, mode);
      if (old && opts.owner === undefined && opts.group === undefined) {
        // Keep the old owner when we can (as root); an unprivileged user keeps its own.
        await fs.chown(tmp, old.uid, old.gid).catch(() => {});
      }
      if (opts.owner !== undefined || opts.group !== undefined) {
        const spec = `${opts.owner ?? ''}${opts.group !== undefined ? `:${opts.group}` : ''}`;
        await this.exec(cmd('chown', spec, '--', tmp));
      }
      await fs.rename(tmp, path);
    } catch (e) {
      if (fh) await fh.close().catch(() => {});
      await fs.rm(tmp, { force: true }).catch(() => {});
      if (e instanceof CommandError) throw e;
      throw new Error(`${this.host}: cannot write ${path}: ${(e as Error).message}`);
    }
    await syncDir(dir);
    return result;
  }

  /** Nothing to re-open: the control machine is always there. */
  async reconnect(_opts?: ReconnectOptions): Promise<void> {}

  async close(): Promise<void> {}
}

/** `20261104T093012Z`: the UTC time, compact and sortable. */
export function backupStamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

async function backupFile(path: string): Promise<string> {
  const stamp = backupStamp();
  for (let i = 0; ; i++) {
    const candidate = `${path}.passthru-${stamp}${i ? `-${i}` : ''}.bak`;
    try {
      // COPYFILE_EXCL: never overwrite an earlier backup taken in the same second.
      await fs.copyFile(path, candidate, fsc.COPYFILE_EXCL);
      const st = await fs.stat(path);
      await fs.chmod(candidate, st.mode & 0o7777);
      return candidate;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || i > 100) throw e;
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const dh = await fs.open(dir, fsc.O_RDONLY);
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  }
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

function signalNumber(signal: NodeJS.Signals | null): number {
  if (!signal) return 0;
  const n = (
    { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 } as Record<string, number>
  )[signal];
  return n ?? 1;
}
