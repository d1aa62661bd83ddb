/**
 * A real Linux guest for the end-to-end lane: build (or find) the cached Debian image, boot it
 * in QEMU with an emulated Intel IOMMU, a boot display (std VGA, 1234:1111) and a two-function
 * "GPU" in slot 00:05 whose display has the same vendor:device, and talk to it
 * over plain OpenSSH (independent of the project's own transport).
 *
 * Nothing here skips: if QEMU or the image cannot be had, the functions throw.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync, openSync, closeSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Image {
  /** Cache directory holding the files below. */
  dir: string;
  /** Raw disk image (never written to: runs use a qcow2 overlay). */
  base: string;
  /** Private key root accepts. */
  identityFile: string;
  /** `ssh-ed25519 AAAA... comment`: the host key the guest must present. */
  hostKey: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run a program, never throwing on a non-zero exit; rejects only when it cannot start. */
export function run(
  file: string,
  args: string[],
  opts: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv; echo?: boolean } = {},
): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      file,
      args,
      { cwd: opts.cwd, env: opts.env, timeout: opts.timeoutMs ?? 0, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
        if (e && typeof e.code === 'string') {
          reject(new Error(`cannot run ${file}: ${e.message}`));
          return;
        }
        let code = e ? (typeof e.code === 'number' ? e.code : -1) : 0;
        if (e && (e as { killed?: boolean }).killed) code = -1;
        resolvePromise({ code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - t0 });
      },
    );
    if (opts.echo) child.stderr?.pipe(process.stderr);
  });
}

/**
 * Make sure the tools and the cached image exist: runs scripts/install-e2e-deps.sh, then
 * scripts/e2e-image.sh (which builds only when the cache misses). Build progress goes to stderr.
 */
export async function ensureImage(log: (s: string) => void = () => {}): Promise<Image & { builtMs: number }> {
  const deps = await run('sh', [join(repoRoot, 'scripts', 'install-e2e-deps.sh')], { echo: true });
  if (deps.code !== 0) throw new Error(`scripts/install-e2e-deps.sh failed (exit ${deps.code}):\n${deps.stdout}${deps.stderr}`);
  if (deps.stdout.trim()) log(deps.stdout.trim());
  const built = await run('sh', [join(repoRoot, 'scripts', 'e2e-image.sh')], { echo: true });
  if (built.code !== 0) throw new Error(`scripts/e2e-image.sh failed (exit ${built.code}):\n${built.stderr.slice(-4000)}`);
  const dir = built.stdout.trim().split('\n').pop() ?? '';
  const image: Image = {
    dir,
    base: join(dir, 'base.img'),
    identityFile: join(dir, 'id_ed25519'),
    hostKey: readFileSync(join(dir, 'ssh_host_ed25519_key.pub'), 'utf8').trim(),
  };
  for (const f of [image.base, image.identityFile]) {
    if (!existsSync(f)) throw new Error(`image directory ${dir} lacks ${f}`);
  }
  return { ...image, builtMs: built.ms };
}

/** A free TCP port on 127.0.0.1 (the kernel's choice; QEMU binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePromise(port));
    });
  });
}

export interface VmOptions {
  /** Per-run directory: overlay disk, console log, known_hosts files. */
  runDir: string;
  memMiB?: number;
  cpus?: number;
  qemu?: string;
}

export interface SshOptions {
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Vm {
  readonly consoleLog: string;
  readonly qemuLog: string;
  /** known_hosts holding the guest's build-time host key, for this harness's own ssh. */
  readonly harnessKnownHosts: string;
  private child: ChildProcess | undefined;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly onExit = () => this.killNow();

  constructor(
    readonly image: Image,
    readonly port: number,
    readonly runDir: string,
    private readonly opts: VmOptions,
  ) {
    this.consoleLog = join(runDir, 'console.log');
    this.qemuLog = join(runDir, 'qemu.log');
    this.harnessKnownHosts = join(runDir, 'harness_known_hosts');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get alive(): boolean {
    return this.child !== undefined && this.exited === undefined;
  }

  /** The QEMU command line (also useful to reproduce a run by hand). */
  qemuArgs(overlay: string): string[] {
    return [
      '-machine', 'q35,kernel-irqchip=split',
      '-accel', 'tcg,thread=multi',
      '-cpu', 'max,vendor=GenuineIntel',
      '-m', String(this.opts.memMiB ?? 2048),
      '-smp', String(this.opts.cpus ?? 2),
      '-device', 'intel-iommu,intremap=on,caching-mode=on',
      // The GPU stand-in: display (1234:1111, bochs) and HD audio (8086:293e, snd_hda_intel)
      // as functions .0 and .1 of slot 00:05, one IOMMU group, like a real card.
      '-device', 'bochs-display,addr=0x5.0x0,multifunction=on',
      '-device', 'ich9-intel-hda,addr=0x5.0x1',
      '-drive', `file=${overlay},if=virtio,format=qcow2`,
      '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${this.port}-:22`,
      '-device', 'virtio-net-pci,netdev=n0',
      // The boot display: QEMU's std VGA (00:01.0 on q35) is 1234:1111 too, the same vendor:device as the
      // bochs-display stand-in. ids= would take both; the run must bind 00:05.x by address and
      // leave the console on its driver.
      '-vga', 'std',
      '-display', 'none',
      '-monitor', 'none',
      '-serial', `file:${this.consoleLog}`,
    ];
  }

  async start(): Promise<void> {
    const overlay = join(this.runDir, 'run.qcow2');
    const img = await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', this.image.base, '-F', 'raw', overlay]);
    if (img.code !== 0) throw new Error(`qemu-img create failed: ${img.stderr}`);
    writeFileSync(this.harnessKnownHosts, `[127.0.0.1]:${this.port} ${this.image.hostKey}\n`);
    const qemu = this.opts.qemu ?? 'qemu-system-x86_64';
    const logFd = openSync(this.qemuLog, 'a');
    const child = spawn(qemu, this.qemuArgs(overlay), { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    this.child = child;
    child.on('exit', (code, signal) => {
      this.exited = { code, signal };
      process.off('exit', this.onExit);
    });
    const spawnError = await new Promise<Error | undefined>((r) => {
      child.once('error', (e) => r(e));
      child.once('spawn', () => r(undefined));
    });
    if (spawnError) throw new Error(`cannot start ${qemu}: ${spawnError.message} (run scripts/install-e2e-deps.sh)`);
    process.on('exit', this.onExit);
    // QEMU that cannot run at all (bad option, port taken, no accelerator) dies at once.
    await sleep(1500);
    if (!this.alive) {
      throw new Error(`${qemu} exited at once (${JSON.stringify(this.exited)}):\n${this.tail(this.qemuLog, 2000)}`);
    }
  }

  /** Plain OpenSSH, host key checked against the image's build-time key. */
  sshArgs(command: string, knownHosts = this.harnessKnownHosts): string[] {
    return [
      '-i', this.image.identityFile,
      '-p', String(this.port),
      '-o', 'BatchMode=yes',
      '-o', 'IdentitiesOnly=yes',
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'ConnectTimeout=10',
      '-o', 'ServerAliveInterval=5',
      '-o', 'ServerAliveCountMax=6',
      '-o', 'LogLevel=ERROR',
      'root@127.0.0.1',
      '--',
      command,
    ];
  }

  ssh(command: string, opts: SshOptions = {}): Promise<RunResult> {
    return run('ssh', this.sshArgs(command), { timeoutMs: opts.timeoutMs ?? 120_000 });
  }

  /** Like ssh() but throws unless the command exits 0; returns stdout. */
  async sshOk(command: string, opts: SshOptions = {}): Promise<string> {
    const r = await this.ssh(command, opts);
    if (r.code !== 0) throw new Error(`ssh ${JSON.stringify(command)} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Wait until `ssh true` works; throws when QEMU dies or the deadline passes. */
  async waitForSsh(timeoutMs = 300_000): Promise<number> {
    const t0 = Date.now();
    let last = '';
    while (Date.now() - t0 < timeoutMs) {
      if (!this.alive) throw new Error(`QEMU exited while waiting for SSH (${JSON.stringify(this.exited)}):\n${this.tail(this.consoleLog, 3000)}`);
      const r = await this.ssh('true', { timeoutMs: 20_000 });
      if (r.code === 0) return Date.now() - t0;
      last = r.stderr.trim();
      await sleep(2000);
    }
    throw new Error(`no SSH after ${timeoutMs} ms (last: ${last}); console:\n${this.tail(this.consoleLog, 3000)}`);
  }

  async bootId(): Promise<string> {
    return (await this.sshOk('cat /proc/sys/kernel/random/boot_id')).trim();
  }

  /**
   * Reboot the guest (QEMU stays up) and wait for SSH on the new boot. Returns the time from
   * the request to a working login on a new boot id.
   */
  async reboot(timeoutMs = 600_000): Promise<number> {
    const before = await this.bootId();
    const t0 = Date.now();
    // Detach so the session can end before sshd goes down.
    await this.ssh('nohup sh -c "sleep 1; systemctl reboot" >/dev/null 2>&1 &', { timeoutMs: 30_000 });
    while (Date.now() - t0 < timeoutMs) {
      if (!this.alive) throw new Error('QEMU exited during the reboot');
      const r = await this.ssh('cat /proc/sys/kernel/random/boot_id', { timeoutMs: 20_000 });
      if (r.code === 0 && r.stdout.trim() !== before) return Date.now() - t0;
      await sleep(2000);
    }
    throw new Error(`guest did not come back within ${timeoutMs} ms; console:\n${this.tail(this.consoleLog, 3000)}`);
  }

  tail(file: string, chars: number): string {
    try {
      const s = readFileSync(file, 'utf8');
      return s.slice(-chars);
    } catch {
      return `(no ${file})`;
    }
  }

  private killNow(): void {
    if (this.child?.pid && this.alive) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }

  /** Stop QEMU by its pid: SIGTERM, then SIGKILL after a grace period. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.alive) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid, 'SIGTERM');
    const timer = setTimeout(() => this.killNow(), 5000);
    await gone;
    clearTimeout(timer);
  }
}

/** Boot a VM from the image; retries with another port if QEMU could not bind the first. */
export async function bootVm(image: Image, opts: VmOptions): Promise<Vm> {
  mkdirSync(opts.runDir, { recursive: true });
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const vm = new Vm(image, await freePort(), opts.runDir, opts);
    try {
      await vm.start();
      return vm;
    } catch (e) {
      lastError = e;
      await vm.stop();
      if (!/hostfwd|host forwarding|Address already in use/i.test(String(e))) break;
    }
  }
  throw lastError;
}

/** Copy a run's evidence to <repo>/artifacts/e2e/<stamp>/ and return the copied paths. */
export function keepArtifacts(files: string[], stamp = new Date().toISOString().replace(/[:.]/g, '-')): string[] {
  const dest = join(repoRoot, 'artifacts', 'e2e', stamp);
  mkdirSync(dest, { recursive: true });
  const kept: string[] = [];
  for (const f of files) {
    if (!existsSync(f)) continue;
    const to = join(dest, f.split('/').pop() ?? 'file');
    copyFileSync(f, to);
    kept.push(to);
  }
  return kept;
}
