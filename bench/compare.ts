/**
 * `npm run bench`: passthru side by side with its floors and with ansible-core, on the same lab
 * nodes, in one run (not a test: it prints figures). Needs root (the lab does); run it under the
 * lab lock when other lab runs may share the machine.
 *
 *   npm run bench                          # N = 10, 50, 200
 *   npm run bench -- --sizes 10,50         # chosen N
 *   npm run bench -- --sizes 10 --json -   # the figures as JSON on stdout (or --json FILE)
 *   npm run bench -- --runs 5 --no-ansible # rounds per N (medians; default 3); without ansible-core
 *
 * For each N, a lab of N nodes (the profiles that converge, as bench/converge.ts), then:
 *  - `ssh true` floor: OpenSSH `ssh host true` to every node in parallel (a new connection each);
 *  - probe floor: OpenSSH running passthru's facts probe (`sh -s`) on every node in parallel;
 *  - first converge with `--no-reboot`, then the full converge (reboots; not in the table) up to
 *    50 nodes; above that the rounds run on the nodes as the first converge left them (apply with
 *    `--no-reboot`), and with `connect_timeout: 60` (see crowded);
 *  - `check` and `apply` with no drift;
 *  - ansible-core: bench/ansible-host-stage.yaml on the same nodes (gather facts, then the files
 *    the host stage manages, with the content passthru left: a no-op), forks N, pipelining;
 *    installed from Debian's packages (scripts/install-deps.sh) when ansible-playbook is missing.
 * passthru runs as the installed CLI (bin/passthru.js, compiled dist/), each run in its own
 * process under /usr/bin/time: wall, controller CPU (user + system) and peak RSS are that
 * process's. Remote commands per host are counted by the nodes: each node's sshd logs one
 * `Starting session:` line per command (LogLevel VERBOSE), read before and after each run.
 */
import { spawn } from 'node:child_process';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDown, labUp, sessionCount, type LabInfo } from '../src/lab/index.ts';
import { probeScript } from '../src/facts/probe.ts';
import { scenariosFor } from './mix.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(REPO, 'bin', 'passthru.js');
const PLAYBOOK = join(REPO, 'playbooks', 'gpu-passthrough.yaml');
const ANSIBLE_PLAYBOOK = join(REPO, 'bench', 'ansible-host-stage.yaml');
const DELAY_S = 1;
/** Profiles that converge; cluster3 stands for its three members. */
/** Files the host stage manages (roles' defaults): Ansible's equivalent manages the same. */
const MANAGED = [
  '/etc/default/grub',
  '/etc/kernel/cmdline',
  '/etc/modules',
  '/etc/modprobe.d/vfio.conf',
  '/etc/modprobe.d/blacklist-passthru.conf',
  '/etc/sysctl.d/80-passthru-hugepages.conf',
];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const sizes = (arg('--sizes') ?? '10,50,200').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0 && n <= 254);
const jsonOut = arg('--json');
/** Rounds of the no-drift measurements per N (`--runs`, default 3): medians are reported. */
const RUNS = Math.max(1, Number(arg('--runs') ?? 3) || 3);
const noAnsible = process.argv.includes('--no-ansible');
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

function baseAddr(n: number): string {
  return n <= 50 ? (n <= 10 ? '127.0.122.1' : '127.0.123.1') : '127.1.1.1';
}

interface Proc {
  code: number;
  out: string;
  err: string;
  wallS: number;
  /** user + system CPU of the process and its children (/usr/bin/time). */
  cpuS: number;
  rssMiB: number;
}

/** /usr/bin/time's output files, in one directory that cleanup() removes (an interrupted run left them behind). */
let timeDirPath: string | null = null;
let timeFiles = 0;
function timeDir(): string {
  return (timeDirPath ??= mkdtempSync(join(tmpdir(), 'passthru-bench-time-')));
}

/** Run a command under /usr/bin/time; stdin from a string when given. */
function run(cmd: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutS?: number } = {}): Promise<Proc> {
  const tfile = join(timeDir(), `${++timeFiles}`);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn('/usr/bin/time', ['-f', '%U %S %M', '-o', tfile, ...cmd], { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => p.kill('SIGTERM'), (opts.timeoutS ?? 1200) * 1000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      const wallS = (performance.now() - t0) / 1000;
      let cpuS = NaN;
      let rssMiB = NaN;
      try {
        const last = readFileSync(tfile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        cpuS = last[0]! + last[1]!;
        rssMiB = last[2]! / 1024;
      } catch {
        /* killed before time wrote its line */
      }
      rmSync(tfile, { force: true });
      resolve({ code: code ?? -1, out, err, wallS, cpuS, rssMiB });
    });
    // A command that does not read its stdin (`ssh host true`) may exit before it is written.
    p.stdin.on('error', () => {});
    p.stdin.end(opts.input ?? '');
  });
}

/**
 * OpenSSH as the floor, making the handshake passthru's SSH client (ssh2) makes with these nodes:
 * curve25519 key exchange and AES-128-GCM. OpenSSH's default key exchange (sntrup761x25519) costs
 * the client about three times the CPU, and a floor that passthru's own runs beat (0.77x at N = 50
 * with it) measures OpenSSH's handshake, not the least a run can cost.
 */
function sshArgs(info: LabInfo, address: string): string[] {
  return ['ssh', '-q', '-o', 'BatchMode=yes', '-o', 'KexAlgorithms=curve25519-sha256', '-o', 'Ciphers=aes128-gcm@openssh.com', '-o', `UserKnownHostsFile=${join(info.dir, 'ssh', 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes',
    '-o', 'IdentitiesOnly=yes', '-o', 'ControlMaster=no', '-o', 'ControlPath=none', '-i', join(info.dir, 'ssh', 'id_ed25519'), `root@${address}`];
}

/** One command on every node in parallel through OpenSSH; the wall time of the whole. */
async function sshAll(info: LabInfo, command: string, input?: string): Promise<number> {
  const t0 = performance.now();
  const rs = await Promise.all(info.nodes.map((n) => run([...sshArgs(info, n.address), command], { input })));
  const bad = rs.find((r) => r.code !== 0);
  if (bad) throw new Error(`ssh ${command}: exit ${bad.code}: ${bad.err.trim()}`);
  return (performance.now() - t0) / 1000;
}

/** Commands each node's sshd has started so far (LogLevel VERBOSE: one line per session). */
function sessions(info: LabInfo): number[] {
  return info.nodes.map((n) => sessionCount(info.dir, n.name));
}

const median = (xs: number[]) => {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
};

interface Measured {
  wallS: number;
  cpuS: number;
  rssMiB: number;
  exit: number;
  /** remote commands per host (median over the hosts; max in maxCmds). */
  cmds: number;
  maxCmds: number;
  changed?: number;
}

async function counted(info: LabInfo, cmd: string[], env?: NodeJS.ProcessEnv, only?: (name: string) => boolean): Promise<Measured & { proc: Proc }> {
  const before = sessions(info);
  // A converge of N nodes with reboots: 20 min, and 10 s per node above 120 nodes.
  const proc = await run(cmd, { env, timeoutS: Math.max(1200, info.nodes.length * 10) });
  const after = sessions(info);
  const per = after.map((a, i) => a - before[i]!).filter((_, i) => !only || only(info.nodes[i]!.name));
  return { wallS: proc.wallS, cpuS: proc.cpuS, rssMiB: proc.rssMiB, exit: proc.code, cmds: median(per), maxCmds: Math.max(...per), proc };
}

/**
 * Above 50 nodes the lab's 2 cores are shared by more sshd and shells than a handshake's 10 s
 * default allows for (at N = 200 during the first converge, 41 of 200 handshakes missed it at a
 * load average over 80): the runs then add an inventory that gives every host
 * `connect_timeout: CONNECT_TIMEOUT_S` (printed with the table). A real node answers its
 * handshake on its own CPU.
 */
const CONNECT_TIMEOUT_S = 60;
/**
 * More nodes than the lab's cores carry as a real fleet would: the runs get CONNECT_TIMEOUT_S,
 * and no full converge (see runN).
 */
const crowded = (n: number) => n > 50;
/** The inventory that sets connect_timeout for every host (written by runN when crowded). */
const timeoutInventory = (dir: string) => join(dir, 'connect-timeout.yaml');
function inventories(info: LabInfo, dir: string): string[] {
  return crowded(info.nodes.length) ? ['-i', info.inventoryPath, '-i', timeoutInventory(dir)] : ['-i', info.inventoryPath];
}

async function passthru(info: LabInfo, dir: string, tag: string, args: string[]): Promise<Measured> {
  const json = join(dir, `${tag}.json`);
  const m = await counted(info, [process.execPath, CLI, ...args, PLAYBOOK, ...inventories(info, dir), '--forks', String(info.nodes.length),
    '--progress', 'quiet', '--json', json, '--failed-hosts', join(dir, `${tag}.failed`)]);
  let changed: number | undefined;
  try {
    const rep = JSON.parse(readFileSync(json, 'utf8')) as { recap: Record<string, { changed: number }> };
    changed = Object.values(rep.recap).reduce((a, r) => a + r.changed, 0);
  } catch {
    /* no report */
  }
  if (m.exit !== 0 && tag !== 'first') log(`passthru ${tag}: exit ${m.exit}: ${m.proc.err.trim().split('\n').slice(-3).join(' / ')}`);
  const { proc: _p, ...rest } = m;
  return { ...rest, changed };
}

/** Ansible inventory of the same nodes: the host stage's hosts, with the files' current content. */
async function ansibleInventory(info: LabInfo, dir: string): Promise<string> {
  const hosts = info.nodes.filter((n) => n.profile !== 'debian-guest-nvidia-docker');
  const lines = ['all:', '  hosts:'];
  for (const n of hosts) {
    const script = MANAGED.map((p) => `if [ -f '${p}' ]; then printf '@@file %s\\n' '${p}'; base64 -w0 '${p}'; echo; fi`).join('; ');
    const r = await run([...sshArgs(info, n.address), script]);
    const files: Array<{ path: string; content_b64: string }> = [];
    const parts = r.out.split('\n');
    for (let i = 0; i < parts.length; i++) {
      const m = /^@@file (.*)$/.exec(parts[i]!);
      if (m) files.push({ path: m[1]!, content_b64: parts[i + 1] ?? '' });
    }
    lines.push(`    ${n.name}:`, `      ansible_host: ${n.address}`, `      managed_files: ${JSON.stringify(files)}`);
  }
  lines.push('  vars:', '    ansible_user: root', `    ansible_ssh_private_key_file: ${join(info.dir, 'ssh', 'id_ed25519')}`,
    `    ansible_ssh_common_args: "-o UserKnownHostsFile=${join(info.dir, 'ssh', 'known_hosts')} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"`,
    '    ansible_python_interpreter: /usr/bin/python3', '');
  const path = join(dir, 'ansible-inventory.yaml');
  writeFileSync(path, lines.join('\n'));
  return path;
}

async function ansible(info: LabInfo, dir: string): Promise<Measured | null> {
  const inv = await ansibleInventory(info, dir);
  const inPlay = new Set(info.nodes.filter((n) => n.profile !== 'debian-guest-nvidia-docker').map((n) => n.name));
  const hosts = inPlay.size;
  const env = { ...process.env, ANSIBLE_PIPELINING: '1', ANSIBLE_HOST_KEY_CHECKING: 'True', ANSIBLE_NOCOLOR: '1', ANSIBLE_RETRY_FILES_ENABLED: '0',
    ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp'), ANSIBLE_SSH_CONTROL_PATH_DIR: join(dir, 'cp') };
  const m = await counted(info, ['ansible-playbook', '-i', inv, ANSIBLE_PLAYBOOK, '--forks', String(hosts)], env, (h) => inPlay.has(h));
  const changed = [...m.proc.out.matchAll(/changed=(\d+)/g)].reduce((a, x) => a + Number(x[1]), 0);
  const failed = [...m.proc.out.matchAll(/(?:failed|unreachable)=(\d+)/g)].reduce((a, x) => a + Number(x[1]), 0);
  if (m.exit !== 0 || failed) log(`ansible: exit ${m.exit}, failed/unreachable ${failed}: ${m.proc.out.trim().split('\n').slice(-6).join(' / ')}`);
  const { proc: _p, ...rest } = m;
  return { ...rest, changed };
}

/** The run of median wall time (its other figures come with it). */
function medianRun(xs: Measured[]): Measured {
  const a = [...xs].sort((x, y) => x.wallS - y.wallS);
  return a[(a.length - 1) >> 1]!;
}

interface Row {
  n: number;
  sshTrueS: number;
  probeFloorS: number;
  first: Measured;
  /** The full converge (reboots); null above 50 nodes (see crowded). */
  convergeS: number | null;
  check: Measured;
  apply: Measured;
  ansible: Measured | null;
}

async function ensureAnsible(): Promise<boolean> {
  const have = (await run(['sh', '-c', 'command -v ansible-playbook'])).code === 0;
  if (have) return true;
  log('ansible-playbook missing: installing ansible-core from Debian (scripts/install-deps.sh)');
  const r = await run(['sh', join(REPO, 'scripts', 'install-deps.sh'), '--as', 'bench', 'ansible-core']);
  process.stderr.write(r.err);
  return r.code === 0;
}

let liveLab: string | null = null;
async function cleanup(): Promise<void> {
  const d = liveLab;
  liveLab = null;
  if (d) await labDown(join(d, 'lab'));
  if (d) rmSync(d, { recursive: true, force: true });
  if (timeDirPath) rmSync(timeDirPath, { recursive: true, force: true });
  timeDirPath = null;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().finally(() => process.exit(130)));

async function runN(n: number, withAnsible: boolean): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), `passthru-bench-${n}-`));
  liveLab = dir;
  try {
    log(`N=${n}: lab up at ${baseAddr(n)}...`);
    const info = await labUp({ dir: join(dir, 'lab'), scenarios: scenariosFor(n), rebootDelayS: DELAY_S, baseAddr: baseAddr(n) });
    if (crowded(n)) writeFileSync(timeoutInventory(dir), `all:\n  vars:\n    connect_timeout: ${CONNECT_TIMEOUT_S}\n`);
    log(`N=${n}: first converge (--no-reboot)...`);
    const first = await passthru(info, dir, 'first', ['apply', '--no-reboot']);
    // Above 50 nodes the nodes stay as the first converge left them (files in place, a reboot
    // pending): the lab's boot logic for N nodes rebooting at once does not fit on 2 cores (at
    // N = 200, 101 nodes were not back within the 900 s reboot window, at a load average of 200).
    // check and apply then do the same reads and find nothing to change, and report the reboot
    // still pending; apply runs with --no-reboot.
    const rebootless = crowded(n);
    let conv: Measured | null = null;
    if (!rebootless) {
      log(`N=${n}: full converge (reboots)...`);
      conv = await passthru(info, dir, 'converge', ['apply', '--guests', 'shutdown']);
    }
    // On the converged nodes, RUNS rounds; in each the floors, check, apply and Ansible take
    // turns, so a slow moment of the machine does not fall on one of them only. Medians.
    const sshTrue: number[] = [];
    const probeFloor: number[] = [];
    const checks: Measured[] = [];
    const applies: Measured[] = [];
    const ansibles: Measured[] = [];
    for (let i = 0; i < RUNS; i++) {
      log(`N=${n}: round ${i + 1} of ${RUNS}: floors, check, apply${withAnsible ? ', ansible-core' : ''}...`);
      sshTrue.push(await sshAll(info, 'true'));
      probeFloor.push(await sshAll(info, 'sh -s', probeScript()));
      checks.push(await passthru(info, dir, `check-${i}`, ['check']));
      applies.push(await passthru(info, dir, `noop-${i}`, rebootless ? ['apply', '--no-reboot'] : ['apply']));
      if (withAnsible) {
        const a = await ansible(info, dir);
        if (a) ansibles.push(a);
      }
    }
    const sshTrueS = median(sshTrue);
    const probeFloorS = median(probeFloor);
    const check = medianRun(checks);
    const apply = medianRun(applies);
    const ans = ansibles.length ? medianRun(ansibles) : null;
    return { n, sshTrueS, probeFloorS, first, convergeS: conv?.wallS ?? null, check, apply, ansible: ans };
  } finally {
    await cleanup();
  }
}

if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) {
  log('dist/ is missing: run `npm run build` (or `npm ci`) first');
  process.exit(1);
}
const withAnsible = !noAnsible && (await ensureAnsible());
const rows: Row[] = [];
// Time box: 20 min per N plus 10 s per node per round (N = 200 converges for about 10 min).
const boxMin = sizes.reduce((a, n) => a + 20 + (n * 10 * (RUNS + 2)) / 60, 0);
const hardStop = setTimeout(() => {
  log(`time box (${boxMin.toFixed(0)} min) exceeded, bringing the lab down`);
  void cleanup().finally(() => process.exit(1));
}, boxMin * 60_000);
try {
  for (const n of sizes) rows.push(await runN(n, withAnsible));
} catch (e) {
  log(`could not run: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
} finally {
  clearTimeout(hardStop);
}

const cores = availableParallelism();
const cpuModel = cpus()[0]?.model ?? '';
const s = (x: number) => `${x.toFixed(2)} s`;
const cols: Array<[string, (r: Row) => string]> = [
  ['N', (r) => String(r.n)],
  ['ssh true', (r) => s(r.sshTrueS)],
  ['probe floor', (r) => s(r.probeFloorS)],
  ['check', (r) => `${s(r.check.wallS)}${r.check.exit ? ` (exit ${r.check.exit})` : ''}`],
  ['check/floor', (r) => `${(r.check.wallS / r.probeFloorS).toFixed(2)}x`],
  ['apply no-op', (r) => `${s(r.apply.wallS)}${r.apply.changed ? ` (${r.apply.changed} changed)` : ''}`],
  ['converge --no-reboot', (r) => s(r.first.wallS)],
  ['ansible no-op', (r) => (r.ansible ? `${s(r.ansible.wallS)}${r.ansible.changed ? ` (${r.ansible.changed} changed)` : ''}` : '-')],
  ['ansible/check', (r) => (r.ansible ? `${(r.ansible.wallS / r.check.wallS).toFixed(1)}x` : '-')],
  ['cmds/host check·apply·ansible', (r) => `${r.check.cmds}·${r.apply.cmds}·${r.ansible ? r.ansible.cmds : '-'}`],
  ['CPU check (per host)', (r) => `${s(r.check.cpuS)} (${((r.check.cpuS / r.n) * 1000).toFixed(0)} ms)`],
  ['CPU ansible', (r) => (r.ansible ? s(r.ansible.cpuS) : '-')],
  ['peak RSS check·converge', (r) => `${r.check.rssMiB.toFixed(0)}·${r.first.rssMiB.toFixed(0)} MiB`],
];
if (jsonOut) {
  const text = `${JSON.stringify({ cores, cpuModel, rebootDelayS: DELAY_S, rows }, null, 2)}\n`;
  if (jsonOut === '-') process.stdout.write(text);
  else writeFileSync(jsonOut, text);
}
if (rows.length && jsonOut !== '-') {
  const w = cols.map(([h, f]) => Math.max(h.length, ...rows.map((r) => f(r).length)));
  console.log(cols.map(([h], i) => h.padStart(w[i]!)).join('  '));
  for (const r of rows) console.log(cols.map(([, f], i) => f(r).padStart(w[i]!)).join('  '));
  console.log(
    `\n${cores} cores (${cpuModel}). Wall times: medians of ${RUNS} rounds on the same converged nodes (floors, check, apply and Ansible taking turns); converge: one run. ssh true / probe floor: OpenSSH to every node in parallel ` +
      '(`ssh host true`; `ssh host sh -s` < the facts probe), with the key exchange and cipher passthru negotiates (curve25519, AES-128-GCM). check / apply no-op: on converged nodes. converge --no-reboot: the first ' +
      'apply on fresh nodes. ansible no-op: bench/ansible-host-stage.yaml (gather facts, the same files), forks N, pipelining. cmds/host: ' +
      'commands per host counted by the nodes\' sshd (median). CPU and peak RSS: the controller process (user + system, with its children).' +
      (rows.some((r) => crowded(r.n))
        ? ` Above N = 50, passthru runs with connect_timeout: ${CONNECT_TIMEOUT_S} (the lab's cores, shared by N nodes, delay handshakes), and there is no full converge: check and apply --no-reboot run on the nodes as the first converge left them (nothing to change, a reboot pending; the lab cannot boot that many nodes at once on these cores).`
        : ''),
  );
}
