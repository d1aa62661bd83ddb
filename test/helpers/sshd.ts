/**
 * Real OpenSSH servers for tests and benchmarks, on loopback addresses.
 *
 * Each server is `/usr/sbin/sshd -D -f <own config>` with its own host keys, PidFile and
 * AuthorizedKeysFile in a temp dir, run under `unshare --mount --pid --fork --kill-child`:
 * - the mount namespace lets a server have extra users (test users, a sudoers drop-in) by
 *   bind-mounting copies of /etc/passwd, /etc/shadow, /etc/group and /etc/sudoers.d over the
 *   real ones inside that namespace only: the machine's own /etc is never changed;
 * - root's home is an empty dir of the server's own (bind-mounted over /root there);
 * - the pid namespace makes sshd its pid 1, so killing the one process we started (by pid) ends
 *   the server and every session it spawned, like a host going down.
 * Missing tools (sshd, sudo, unshare) are installed by scripts/install-test-deps.sh.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SSHD = '/usr/sbin/sshd';

let depsChecked = false;
/** Install openssh-server, sudo and util-linux when missing (idempotent). */
export function ensureSshDeps(): void {
  if (depsChecked) return;
  const have = (c: string) => {
    try {
      execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (!existsSync(SSHD) || !have('sudo') || !have('unshare') || !have('ssh-keygen') || !have('ssh-agent')) {
    const script = fileURLToPath(new URL('../../scripts/install-test-deps.sh', import.meta.url));
    execFileSync('sh', [script], { stdio: 'inherit' });
  }
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  depsChecked = true;
}

export interface TestUser {
  name: string;
  uid: number;
  /** `nopasswd`: sudo without password; `password`: sudo asks for `password`; `none`: no sudo right. */
  sudo: 'nopasswd' | 'password' | 'none';
  /** Login/sudo password (hashed into the namespace's shadow). */
  password?: string;
  authorizedKeys: string[];
}

export interface SshdOptions {
  /** Loopback address, e.g. 127.0.3.5. */
  address: string;
  port: number;
  /** Public key lines allowed to log in as root. */
  rootKeys?: string[];
  users?: TestUser[];
  maxSessions?: number;
  /** Reuse the host keys (and config) of this directory: a restart of the "same" host. */
  dir?: string;
  extraConfig?: string[];
  /** sshd's LogLevel (default VERBOSE: one line per session); DEBUG3 shows each global request. */
  logLevel?: string;
}

export interface Sshd {
  host: string;
  port: number;
  dir: string;
  /** `ssh-ed25519 AAAA...` of the server's host key. */
  hostKey: string;
  /** Pid of the process we started (unshare; sshd is pid 1 of its pid namespace). */
  pid: number;
  /** Kill the server and all its sessions (by pid), wait for the exit. */
  stop(): Promise<void>;
  /** Same as stop(), then start again with the same host key, address and port. */
  restart(): Promise<void>;
  /** New host key (as after a reinstall); takes effect at the next restart. */
  newHostKey(): void;
  /** The server's log (sshd -e). */
  log(): string;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) {
    try {
      if (c.pid) process.kill(c.pid, 'SIGKILL');
    } catch {}
  }
});

/** A temp dir for a test; removed by the caller or left for inspection on failure. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `passthru-${prefix}-`));
  chmodSync(d, 0o755); // test users must be able to read their authorized_keys below it
  return d;
}

/** An ed25519 key pair (optionally encrypted); returns the private key path and public line. */
export function makeKey(dir: string, name: string, passphrase = ''): { path: string; pub: string } {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', path], { stdio: 'ignore' });
  return { path, pub: readFileSync(`${path}.pub`, 'utf8').trim() };
}

function genHostKey(dir: string): void {
  const k = join(dir, 'ssh_host_ed25519_key');
  rmSync(k, { force: true });
  rmSync(`${k}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'host', '-f', k], { stdio: 'ignore' });
}

function hashPassword(pw: string): string {
  return execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: `${pw}\n` }).toString().trim();
}

function setupUsers(dir: string, users: TestUser[]): string[] {
  if (users.length === 0) return [];
  const etc = join(dir, 'etc');
  mkdirSync(join(etc, 'sudoers.d'), { recursive: true });
  let passwd = readFileSync('/etc/passwd', 'utf8');
  let shadow = readFileSync('/etc/shadow', 'utf8');
  let group = readFileSync('/etc/group', 'utf8');
  for (const f of ['/etc/sudoers.d']) {
    if (existsSync(f)) execFileSync('sh', ['-c', `cp -a ${f}/. ${join(etc, 'sudoers.d')}/`]);
  }
  const nl = (s: string) => (s.endsWith('\n') ? s : `${s}\n`);
  for (const u of users) {
    const home = join(dir, 'home', u.name);
    mkdirSync(home, { recursive: true });
    chownSync(home, u.uid, u.uid);
    passwd = nl(passwd) + `${u.name}:x:${u.uid}:${u.uid}:passthru test user:${home}:/bin/sh\n`;
    shadow = nl(shadow) + `${u.name}:${u.password ? hashPassword(u.password) : '*'}:19000:0:99999:7:::\n`;
    group = nl(group) + `${u.name}:x:${u.uid}:\n`;
    if (u.sudo !== 'none') {
      const f = join(etc, 'sudoers.d', `passthru-${u.name}`);
      writeFileSync(f, `${u.name} ALL=(ALL) ${u.sudo === 'nopasswd' ? 'NOPASSWD: ' : ''}ALL\n`, { mode: 0o440 });
    }
    writeFileSync(join(dir, 'authorized_keys', u.name), u.authorizedKeys.join('\n') + '\n', { mode: 0o644 });
  }
  writeFileSync(join(etc, 'passwd'), passwd, { mode: 0o644 });
  writeFileSync(join(etc, 'shadow'), shadow, { mode: 0o640 });
  writeFileSync(join(etc, 'group'), group, { mode: 0o644 });
  return [
    `mount --bind ${etc}/passwd /etc/passwd`,
    `mount --bind ${etc}/shadow /etc/shadow`,
    `mount --bind ${etc}/group /etc/group`,
    `mount --bind ${etc}/sudoers.d /etc/sudoers.d`,
  ];
}

/** Wait until the server answers with an SSH banner. */
async function waitBanner(host: string, port: number, deadlineMs: number, child: ChildProcess, logFile: string): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`sshd on ${host}:${port} exited: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      const t = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 1000);
      s.once('data', (d) => {
        clearTimeout(t);
        s.destroy();
        resolve(d.toString().startsWith('SSH-'));
      });
      s.once('error', () => {
        clearTimeout(t);
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`sshd on ${host}:${port} did not answer within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start a real sshd; resolves once it answers. */
export async function startSshd(opts: SshdOptions): Promise<Sshd> {
  ensureSshDeps();
  const reuse = opts.dir !== undefined;
  const dir = opts.dir ?? tempDir('sshd');
  mkdirSync(join(dir, 'authorized_keys'), { recursive: true, mode: 0o755 });
  if (!reuse || !existsSync(join(dir, 'ssh_host_ed25519_key'))) genHostKey(dir);
  writeFileSync(join(dir, 'authorized_keys', 'root'), (opts.rootKeys ?? []).join('\n') + '\n', { mode: 0o644 });
  // root's home inside the namespace: an empty dir of ours, so sessions never run (or write to)
  // the machine's own /root dotfiles (a shell rc there can be slow, or hang on a lock).
  const rootHome = join(dir, 'root-home');
  mkdirSync(rootHome, { recursive: true, mode: 0o700 });
  const binds = [`mount --bind ${rootHome} /root`, ...setupUsers(dir, opts.users ?? [])];
  const cfg = join(dir, 'sshd_config');
  writeFileSync(
    cfg,
    [
      `ListenAddress ${opts.address}:${opts.port}`,
      `HostKey ${join(dir, 'ssh_host_ed25519_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}/%u`,
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      `MaxSessions ${opts.maxSessions ?? 10}`,
      'MaxStartups 500:30:1000',
      'AllowTcpForwarding yes',
      'UseDNS no',
      `LogLevel ${opts.logLevel ?? 'VERBOSE'}`,
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const script = ['set -e', ...binds, `exec ${SSHD} -D -e -f ${cfg}`].join('\n');
  const logFile = join(dir, 'sshd.log');
  let child: ChildProcess;
  const spawnIt = async () => {
    const fd = openSync(logFile, 'a');
    child = spawn('unshare', ['--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', 'sh', '-c', script], {
      stdio: ['ignore', fd, fd],
    });
    running.add(child);
    child.once('exit', () => running.delete(child));
    // 60 s: on a loaded 2-core machine twenty servers starting at once take their time. One that
    // never answers is killed, so it holds neither its address nor the test worker.
    await waitBanner(opts.address, opts.port, 60_000, child, logFile).catch((e: Error) => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
      throw e;
    });
  };
  const stop = async () => {
    const c = child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    process.kill(c.pid!, 'SIGKILL');
    await exited;
    // pid 1 of the namespace dies with its parent (--kill-child); its sessions with it.
    const end = Date.now() + 5000;
    while (Date.now() < end) {
      const refused = await new Promise<boolean>((resolve) => {
        const s = connect({ host: opts.address, port: opts.port });
        s.once('connect', () => {
          s.destroy();
          resolve(false);
        });
        s.once('error', () => resolve(true));
      });
      if (refused) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await spawnIt();
  const sshd: Sshd = {
    host: opts.address,
    port: opts.port,
    dir,
    hostKey: readFileSync(join(dir, 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' '),
    get pid() {
      return child.pid!;
    },
    stop,
    async restart() {
      await stop();
      await spawnIt();
      sshd.hostKey = readFileSync(join(dir, 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    },
    newHostKey() {
      genHostKey(dir);
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  };
  return sshd;
}

/** A known_hosts line for the server: `[host]:port ssh-ed25519 AAAA...`. */
export function knownHostsLine(s: Pick<Sshd, 'host' | 'port' | 'hostKey'>): string {
  return `${s.port === 22 ? s.host : `[${s.host}]:${s.port}`} ${s.hostKey}\n`;
}

/** Start an ssh-agent of our own; `stop()` kills it by pid. */
export function startAgent(dir: string): { sock: string; pid: number; add(keyPath: string): void; stop(): void } {
  const sock = join(dir, 'agent.sock');
  const out = execFileSync('ssh-agent', ['-s', '-a', sock]).toString();
  const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)?.[1]);
  if (!pid) throw new Error(`ssh-agent did not start: ${out}`);
  return {
    sock,
    pid,
    add(keyPath: string) {
      execFileSync('ssh-add', ['-q', keyPath], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
    },
    stop() {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {}
    },
  };
}
