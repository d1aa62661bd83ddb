/**
 * The one interface through which passthru talks to a host. `ssh.ts` (ssh2) and `local.ts`
 * (the control machine itself) implement it; nothing outside `transport/` opens a socket or
 * spawns a remote command.
 */
import { constants } from 'node:os';
import { shq } from '../model/shell.ts';
import type { Limiter } from './limiter.ts';

/** The one quoting function for POSIX sh (see model/shell.ts). */
export { shq };

export interface ExecOptions {
  /** Bytes written to the command's stdin, then stdin is closed. */
  stdin?: string | Buffer;
  /** Kill the command (and fail) after this long. */
  timeoutMs?: number;
  /** Do not throw on a non-zero exit; return the result instead (for probes). */
  nothrow?: boolean;
  /**
   * Keep the command's stdin open (no timeout applies) until this signal aborts: a command that
   * reads its stdin to the end lives exactly as long as the run wants it, and ends by itself when
   * the connection drops (the host lock holds a flock this way).
   */
  hold?: AbortSignal;
  /**
   * Called with each piece of the command's stdout as it arrives (the result still holds all of
   * it): a command held open says what it did so far (the host lock prints a line once it holds
   * the lock). Every transport calls it.
   */
  onStdout?: (chunk: Buffer) => void;
  /** The same for stderr. */
  onStderr?: (chunk: Buffer) => void;
}

/** What a command did. Thrown as part of a CommandError when it fails and `nothrow` is not set. */
export interface ExecResult {
  command: string;
  code: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export class CommandError extends Error {
  constructor(
    readonly host: string,
    readonly result: ExecResult,
  ) {
    const tail = (result.stderr || result.stdout).trim().split('\n').slice(-5).join('\n');
    super(`${host}: command exited ${result.code}: ${result.command}${tail ? `\n${tail}` : ''}`);
    this.name = 'CommandError';
  }
}

export interface WriteOptions {
  /** Octal mode, e.g. 0o644. Default: keep the old file's mode, else 0o644. */
  mode?: number;
  owner?: string;
  group?: string;
  /**
   * Keep a copy of the old file as `<path>.passthru-<UTC ms>-<n>.bak` when the content changes;
   * the path is returned.
   */
  backup?: boolean;
  /** With `backup`: keep only this many backups of the file, the newest (default: all). */
  keepBackups?: number;
  /**
   * Compare and swap: replace the file only if its content still hashes to this SHA-256 (hex;
   * '' = the file must not exist), checked just before the rename; else fail, unchanged. For a
   * file others edit too (a guest config in /etc/pve), so that their edit is never lost.
   */
  expectSha256?: string;
  /** Hold an flock on this file (created if missing) from the check to the rename: the lock the file's other writers take. */
  lockFile?: string;
}

export interface WriteResult {
  backupPath?: string;
}

export interface ReconnectOptions {
  /** Give up after this long (ms). */
  deadlineMs: number;
  /** First wait between attempts (ms); grows with backoff. */
  initialDelayMs?: number;
  /** Longest wait between attempts (ms); default 10 s. A reboot watcher polls at a steady pace. */
  maxDelayMs?: number;
}

/** What the caller of a transport sets for every connection of a run (SSH uses all of it). */
export interface ConnectOptions {
  /** Global cap on handshakes in flight, shared by all hosts of a run. */
  handshakes?: Limiter;
  /** Diagnostic lines (never contain secrets). */
  log?: (msg: string) => void;
  /** Default timeout for each command (ms); none when unset. */
  commandTimeoutMs?: number;
  /** Asked for a key passphrase when no environment variable holds it. */
  prompt?: (question: string) => Promise<string>;
}

export interface Connection {
  /** Inventory name of the host. */
  readonly host: string;
  /** Run a POSIX sh command line (already quoted with `shq`). Commands run as root (through sudo when `become`). */
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Atomic write (the script of write-script.ts): temp file in the target's directory, fsync,
   * mode/owner set, rename over the target. A symlink at the target is refused. A dropped
   * connection or a full disk leaves the old file intact.
   */
  write(path: string, content: string | Buffer, opts?: WriteOptions): Promise<WriteResult>;
  /** Drop and re-open the connection, retrying with backoff until the deadline (after a reboot). */
  reconnect(opts: ReconnectOptions): Promise<void>;
  close(): Promise<void>;
}

/** Build a command line from words, each quoted: `cmd('ls', '-l', path)`. */
export function cmd(...words: string[]): string {
  return words.map(shq).join(' ');
}

/** The number of a signal named `TERM` or `SIGTERM`, for a shell-style exit code 128+n; 0 when unknown. */
export function signalNumber(signal: string | null | undefined): number {
  if (!signal) return 0;
  const name = (signal.startsWith('SIG') ? signal : `SIG${signal}`) as NodeJS.Signals;
  return constants.signals[name] ?? 0;
}
