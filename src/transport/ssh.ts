/**
 * The SSH transport: one ssh2 Client per host, every command an exec channel on it.
 *
 * - At most `channels` (default 8, under OpenSSH's MaxSessions 10) channels open at once per
 *   connection; a refused channel ("Channel open failure") is retried with backoff.
 * - Host keys are checked against known_hosts (see knownhosts.ts) and pinned for reconnects.
 * - `become`: commands run through `sudo -n sh -c '<command>'` (or `sudo -S -k` with a password
 *   from an environment variable); whether sudo works is probed once at connect.
 * - Writes run the one atomic write script (write-script.ts) with the content on its stdin.
 *
 * Establishing the session (algorithms, jump host, authentication, host keys) is in
 * ssh-handshake.ts; this module runs commands on it, becomes root, writes and reconnects.
 */
import type { ClientChannel } from 'ssh2';
import { RunError, UnreachableError } from '../model/errors.ts';
import type { ConnSpec } from '../model/types.ts';
import { AuthSetupError, resolveAuth, type AuthAttempt } from './auth.ts';
import { CommandError, shq, signalNumber } from './connection.ts';
import type { Connection, ExecOptions, ExecResult, ReconnectOptions, WriteOptions, WriteResult } from './connection.ts';
import { Limiter } from './limiter.ts';
import { writeOutcome, writeScript } from './write-script.ts';
import { becomeLine, becomePassword, passwordRefused, SUDO_FAILURE, sudoUnavailable, type SudoMode } from './ssh-become.ts';
import { handshake, sshWhere, type HandshakeContext, type Link, type SshClient, type SshOptions } from './ssh-handshake.ts';

export { parseJump, type SshOptions } from './ssh-handshake.ts';

/** A command killed after its timeout. */
export class CommandTimeoutError extends CommandError {
  constructor(host: string, result: ExecResult, readonly timeoutMs: number) {
    super(host, result);
    this.name = 'CommandTimeoutError';
    this.message = `${host}: command timed out after ${timeoutMs} ms: ${result.command}`;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class SshConnection implements Connection {
  private link: Link | undefined;
  private lost: string | undefined;
  private readonly channelLimit: Limiter;
  private readonly log: (msg: string) => void;
  private readonly pinned: HandshakeContext['pinned'] = {};
  private sudoMode: SudoMode = 'none';
  private closed = false;
  private openChannels = 0;

  constructor(
    readonly host: string,
    readonly spec: ConnSpec,
    private readonly opts: SshOptions = {},
  ) {
    this.channelLimit = new Limiter(opts.channels ?? 8);
    const log = opts.log;
    this.log = log ? (m) => log(`${host}: ${m}`) : () => {};
  }

  private get where(): string {
    return sshWhere(this.spec);
  }

  /** Open the connection (used by connectSsh and reconnect). */
  async open(): Promise<void> {
    const env = this.opts.env ?? process.env;
    let attempts: AuthAttempt[];
    try {
      attempts = await resolveAuth(this.spec, { prompt: this.opts.prompt, log: this.log, env });
    } catch (e) {
      if (e instanceof AuthSetupError) throw new UnreachableError(`${this.host}: ${e.message}`, this.host, e.hint);
      throw e;
    }
    if (attempts.length === 0) {
      throw new UnreachableError(
        `${this.host}: no credentials to offer ${this.where} (no identity file, no ssh-agent, no default key)`,
        this.host,
        'set identity_file in the inventory, start ssh-agent (SSH_AUTH_SOCK) or create ~/.ssh/id_ed25519',
      );
    }
    const run = () => handshake({ name: this.host, spec: this.spec, opts: this.opts, log: this.log, pinned: this.pinned }, attempts);
    this.link = await (this.opts.handshakes ? this.opts.handshakes.run(run) : run());
    this.lost = undefined;
    if (this.spec.become && this.spec.user !== 'root') await this.probeSudo(env);
  }

  private async probeSudo(env: NodeJS.ProcessEnv): Promise<void> {
    const r = await this.rawExec('sudo -n true', { nothrow: true, timeoutMs: 30_000 });
    if (r.code === 0) {
      this.sudoMode = 'nopasswd';
      return;
    }
    if (/password is required/.test(r.stderr) && becomePassword(this.spec, env) !== undefined) {
      this.sudoMode = 'password';
      const r2 = await this.exec('true', { nothrow: true, timeoutMs: 30_000 }).catch((e: Error) => e);
      if (!(r2 instanceof Error) && r2.code === 0) return;
      await this.close();
      throw passwordRefused(this.host, this.spec, env);
    }
    await this.close();
    throw sudoUnavailable(this.host, this.spec, r);
  }

  /** A command's timeout: its own, else the connection's default; none while it holds its stdin open. */
  private timeoutOf(opts: ExecOptions): number | undefined {
    return opts.hold ? undefined : (opts.timeoutMs ?? this.opts.commandTimeoutMs);
  }

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = this.timeoutOf(opts);
    let line = command;
    if (timeoutMs !== undefined) {
      // OpenSSH does not deliver signals to root sessions and keeps a closed channel's command
      // running: the host kills a command that overruns (the whole process group, via timeout(1)).
      const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
      // `sh` with options alone (the scripts passthru sends on stdin, a run's commands on a no-op
      // run) is started by timeout itself: `sh -c 'sh -s'` put one more shell, and a fork, before it.
      const run = /^sh( -[a-z]+)*$/.test(command) ? command : `sh -c ${shq(command)}`;
      line = `if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL ${secs} ${run}; else exec ${run}; fi`;
    }
    const w = becomeLine(this.sudoMode, line, opts.stdin, () => becomePassword(this.spec, this.opts.env ?? process.env) ?? '');
    const r = await this.rawExec(w.line, { ...opts, stdin: w.stdin }, command);
    const refused = this.sudoMode !== 'none' && r.code === 1 ? SUDO_FAILURE.exec(r.stderr) : null;
    if (refused) {
      // The outer sudo refused: the command never ran.
      throw new RunError(
        `${this.host}: sudo refused to run the command as root for ${this.spec.user}: ${refused[0].trim()}`,
        this.host,
        {},
        `check the sudo rights of ${this.spec.user} on the host`,
      );
    }
    if (r.code !== 0 && !opts.nothrow) throw new CommandError(this.host, r);
    return r;
  }

  /**
   * One exec channel, within the channel limit. A refused channel ("Channel open failure": the
   * server's MaxSessions is lower than our limit) shrinks the limit to the channels open now and
   * is retried, with backoff, once a slot is free. Does not throw on exit codes.
   */
  private async rawExec(line: string, opts: ExecOptions, shown = line): Promise<ExecResult & { signal?: string }> {
    const started = Date.now();
    let delay = 20;
    for (let attempt = 1; ; attempt++) {
      const r = await this.channelLimit.run(async () => {
        const client = this.liveClient(shown);
        try {
          // The channel's listeners must be attached in the exec callback itself: a fast command's
          // exit status can arrive in the same read as the channel confirmation.
          const running = await new Promise<Promise<ExecResult & { signal?: string }>>((resolve, reject) =>
            client.exec(line, (err, stream) => {
              if (err) return reject(err);
              this.openChannels++;
              const p = this.runChannel(stream, opts, shown, started);
              p.then(
                () => this.openChannels--,
                () => this.openChannels--,
              );
              resolve(p);
            }),
          );
          return await running;
        } catch (e) {
          if (!(e instanceof Error) || e instanceof UnreachableError || e instanceof CommandError) throw e;
          const msg = e.message;
          if (this.lost || this.link?.client !== client) throw this.lostError(shown);
          if (/Channel open failure/i.test(msg) && Date.now() - started < 120_000) {
            const open = this.openChannels;
            if (open >= 2 && open < this.channelLimit.max) {
              this.log(`server refused channel ${open + 1}: limiting this connection to ${open} channels`);
              this.channelLimit.resize(open);
            } else this.log(`channel refused (${msg}), retry ${attempt} in ${delay} ms`);
            return undefined;
          }
          if (/No response from server|Not connected/i.test(msg)) throw this.lostError(shown);
          throw new UnreachableError(`${this.host}: cannot open a channel: ${msg}`, this.host);
        }
      });
      if (r) return r;
      await sleep(delay);
      delay = Math.min(delay * 2, 2000);
    }
  }

  private runChannel(
    stream: ClientChannel,
    opts: ExecOptions,
    shown: string,
    started: number,
  ): Promise<ExecResult & { signal?: string }> {
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let code: number | undefined;
      let signal: string | undefined;
      const timeoutMs = this.timeoutOf(opts);
      let settled = false;
      const timedOut = () =>
        new CommandTimeoutError(
          this.host,
          {
            command: shown,
            code: 124,
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
            durationMs: Date.now() - started,
          },
          timeoutMs!,
        );
      const timer =
        timeoutMs !== undefined
          ? setTimeout(() => {
              // The remote side kills the command (see exec's `timeout` wrapper); do not wait for it.
              settled = true;
              stream.close();
              reject(timedOut());
            }, timeoutMs)
          : undefined;
      stream.on('data', (d: Buffer) => {
        out.push(d);
        opts.onStdout?.(d);
      });
      stream.stderr.on('data', (d: Buffer) => {
        err.push(d);
        opts.onStderr?.(d);
      });
      stream.on('exit', (c: number | null, sig?: string) => {
        if (typeof c === 'number') code = c;
        if (sig) signal = sig;
      });
      stream.on('error', () => {});
      stream.on('close', () => {
        if (timer) clearTimeout(timer);
        if (settled) return;
        const result: ExecResult = {
          command: shown,
          code: code ?? (signal ? 128 + signalNumber(signal) : -1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          durationMs: Date.now() - started,
        };
        if (timeoutMs !== undefined && (signal === 'KILL' || signal === 'SIGKILL') && result.durationMs >= timeoutMs) {
          // The host's timeout(1) killed it before our own timer ran (a busy controller): the same timeout.
          reject(timedOut());
          return;
        }
        if (code === undefined && !signal) {
          // Closed without an exit status: the connection went away under the command.
          // The client's close event may come just after the channel's: give it a moment.
          setTimeout(() => reject(this.lostError(shown)), 0);
          return;
        }
        resolve(signal ? { ...result, signal } : result);
      });
      if (opts.stdin !== undefined) stream.end(opts.stdin);
      else if (opts.hold) {
        const close = () => {
          try {
            stream.end();
          } catch {
            // the channel is gone already (connection dropped, host rebooted)
          }
        };
        if (opts.hold.aborted) close();
        else opts.hold.addEventListener('abort', close, { once: true });
      } else stream.end();
    });
  }

  private liveClient(shown: string): SshClient {
    if (this.closed) throw new UnreachableError(`${this.host}: connection is closed`, this.host);
    if (!this.link || this.lost) throw this.lostError(shown);
    return this.link.client;
  }

  private lostError(shown: string): UnreachableError {
    return new UnreachableError(
      `${this.host}: connection to ${this.where} lost${this.lost ? ` (${this.lost})` : ''} while running: ${shown}`,
      this.host,
      'the host went down or the network dropped; run again once it is back (reconnect() waits for it)',
    );
  }

  /** Watch the connection after it is ready: mark it lost on error/close. */
  attach(): void {
    const link = this.link;
    if (!link) return;
    const onGone = (why: string) => {
      if (this.link !== link) return;
      if (!this.lost) {
        this.lost = why;
        if (!this.closed) this.log(`connection lost: ${why}`);
      }
    };
    link.client.on('error', (e: Error) => onGone(e.message));
    link.client.on('close', () => onGone('connection closed'));
    link.client.on('end', () => onGone('connection closed'));
    link.jump?.on('error', (e: Error) => onGone(`jump host: ${e.message}`));
    link.jump?.on('close', () => onGone('jump host connection closed'));
  }

  async write(path: string, content: string | Buffer, opts: WriteOptions = {}): Promise<WriteResult> {
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8');
    let r: ExecResult;
    try {
      r = await this.exec(writeScript(path, data.length, opts), { stdin: data, nothrow: true });
    } catch (e) {
      if (e instanceof UnreachableError) {
        throw new UnreachableError(
          `${this.host}: connection to ${this.where} lost while writing ${path}${this.lost ? ` (${this.lost})` : ''}; the write is atomic: the host keeps the old file unless the rename had completed`,
          this.host,
          'run again once the host is back: the write is checked and redone if needed',
        );
      }
      throw e;
    }
    return writeOutcome(this.host, path, data.length, r);
  }

  async reconnect(opts: ReconnectOptions): Promise<void> {
    const deadline = Date.now() + opts.deadlineMs;
    let delay = opts.initialDelayMs ?? 1000;
    this.dropLink();
    this.closed = false;
    let last: Error | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.open();
        this.attach();
        this.log(`reconnected after ${attempt} attempt(s)`);
        return;
      } catch (e) {
        last = e as Error;
        // A host key that no longer matches, or a sudo problem, will not fix itself by waiting.
        if (/host key|sudo/.test(last.message)) throw last;
        this.log(`reconnect attempt ${attempt} failed: ${last.message}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) break;
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 1.5, opts.maxDelayMs ?? 10_000);
    }
    throw new UnreachableError(
      `${this.host}: not reachable again within ${Math.round(opts.deadlineMs / 1000)} s: ${last?.message ?? ''}`,
      this.host,
      'the host did not come back: check its console (boot failure?), then run again',
    );
  }

  private dropLink(): void {
    const link = this.link;
    this.link = undefined;
    if (link) {
      try {
        link.client.end();
      } catch {}
      try {
        link.jump?.end();
      } catch {}
    }
  }

  /** Pin the host keys (target and jump host) seen at the first connection: reconnects must present the same. */
  pin(): void {
    if (this.link && !this.pinned.target) this.pinned.target = this.link.hostKey;
    if (this.link?.jumpKey && !this.pinned.jump) this.pinned.jump = this.link.jumpKey;
  }

  async close(): Promise<void> {
    this.closed = true;
    const link = this.link;
    this.dropLink();
    if (!link) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2000);
      link.client.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (this.lost) {
        clearTimeout(t);
        resolve();
      }
    });
  }
}

/** Connect, authenticate, check the host key and (for `become`) sudo. Throws UnreachableError. */
export async function connectSsh(name: string, spec: ConnSpec, opts: SshOptions = {}): Promise<SshConnection> {
  const conn = new SshConnection(name, spec, opts);
  await conn.open();
  conn.pin();
  conn.attach();
  return conn;
}
