/**
 * `passthru lab`: simulated Proxmox VE nodes, each a real OpenSSH server in its own mount
 * namespace on its own loopback address, with stub tools and a hardware profile. This module
 * brings a lab up and down; state.ts reads a lab's state (status, boot log, node files).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { bootNode, initNode, type NodeMeta } from './node.ts';
import { initPveFs } from './pve-fs.ts';
import { LAB_ROOT, loadProfile, MAIN_PROFILES, type Profile } from './profile.ts';
import { LabError, nodeProcess, readPid, type LabNode } from './state.ts';

export { bootLog, LabError, labNodes, labStatus, nodeFile, sessionCount, type LabNode, type NodeStatus } from './state.ts';

/**
 * src/lab/ (run from the sources) or dist/lab/ (the built CLI, whose code may sit in a chunk in
 * dist/chunks/): where boot-cli and the node scripts are.
 */
const SRC_DIR = fileURLToPath(new URL('../lab/', import.meta.url)).replace(/\/$/, '');
/**
 * How a node's supervisor runs the boot logic between two runs of its sshd (and the SR-IOV stub
 * its `sriov-cli`, next to it): the compiled boot-cli.js with plain node when this module runs
 * from dist/ (the installed CLI). From src/ (tests, development), the modules the two need are
 * compiled once to plain JavaScript in a temp directory named by their content's hash
 * (TypeScript's transpileModule: no type check, the type check is `npm run typecheck`'s), so a
 * lab boot starts plain node, not node with tsx (about 0.7 s of CPU a boot on 2 cores). Without
 * the typescript package, tsx runs the sources as before.
 */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
let bootRuntime: Promise<{ cli: string; args: string }> | undefined;
function bootCommand(): Promise<{ cli: string; args: string }> {
  bootRuntime ??= FROM_SOURCE
    ? compiledBoot().catch(() => ({ cli: join(SRC_DIR, 'boot-cli.ts'), args: '--import tsx' }))
    : Promise.resolve({ cli: join(SRC_DIR, 'boot-cli.js'), args: '' });
  return bootRuntime;
}

/** boot-cli.ts, sriov-cli.ts and the sources they import, as plain JavaScript; the path of boot-cli.js. */
async function compiledBoot(): Promise<{ cli: string; args: string }> {
  const { default: ts } = await import('typescript');
  const srcRoot = resolve(SRC_DIR, '..');
  const files = new Map<string, string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    const text = readFileSync(file, 'utf8');
    files.set(file, text);
    for (const m of text.matchAll(/^(import|export)\s(?!type\s)[^;]*?\sfrom\s'(\.{1,2}\/[^']+\.ts)'/gm)) visit(resolve(dirname(file), m[2]!));
  };
  visit(join(SRC_DIR, 'boot-cli.ts'));
  visit(join(SRC_DIR, 'sriov-cli.ts'));
  const hash = createHash('sha256');
  for (const [f, text] of [...files].sort(([a], [b]) => a.localeCompare(b))) hash.update(`${f}\0${text}\0`);
  const out = join(tmpdir(), `passthru-lab-js-${hash.digest('hex').slice(0, 16)}`);
  const cli = join(out, relative(srcRoot, join(SRC_DIR, 'boot-cli.js')));
  if (!existsSync(join(out, 'package.json'))) {
    const tmp = `${out}.tmp-${process.pid}-${randomUUID()}`;
    for (const [f, text] of files) {
      const js = ts.transpileModule(text, {
        fileName: f,
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, rewriteRelativeImportExtensions: true },
      }).outputText;
      const dest = join(tmp, relative(srcRoot, f).replace(/\.ts$/, '.js'));
      mkdirSync(dirname(dest), { recursive: true });
      writeFileSync(dest, js);
    }
    writeFileSync(join(tmp, 'package.json'), '{"type":"module"}\n');
    try {
      renameSync(tmp, out);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process made it first: same content
    }
  }
  return { cli, args: '' };
}
const REPO = resolve(SRC_DIR, '../..');
const STUBS = join(LAB_ROOT, 'stubs', 'bin');
const SSHD = '/usr/sbin/sshd';

export interface LabInfo {
  dir: string;
  inventoryPath: string;
  nodes: LabNode[];
}

export interface LabUpOptions {
  dir: string;
  /** N nodes cycling through the main profiles. */
  nodes?: number;
  /** Profile names; a cluster profile stands for all its members. */
  scenarios?: string[];
  /** Seconds a rebooting node stays down before its boot (default 3). */
  rebootDelayS?: number;
  /** `127.0.N` or `127.0.N.M` (first address; default `127.0.1.1`). */
  baseAddr?: string;
}

export function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new LabError(
      'passthru lab needs root: each node is an sshd in its own mount namespace (unshare -m and mount need CAP_SYS_ADMIN) ' +
        'and listens on port 22 of its own loopback address (a privileged port).\n' +
        'Run it as root, e.g. `sudo npx passthru lab up` (or `sudo -E npm start`).',
    );
  }
}

export function ensureSshd(log: (msg: string) => void = (m) => process.stderr.write(m + '\n')): void {
  if (existsSync(SSHD)) return;
  log('passthru lab: /usr/sbin/sshd is missing; installing openssh-server with apt-get (needed: every lab node is a real OpenSSH server)...');
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'openssh-server'], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch (e) {
    throw new LabError(`could not install openssh-server (apt-get install -y openssh-server failed: ${(e as Error).message}). Install it by hand and retry.`);
  }
  if (!existsSync(SSHD)) throw new LabError('openssh-server was installed but /usr/sbin/sshd is still missing');
  // The Debian package starts the machine's own sshd on 0.0.0.0:22, which would take the nodes' port.
  try {
    execFileSync('systemctl', ['disable', '--now', 'ssh.service', 'ssh.socket'], { stdio: 'ignore' });
  } catch {
    /* not systemd, or not running */
  }
}

function addresses(base: string | undefined, n: number): string[] {
  const b = base ?? '127.0.1.1';
  const parts = b.split('.').map(Number);
  if (parts.length < 3 || parts.length > 4 || parts[0] !== 127 || parts.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new LabError(`baseAddr '${b}' must be a loopback address like 127.0.2 or 127.0.2.10`);
  let start = parts.length === 4 ? parts[3]! : 1;
  if (start === 0) start = 1;
  const out: string[] = [];
  let third = parts[2]!;
  for (let i = 0; i < n; i++) {
    let last = start + i;
    let t = third + Math.floor((last - 1) / 254);
    last = ((last - 1) % 254) + 1;
    if (t > 255) throw new LabError('too many nodes for the address range');
    out.push(`127.${parts[1]}.${t}.${last}`);
  }
  return out;
}

interface Planned {
  profile: Profile;
  name: string;
  cluster: string | null;
}

function plan(opts: LabUpOptions): Planned[] {
  const out: Planned[] = [];
  const used = new Map<string, number>();
  const nameFor = (p: Profile, member?: number) => {
    const base = member !== undefined ? `${p.hostname}${member}` : p.hostname;
    const n = (used.get(base) ?? 0) + 1;
    used.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  };
  const add = (p: Profile, whole: boolean, idx: number) => {
    const count = whole ? (p.count ?? 1) : 1;
    for (let i = 0; i < count; i++) {
      const member = p.cluster ? (whole ? i + 1 : idx) : undefined;
      out.push({ profile: p, name: nameFor(p, member), cluster: p.cluster?.name ?? null });
    }
  };
  if (opts.scenarios?.length) {
    for (const s of opts.scenarios) add(loadProfile(s), true, 1);
  } else if (opts.nodes !== undefined) {
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1) throw new LabError('nodes must be a positive integer');
    const pros = MAIN_PROFILES.map(loadProfile);
    const seen = new Map<string, number>();
    for (let i = 0; i < opts.nodes; i++) {
      const p = pros[i % pros.length]!;
      const k = (seen.get(p.name) ?? 0) + 1;
      seen.set(p.name, k);
      add(p, false, k);
    }
  } else {
    for (const s of MAIN_PROFILES) add(loadProfile(s), true, 1);
  }
  return out;
}

function waitPort(addr: string, port: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  return new Promise((res) => {
    const attempt = () => {
      const s = connect({ host: addr, port });
      s.setTimeout(1000);
      s.once('data', (d) => {
        s.destroy();
        if (d.toString().startsWith('SSH-')) res(true);
        else retry();
      });
      const retry = () => {
        s.destroy();
        if (Date.now() > until) res(false);
        else setTimeout(attempt, 50);
      };
      s.once('error', retry);
      s.once('timeout', retry);
    };
    attempt();
  });
}

function sshdConfig(nodeDir: string, labDir: string, address: string, name: string): string {
  return [
    `ListenAddress ${address}:22`,
    `HostKey ${nodeDir}/ssh/ssh_host_ed25519_key`,
    `PidFile ${nodeDir}/sshd.pid`,
    `AuthorizedKeysFile ${labDir}/ssh/authorized_keys`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'UseDNS no',
    'PrintMotd no',
    'MaxStartups 200:30:400',
    'MaxSessions 64',
    // VERBOSE logs one `Starting session: command ...` line per command a client runs: the bench
    // counts remote commands per host from the node's own sshd.log, not from the engine.
    'LogLevel VERBOSE',
    'Subsystem sftp internal-sftp',
    `SetEnv LAB_NODE=${nodeDir} LAB_DIR=${labDir} LAB_NODE_NAME=${name} LAB_LIB=${join(LAB_ROOT, 'stubs', 'lib')}`,
    '',
  ].join('\n');
}

function hostVars(p: Profile, address: string, labDir: string): Record<string, unknown> {
  return {
    host: address,
    user: 'root',
    identity_file: join(labDir, 'ssh', 'id_ed25519'),
    known_hosts: join(labDir, 'ssh', 'known_hosts'),
    host_key_checking: 'strict',
    lab_profile: p.name,
    ...(p.vars ?? {}),
  };
}

function labIsUp(dir: string): boolean {
  const nd = join(dir, 'nodes');
  if (!existsSync(nd)) return false;
  return readdirSync(nd).some((n) => {
    return nodeProcess(readPid(join(nd, n, 'supervisor.pid')), join(nd, n));
  });
}

export async function labUp(opts: LabUpOptions): Promise<LabInfo> {
  requireRoot();
  ensureSshd();
  const dir = resolve(opts.dir);
  if (labIsUp(dir)) throw new LabError(`a lab is already up in ${dir}: run \`passthru lab down --dir ${dir}\` first (or use another --dir)`);
  const planned = plan(opts);
  const addrs = addresses(opts.baseAddr, planned.length);
  const boot = await bootCommand();
  rmSync(join(dir, 'nodes'), { recursive: true, force: true });
  rmSync(join(dir, 'clusters'), { recursive: true, force: true });
  mkdirSync(join(dir, 'ssh'), { recursive: true });
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const key = join(dir, 'ssh', 'id_ed25519');
  if (!existsSync(key)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'passthru-lab', '-f', key]);
  writeFileSync(join(dir, 'ssh', 'authorized_keys'), readFileSync(key + '.pub'));
  const delay = opts.rebootDelayS ?? 3;
  const knownHosts: string[] = [];
  const nodes: LabNode[] = [];
  const clusters = new Map<string, string[]>();
  for (let i = 0; i < planned.length; i++) {
    const { profile, name, cluster } = planned[i]!;
    const address = addrs[i]!;
    const nodeDir = join(dir, 'nodes', name);
    mkdirSync(join(nodeDir, 'ssh'), { recursive: true });
    const meta: NodeMeta = { name, address, profile: profile.name, cluster, labDir: dir };
    initNode(nodeDir, profile, meta);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${name}`, '-f', join(nodeDir, 'ssh', 'ssh_host_ed25519_key')]);
    const pub = readFileSync(join(nodeDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(' ');
    knownHosts.push(`${address} ${pub[0]} ${pub[1]}`);
    writeFileSync(join(nodeDir, 'sshd_config'), sshdConfig(nodeDir, dir, address, name));
    writeFileSync(
      join(nodeDir, 'lab.env'),
      [
        `NODE_NAME='${name}'`,
        `NODE_ADDR='${address}'`,
        `LAB_DIR='${dir}'`,
        `LAB_STUBS='${STUBS}'`,
        `LAB_SRC='${SRC_DIR}'`,
        `BOOT_CLI='${boot.cli}'`,
        `NODE_ARGS='${boot.args}'`,
        `REPO='${REPO}'`,
        `NODE_BIN='${process.execPath}'`,
        `REBOOT_DELAY='${delay}'`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(nodeDir, 'boots.log'), '');
    writeFileSync(
      join(nodeDir, 'root/etc/passthru-lab/env'),
      `LAB_NODE='${nodeDir}'\nLAB_DIR='${dir}'\nLAB_NODE_NAME='${name}'\nLAB_LIB='${join(LAB_ROOT, 'stubs', 'lib')}'\n`,
    );
    bootNode(nodeDir);
    if (cluster) clusters.set(cluster, [...(clusters.get(cluster) ?? []), name]);
    nodes.push({ name, address, profile: profile.name });
  }
  for (const [c, members] of clusters) {
    mkdirSync(join(dir, 'clusters', c), { recursive: true });
    writeFileSync(join(dir, 'clusters', c, 'members'), members.join('\n') + '\n');
    for (const m of members) writeFileSync(join(dir, 'nodes', m, 'cluster'), c + '\n');
  }
  for (const pl of planned) initPveFs(dir, join(dir, 'nodes', pl.name), pl.name, pl.cluster, pl.profile);
  writeFileSync(join(dir, 'ssh', 'known_hosts'), knownHosts.join('\n') + '\n');
  writeFileSync(join(dir, 'lab.json'), JSON.stringify({ nodes, rebootDelayS: delay, startedAt: new Date().toISOString() }, null, 2) + '\n');
  const inventoryPath = join(dir, 'inventory.yaml');
  writeFileSync(inventoryPath, inventoryYaml(dir, planned, addrs));

  for (const n of nodes) {
    const nodeDir = join(dir, 'nodes', n.name);
    const child = spawn('sh', [join(SRC_DIR, 'supervisor.sh'), nodeDir], { detached: true, stdio: 'ignore' });
    child.unref();
  }
  const results = await Promise.all(nodes.map((n) => waitPort(n.address, 22, 20000)));
  const failed = nodes.filter((_, i) => !results[i]);
  if (failed.length) {
    const why = failed
      .map((n) => {
        const log = (() => {
          try {
            return readFileSync(join(dir, 'nodes', n.name, 'sshd.log'), 'utf8').trim().split('\n').slice(-2).join(' / ');
          } catch {
            return '';
          }
        })();
        return `${n.name} (${n.address}:22)${log ? ': ' + log : ''}`;
      })
      .join('; ');
    await labDown(dir);
    throw new LabError(`lab nodes did not come up: ${why}`);
  }
  return { dir, inventoryPath, nodes };
}

function inventoryYaml(dir: string, planned: Planned[], addrs: string[]): string {
  const proxmoxHosts: Record<string, unknown> = {};
  const guests: Record<string, unknown> = {};
  const clusterGroups: Record<string, { hosts: Record<string, unknown>; vars: Record<string, unknown> }> = {};
  planned.forEach((pl, i) => {
    const vars = hostVars(pl.profile, addrs[i]!, dir);
    if (pl.profile.kind === 'guest') guests[pl.name] = vars;
    else if (pl.cluster) {
      const g = (clusterGroups[`cluster_${pl.cluster}`] ??= { hosts: {}, vars: { cluster_name: pl.cluster } });
      g.hosts[pl.name] = vars;
    } else proxmoxHosts[pl.name] = vars;
  });
  const proxmox: Record<string, unknown> = { hosts: proxmoxHosts };
  if (Object.keys(clusterGroups).length) proxmox['children'] = clusterGroups;
  const doc = {
    all: {
      children: {
        proxmox,
        gpu_guests: { hosts: guests },
      },
    },
  };
  return '# Generated by `passthru lab up`: simulated nodes on loopback addresses.\n' + stringify(doc, { version: '1.1' }); // quoted as Ansible (YAML 1.1) needs: 'on' stays text
}

function nsInode(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return null;
  }
}

/** Processes inside a node's namespace (the sshd the supervisor started, its sessions). */
function pidsInNs(ns: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    if (nsInode(Number(e)) === ns) out.push(Number(e));
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function labDown(dir: string): Promise<void> {
  const d = resolve(dir);
  const nd = join(d, 'nodes');
  if (!existsSync(nd)) return;
  const own = nsInode(process.pid);
  const names = readdirSync(nd);
  const namespaces: string[] = [];
  // An open fd on each namespace keeps it alive while we sweep: once the TERM pass has emptied
  // a namespace, the kernel would otherwise free its inode number and give it to the next new
  // namespace (any `unshare --mount` on the machine), and the KILL pass would hit that one.
  const held: number[] = [];
  for (const n of names) {
    const ndir = join(nd, n);
    writeFileSync(join(ndir, 'stop'), '');
    const nsPid = readPid(join(ndir, 'ns.pid'));
    if (nodeProcess(nsPid, ndir)) {
      try {
        const fd = openSync(`/proc/${nsPid}/ns/mnt`, 'r');
        const ns = nsInode(nsPid);
        if (ns && ns !== own && ns === readlinkSync(`/proc/self/fd/${fd}`)) {
          namespaces.push(ns);
          held.push(fd);
        } else closeSync(fd);
      } catch {
        // gone meanwhile
      }
    }
    const sup = readPid(join(ndir, 'supervisor.pid'));
    if (nodeProcess(sup, ndir)) process.kill(sup, 'SIGTERM');
  }
  // Everything left in the nodes' namespaces: their sshd and its sessions.
  try {
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      let any = false;
      for (const ns of namespaces) for (const pid of pidsInNs(ns)) {
        any = true;
        try {
          process.kill(pid, sig);
        } catch {
          /* gone */
        }
      }
      if (!any) break;
      await sleep(200);
    }
  } finally {
    for (const fd of held) closeSync(fd);
  }
  // Supervisors exit on TERM; make sure.
  for (let i = 0; i < 25; i++) {
    const left = names.filter((n) => {
      return nodeProcess(readPid(join(nd, n, 'supervisor.pid')), join(nd, n));
    });
    if (!left.length) break;
    if (i === 24) {
      for (const n of left) {
        const sup = readPid(join(nd, n, 'supervisor.pid'));
        if (nodeProcess(sup, join(nd, n))) process.kill(sup, 'SIGKILL');
      }
    }
    await sleep(100);
  }
  for (const n of names) {
    for (const f of ['supervisor.pid', 'ns.pid', 'sshd.pid']) rmSync(join(nd, n, f), { force: true });
    writeFileSync(join(nd, n, 'state'), 'down\n');
  }
}

