/**
 * What a person sees on a real terminal: the CLI runs inside tmux (a pseudo-terminal, so the
 * listr2 tree is drawn as on a desktop), and the test reads the screen back with
 * `tmux capture-pane` (text, no escape codes). On a 3-node lab cluster: `facts`, an `apply`
 * with a rolling reboot, a drift `check`, and a failed gate. The screens are kept under
 * $PASSTHRU_SCREENS when set (the README's captures come from such a run).
 * Needs root (the lab) and tmux (scripts/install-deps.sh test).
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labStatus, labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import { isRoot, labSshOptions, labTest as lab, tearDownLab, tempDir } from '../helpers/lab.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PLAYBOOK = 'playbooks/gpu-passthrough.yaml';
// tmux comes with the test group of scripts/install-deps.sh: installed here when missing (root).
if (isRoot && spawnSync('tmux', ['-V']).status !== 0) {
  spawnSync('sh', [fileURLToPath(new URL('../../scripts/install-test-deps.sh', import.meta.url))], { stdio: 'inherit' });
}
const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const SESSION = `passthru-term-${process.pid}`;
/** The CLI from the sources (bin/passthru.js runs the compiled dist/, which may be older than the tree). */
const CLI = "const { main } = await import('./src/cli/main.ts'); process.exitCode = await main(process.argv.slice(1));";

let info: LabInfo | undefined;
let dir = '';

test.before(async () => {
  if (!isRoot || !hasTmux) return;
  dir = tempDir('passthru-term-lab-');
  info = await labUp({ dir, scenarios: ['cluster3'], baseAddr: '127.0.131.1', rebootDelayS: 1 });
});

test.after.always(async () => {
  spawnSync('tmux', ['kill-session', '-t', SESSION]);
  await tearDownLab(dir);
});

/**
 * Runs the CLI (`passthru ARGS`, from the sources) in a fresh tmux window (120x60, TERM=xterm-256color, no CI
 * variable so the tree is drawn), waits until it exits, and returns the screen and the exit code.
 */
async function onScreen(t: ExecutionContext, name: string, args: string[], timeoutMs = 560_000): Promise<{ screen: string; code: number }> {
  const done = join(dir, `${name}.rc`);
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  spawnSync('tmux', ['kill-session', '-t', SESSION]);
  execFileSync('tmux', [
    'new-session', '-d', '-s', SESSION, '-x', '120', '-y', '60',
    `cd '${ROOT}' && env -u CI -u NO_COLOR TERM=xterm-256color node --import tsx --input-type=module -e "${CLI}" ${quoted}; echo $? > '${done}'; sleep 600`,
  ]);
  t.timeout(timeoutMs + 30_000);
  const until = Date.now() + timeoutMs;
  while (!existsSync(done) && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
  const screen = execFileSync('tmux', ['capture-pane', '-p', '-J', '-S', '-300', '-t', SESSION], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  spawnSync('tmux', ['kill-session', '-t', SESSION]);
  if (process.env.PASSTHRU_SCREENS) {
    mkdirSync(process.env.PASSTHRU_SCREENS, { recursive: true });
    writeFileSync(join(process.env.PASSTHRU_SCREENS, `${name}.txt`), `${screen}\n`);
  }
  t.true(existsSync(done), `${name} finished within ${timeoutMs / 1000} s:\n${screen}`);
  t.false(/\x1b\[/.test(screen), 'the captured text has no escape codes');
  return { screen, code: existsSync(done) ? Number(readFileSync(done, 'utf8').trim()) : -1 };
}

const nodes = () => info!.nodes.map((n) => n.name);
const inv = () => info!.inventoryPath;

lab('facts on a terminal: per host CPU, kernel, bootloader, IOMMU, the GPU with its group and verdict, the variables to paste', async (t) => {
  if (!hasTmux) return t.fail('tmux is missing: scripts/install-deps.sh test');
  const { screen, code } = await onScreen(t, 'facts', ['facts', '-i', inv()]);
  t.is(code, 0, screen);
  for (const h of nodes()) t.regex(screen, new RegExp(`^${h}$`, 'm'), screen);
  t.regex(screen, /^ {2}cpu {9}intel, virtualisation on \(vmx\)$/m);
  t.regex(screen, /^ {2}kernel {6}6\.8\.12-4-pve \(ACS override patch: yes\)$/m);
  t.regex(screen, /^ {2}bootloader {2}grub-bios/m);
  t.regex(screen, /^ {2}iommu {7}on, interrupt remapping on$/m);
  t.regex(screen, /^ {2}gpu {9}ca:00 {2}NVIDIA .*\[suggested\]$/m);
  t.regex(screen, /isolation: isolated \(group \d+\)/);
  t.is(screen.match(/^ {4}passthrough_slots: \["ca:00"\]$/gm)?.length, 3, screen);
});

lab('apply on a terminal: the tree per host, the rolling reboot, what changed where, the recap', async (t) => {
  const { screen, code } = await onScreen(t, 'apply', ['apply', PLAYBOOK, '-i', inv(), '--guests', 'shutdown']);
  t.is(code, 0, screen);
  t.regex(screen, /^Host kernel and modules$/m);
  for (const h of nodes()) {
    t.regex(screen, new RegExp(`^✔ ${h}\\s+ok=\\d+ changed=\\d+ failed=0 skipped=\\d+ rebooted$`, 'm'), screen);
    t.regex(screen, new RegExp(`^${h}\\s+ok=\\d+\\s+changed=\\d+\\s+failed=0\\s+skipped=\\d+\\s+unreachable=0\\s+rebooted$`, 'm'), screen);
  }
  t.regex(screen, /^warning: stage "Container toolkit in the GPU guests": no host matches 'gpu_guests'; skipped$/m);
  t.regex(screen, /^Changed:$/m);
  t.regex(screen, /^ {2}pve-c1, pve-c2, pve-c3: iommu › IOMMU parameters on the kernel command line/m);
  t.regex(screen, /^RECAP \(ok counts changed tasks too, as Ansible does\)$/m);
  t.regex(screen, /exit 0 \(ok\)$/m);
});

lab('check on a terminal after a hand-made drift: the diff once, what would change where, exit 5', async (t) => {
  const c2 = nodes()[1];
  const conf = nodeFile(dir, c2, '/etc/modprobe.d/vfio.conf')!;
  nodeFile(dir, c2, '/etc/modprobe.d/vfio.conf', conf.replace(/disable_vga=1/, ''));
  const { screen, code } = await onScreen(t, 'check', ['check', PLAYBOOK, '-i', inv()]);
  t.is(code, 5, screen);
  t.regex(screen, new RegExp(`on ${c2}$`, 'm'), screen);
  t.regex(screen, /^--- a\/etc\/modprobe\.d\/vfio\.conf$/m);
  t.regex(screen, /^\+options vfio-pci ids=.* disable_vga=1$/m);
  t.regex(screen, /^Would change:$/m);
  t.regex(screen, new RegExp(`^ {2}${c2}: vfio › `, 'm'));
  t.regex(screen, /^RECAP \(check mode: nothing was changed; ok counts tasks that would change too\)$/m);
  t.regex(screen, /exit 5 \(drift: something would change\)$/m);
  t.is(nodeFile(dir, c2, '/etc/modprobe.d/vfio.conf'), conf.replace(/disable_vga=1/, ''), 'check changed nothing');
  nodeFile(dir, c2, '/etc/modprobe.d/vfio.conf', conf);
});

lab('a failed gate on a terminal: the host marked failed, the message and the hint below the tree, exit 2', async (t) => {
  const c3 = nodes()[2];
  // VT-d turned off in the firmware after converging, then a reboot: the IOMMU gate must fail.
  const pj = join(dir, 'nodes', c3, 'profile.json');
  const prof = JSON.parse(readFileSync(pj, 'utf8'));
  prof.firmware.iommu = false;
  writeFileSync(pj, `${JSON.stringify(prof, null, 2)}\n`);
  const before = (await labStatus(dir)).find((s) => s.name === c3)!.bootId;
  execFileSync('ssh', [...labSshOptions(dir), `root@${info!.nodes[2].address}`, 'reboot']);
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    const st = (await labStatus(dir)).find((s) => s.name === c3)!;
    if (st.state === 'up' && st.bootId && st.bootId !== before) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  await new Promise((r) => setTimeout(r, 500));
  const { screen, code } = await onScreen(t, 'gate', ['apply', PLAYBOOK, '-i', inv(), '--limit', c3, '--tags', 'verify', '--failed-hosts', join(dir, 'failed-hosts')]);
  t.is(code, 2, screen);
  t.regex(screen, new RegExp(`^✖ ${c3}`, 'm'), screen);
  t.regex(screen, new RegExp(`^FAILED ${c3} \\| Host kernel and modules › iommu › gate: .*`, 'm'));
  t.regex(screen, /expected IOMMU groups in \/sys\/kernel\/iommu_groups, found none/);
  t.regex(screen, /hint: .*enable VT-d in the firmware setup/);
  t.regex(screen, /exit 2 \(a host failed\)$/m);
  t.regex(screen, /failed or unreachable hosts written to .*: rerun them with --limit @/);
});
