/**
 * The SSH transport: one ssh2 Client per host, every command an exec channel on it.
 *
 * - At most `channels` (default 8, under OpenSSH's MaxSessions 10) channels open at once per
 *   connection; a refused channel ("Channel open failure") is retried with backoff.
 * - Host keys are checked against known_hosts (see knownhosts.ts) and pinned for reconnects.
 * - `become`: commands run through `sudo -n sh -c '<command>'` (or `sudo -S -k` with a password
 *   from an environment variable); whether sudo works is probed once at connect.
 * - Writes run the one atomic write script (write-script.ts) with the content on its stdin.
 */
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import { RunError, UnreachableError } from '../model/errors.ts';
import type { ConnSpec } from '../model/types.ts';
import { AuthSetupError, makeAuthHandler, resolveAuth, type AuthAttempt } from './auth.ts';
import {
  CommandError,
  shq,
  type Connection,
  type ExecOptions,
  type ExecResult,
  type ReconnectOptions,
  type WriteOptions,
  type WriteResult,
} from './connection.ts';
import { checkHostKey, defaultKnownHostsFile, fingerprint, keyTypeOf, knownKeyTypes } from './knownhosts.ts';
import { Limiter } from './limiter.ts';
import { writeOutcome, writeScript } from './write-script.ts';

const { Client } = ssh2;
type SshClient = InstanceType<typeof Client>;

export interface SshOptions {
  /** Global cap on handshakes in flight (shared by all hosts of a run). */
  handshakes?: Limiter;
  /** Diagnostic lines (never contain secrets). */
  log?: (msg: string) => void;
  /** Default per-command timeout (ms); none when unset. */
  commandTimeoutMs?: number;
  /** Asked for a key passphrase when no environment variable holds it. */
  prompt?: (question: string) => Promise<string>;
  /** Channels open at once on this connection (default 8). */
  channels?: number;
  /** Keepalive interval (ms, default 5000); the connection is dropped after 3 missed. */
  keepaliveIntervalMs?: number;
  /** Environment for SSH_AUTH_SOCK and the passphrase/password variables (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * `accept-new` may add unknown host keys to known_hosts (default true). False in check mode,
   * which writes nothing anywhere: an unknown key is then accepted for the run only.
   */
  recordHostKeys?: boolean;
}

/** A command killed after its timeout. */
export class CommandTimeoutError extends CommandError {
  constructor(host: string, result: ExecResult, readonly timeoutMs: number) {
    super(host, result);
    this.name = 'CommandTimeoutError';
    this.message = `${host}: command timed out after ${timeoutMs} ms: ${result.command}`;
  }
}

const KEX = [
  'curve25519-sha256',
  'curve25519-sha256@libssh.org',
  'ecdh-sha2-nistp256',
  'ecdh-sha2-nistp384',
  'ecdh-sha2-nistp521',
  'diffie-hellman-group-exchange-sha256',
  'diffie-hellman-group14-sha256',
  'diffie-hellman-group16-sha512',
  'diffie-hellman-group18-sha512',
];
const HOST_KEY_ALGOS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Host key algorithms, those of key types known for the host first (as OpenSSH orders them). */
function hostKeyOrder(knownTypes: string[]): string[] {
  const first: string[] = [];
  for (const t of knownTypes) {
    const algos = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t];
    for (const a of algos) if (HOST_KEY_ALGOS.includes(a) && !first.includes(a)) first.push(a);
  }
  return [...first, ...HOST_KEY_ALGOS.filter((a) => !first.includes(a))];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const SUDO_FAILURE =
  /^sudo: (a password is required|a terminal is required|.*is not in the sudoers file|.*may not run sudo|sorry, user .* is not allowed|.*incorrect password attempt|no tty present|.*not allowed to execute)[^\n]*/;

/** Parse `user@host:port`, `host:port`, `[v6]:port` or `host` (jump host). */
export function parseJump(jump: string, defaultUser: string): { user: string; host: string; port: number } {
  let rest = jump.trim();
  let user = defaultUser;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
  }
  let host = rest;
  let port = 22;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (v6) {
    host = v6[1]!;
    if (v6[2]) port = Number(v6[2]);
  } else {
    const m = /^([^:]+):(\d+)$/.exec(rest);
    if (m) {
      host = m[1]!;
      port = Number(m[2]);
    }
  }
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid jump host: ${jump}`);
  return { user, host, port };
}

interface Link {
  client: SshClient;
  jump?: SshClient;
  hostKey: Buffer;
  jumpKey?: Buffer;
}

export class SshConnection implements Connection {
  private link: Link | undefined;
  private lost: string | undefined;
  private readonly channelLimit: Limiter;
  private readonly log: (msg: string) => void;
  private pinnedKey: Buffer | undefined;
  private pinnedJumpKey: Buffer | undefined;
  private sudoMode: 'none' | 'nopasswd' | 'password' = 'none';
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
    return `${this.spec.user}@${this.spec.host}:${this.spec.port}`;
  }

  private get knownHostsFile(): string {
    return this.spec.knownHostsFile ?? defaultKnownHostsFile();
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
    const run = () => this.handshake(attempts);
    this.link = await (this.opts.handshakes ? this.opts.handshakes.run(run) : run());
    this.lost = undefined;
    if (this.spec.become && this.spec.user !== 'root') await this.probeSudo(env);
  }

  private async handshake(attempts: AuthAttempt[]): Promise<Link> {
    let jump: SshClient | undefined;
    let jumpKey: Buffer | undefined;
    let sock: Duplex | undefined;
    if (this.spec.jump) {
      const j = parseJump(this.spec.jump, this.spec.user);
      const jumpName = `${j.user}@${j.host}:${j.port}`;
      this.log(`connecting to jump host ${jumpName}`);
      const r = await this.connectClient(jumpName, j.host, j.port, j.user, attempts, undefined, false);
      jump = r.client;
      jumpKey = r.hostKey;
      try {
        sock = await new Promise<Duplex>((resolve, reject) =>
          jump!.forwardOut('127.0.0.1', 0, this.spec.host, this.spec.port, (err, stream) =>
            err ? reject(err) : resolve(stream),
          ),
        );
      } catch (e) {
        jump.end();
        throw new UnreachableError(
          `${this.host}: jump host ${jumpName} could not open a connection to ${this.spec.host}:${this.spec.port}: ${(e as Error).message}`,
          this.host,
          'check that the target address is reachable from the jump host and that AllowTcpForwarding is on there',
        );
      }
    }
    try {
      const r = await this.connectClient(this.where, this.spec.host, this.spec.port, this.spec.user, attempts, sock, true);
      return { client: r.client, jump, hostKey: r.hostKey, ...(jumpKey ? { jumpKey } : {}) };
    } catch (e) {
      jump?.end();
      throw e;
    }
  }

  private connectClient(
    label: string,
    host: string,
    port: number,
    user: string,
    attempts: AuthAttempt[],
    sock: Duplex | undefined,
    isTarget: boolean,
  ): Promise<{ client: SshClient; hostKey: Buffer }> {
    const file = this.knownHostsFile;
    const mode = this.spec.hostKeyChecking;
    const tried: string[] = [];
    let keyProblem: { message: string; hint?: string } | undefined;
    let presented: Buffer | undefined;
    const client = new Client();
    const timeout = this.spec.connectTimeoutMs ?? 10_000;
    const config: ConnectConfig = {
      host,
      port,
      username: user,
      readyTimeout: timeout,
      keepaliveInterval: this.opts.keepaliveIntervalMs ?? 5000,
      keepaliveCountMax: 3,
      algorithms: { kex: KEX as never, serverHostKey: hostKeyOrder(knownKeyTypes(file, host, port)) as never },
      authHandler: makeAuthHandler(user, attempts, tried, this.log) as never,
      hostVerifier: ((key: Buffer, verify: (ok: boolean) => void) => {
        presented = Buffer.from(key);
        const keyType = keyTypeOf(key);
        // Both the target's and the jump host's keys are pinned at the first connection.
        const pinned = isTarget ? this.pinnedKey : this.pinnedJumpKey;
        if (pinned && !pinned.equals(key)) {
          keyProblem = {
            message: `the ${keyType} host key of ${isTarget ? '' : 'jump host '}${label} changed since this run connected: was ${fingerprint(pinned)}, now ${fingerprint(key)}; refusing to reconnect`,
            hint: `if the host was reinstalled on purpose, check the new key on the host, run \`ssh-keygen -R '${port === 22 ? host : `[${host}]:${port}`}' -f ${file}\`, and run again`,
          };
          return verify(false);
        }
        let check;
        try {
          check = checkHostKey(file, host, port, keyType, key, mode, { record: this.opts.recordHostKeys !== false });
        } catch (e) {
          keyProblem = { message: `cannot check the host key against ${file}: ${(e as Error).message}` };
          return verify(false);
        }
        if (check.recorded) this.log(`recorded new ${keyType} host key ${check.fingerprint} in ${file}`);
        if (check.wouldRecord) this.log(`check mode: accepted new ${keyType} host key ${check.fingerprint} for this run, not recorded in ${file}`);
        if (mode === 'off' && check.message) (this.opts.log ?? console.warn)(`WARNING: ${this.host}: ${check.message}`);
        if (!check.accept) {
          keyProblem = { message: check.message ?? `host key refused`, hint: check.hint };
          return verify(false);
        }
        this.log(`host key ${keyType} ${check.fingerprint} ${check.status}`);
        verify(true);
      }) as never,
    };
    if (sock) config.sock = sock as never;
    this.log(`connecting to ${label}`);
    return new Promise((resolve, reject) => {
      let done = false;
      const fail = (err: Error & { level?: string; code?: string }) => {
        if (done) return;
        done = true;
        client.end();
        reject(this.connectError(label, err, keyProblem, tried, timeout));
      };
      client.on('ready', () => {
        if (done) return;
        done = true;
        client.removeListener('error', fail);
        client.removeListener('close', onClose);
        this.log(`connected to ${label}`);
        resolve({ client, hostKey: presented! });
      });
      const onClose = () => fail(new Error('connection closed during the handshake'));
      client.on('error', fail);
      client.on('close', onClose);
      try {
        client.connect(config);
      } catch (e) {
        fail(e as Error);
      }
    });
  }

  private connectError(
    label: string,
    err: Error & { level?: string; code?: string },
    keyProblem: { message: string; hint?: string } | undefined,
    tried: string[],
    timeoutMs: number,
  ): UnreachableError {
    const h = this.host;
    if (keyProblem) return new UnreachableError(`${h}: ${keyProblem.message}`, h, keyProblem.hint);
    if (err.level === 'client-authentication') {
      return new UnreachableError(
        `${h}: authentication failed for ${label} (tried: ${tried.join(', ') || 'nothing the server accepts'})`,
        h,
        `put the public key in ~${label.split('@')[0]}/.ssh/authorized_keys on the host, or set identity_file / SSH_AUTH_SOCK`,
      );
    }
    if (/Timed out while waiting for handshake/.test(err.message)) {
      return new UnreachableError(
        `${h}: no SSH handshake with ${label} within ${timeoutMs} ms`,
        h,
        'check that the host is up and that sshd listens on that address and port (connect_timeout raises the limit)',
      );
    }
    const code = err.code ? ` (${err.code})` : '';
    return new UnreachableError(
      `${h}: cannot connect to ${label}: ${err.message}${code}`,
      h,
      err.code === 'ECONNREFUSED'
        ? 'nothing listens on that port: is sshd running, is the port right?'
        : 'check the address, the port and the network path to the host',
    );
  }

  private async probeSudo(env: NodeJS.ProcessEnv): Promise<void> {
    const r = await this.rawExec('sudo -n true', { nothrow: true, timeoutMs: 30_000 });
    if (r.code === 0) {
      this.sudoMode = 'nopasswd';
      return;
    }
    const pwVar = this.spec.becomePasswordEnv;
    if (/password is required/.test(r.stderr) && ((pwVar && env[pwVar] !== undefined) || this.spec.becomePassword !== undefined)) {
      this.sudoMode = 'password';
      const r2 = await this.exec('true', { nothrow: true, timeoutMs: 30_000 }).catch((e: Error) => e);
      if (!(r2 instanceof Error) && r2.code === 0) return;
      await this.close();
      throw new UnreachableError(
        `${this.host}: sudo refused the password ${pwVar && env[pwVar] !== undefined ? `from environment variable ${pwVar}` : 'of ansible_become_password'} for user ${this.spec.user}`,
        this.host,
        `check the sudo password (it is never printed) and that ${this.spec.user} may run commands as root`,
      );
    }
    await this.close();
    const reason = (r.stderr.trim().split('\n').pop() ?? '').trim() || `exit ${r.code}`;
    throw new UnreachableError(
      `${this.host}: user ${this.spec.user} cannot run commands as root through sudo: ${reason}`,
      this.host,
      /password is required/.test(r.stderr)
        ? `give ${this.spec.user} passwordless sudo (a sudoers drop-in with NOPASSWD), or set become_password_env to a variable holding the sudo password`
        : `grant ${this.spec.user} sudo rights on the host (e.g. /etc/sudoers.d/), or connect as root`,
    );
  }

  private wrap(command: string, stdin: string | Buffer | undefined): { line: string; stdin: string | Buffer | undefined } {
    if (this.sudoMode === 'nopasswd') return { line: `sudo -n sh -c ${shq(command)}`, stdin };
    if (this.sudoMode === 'password') {
      const fromEnv = this.spec.becomePasswordEnv ? (this.opts.env ?? process.env)[this.spec.becomePasswordEnv] : undefined;
      const pw = fromEnv ?? this.spec.becomePassword ?? '';
      const rest = stdin === undefined ? Buffer.alloc(0) : Buffer.from(stdin);
      return { line: `sudo -S -k -p '' sh -c ${shq(command)}`, stdin: Buffer.concat([Buffer.from(`${pw}\n`), rest]) };
    }
    return { line: command, stdin };
  }

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.hold ? undefined : (opts.timeoutMs ?? this.opts.commandTimeoutMs);
    let line = command;
    if (timeoutMs !== undefined) {
      // OpenSSH does not deliver signals to root sessions and keeps a closed channel's command
      // running: the host kills a command that overruns (the whole process group, via timeout(1)).
      const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
      const q = shq(command);
      line = `if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL ${secs} sh -c ${q}; else exec sh -c ${q}; fi`;
    }
    const w = this.wrap(line, opts.stdin);
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
      const timeoutMs = opts.hold ? undefined : (opts.timeoutMs ?? this.opts.commandTimeoutMs);
      let settled = false;
      const timer =
        timeoutMs !== undefined
          ? setTimeout(() => {
              // The remote side kills the command (see exec's `timeout` wrapper); do not wait for it.
              settled = true;
              stream.close();
              reject(
                new CommandTimeoutError(
                  this.host,
                  {
                    command: shown,
                    code: 124,
                    stdout: Buffer.concat(out).toString('utf8'),
                    stderr: Buffer.concat(err).toString('utf8'),
                    durationMs: Date.now() - started,
                  },
                  timeoutMs,
                ),
              );
            }, timeoutMs)
          : undefined;
      stream.on('data', (d: Buffer) => out.push(d));
      stream.stderr.on('data', (d: Buffer) => err.push(d));
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
          code: code ?? (signal ? 128 + (signalNumbers[signal] ?? 0) : -1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          durationMs: Date.now() - started,
        };
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
    if (this.link && !this.pinnedKey) this.pinnedKey = this.link.hostKey;
    if (this.link?.jumpKey && !this.pinnedJumpKey) this.pinnedJumpKey = this.link.jumpKey;
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

const signalNumbers: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, SEGV: 11, PIPE: 13, ALRM: 14, TERM: 15 };

/** Connect, authenticate, check the host key and (for `become`) sudo. Throws UnreachableError. */
export async function connectSsh(name: string, spec: ConnSpec, opts: SshOptions = {}): Promise<SshConnection> {
  const conn = new SshConnection(name, spec, opts);
  await conn.open();
  conn.pin();
  conn.attach();
  return conn;
}
