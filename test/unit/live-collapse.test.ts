/**
 * The live tree at fleet size, on a real terminal (tmux): from 50 hosts in a batch, the hosts that
 * finished well collapse into one "N of M hosts done" line, the failed ones stay expanded, the
 * running one shows its task; under 50, every host keeps its line. Made-up events
 * (test/helpers/live-replay.ts) drive the real reporter, so no lab is needed.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const isRoot = process.getuid?.() === 0;
if (isRoot && spawnSync('tmux', ['-V']).status !== 0) {
  spawnSync('sh', [join(ROOT, 'scripts/install-test-deps.sh')], { stdio: 'inherit' });
}
const hasTmux = spawnSync('tmux', ['-V']).status === 0;

const capture = (session: string) =>
  execFileSync('tmux', ['capture-pane', '-p', '-J', '-S', '-300', '-t', session], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trimEnd())
    .filter(Boolean);

async function replay(n: number): Promise<{ mid: string[]; end: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'passthru-live-'));
  const session = `passthru-live-${process.pid}-${n}`;
  const mark = join(dir, 'mark');
  try {
    execFileSync('tmux', [
      'new-session', '-d', '-s', session, '-x', '120', '-y', '80',
      `cd '${ROOT}' && env -u CI -u NO_COLOR TERM=xterm-256color node --import tsx test/helpers/live-replay.ts ${n} '${mark}'; touch '${mark}.done'; sleep 600`,
    ]);
    const wait = async (f: string) => {
      for (let i = 0; i < 600 && !existsSync(f); i++) await new Promise((r) => setTimeout(r, 100));
      if (!existsSync(f)) throw new Error(`the replay did not reach ${f}:\n${capture(session).join('\n')}`);
    };
    await wait(mark);
    await new Promise((r) => setTimeout(r, 400)); // one more frame
    const mid = capture(session);
    writeFileSync(`${mark}.go`, '');
    await wait(`${mark}.done`);
    return { mid, end: capture(session) };
  } finally {
    spawnSync('tmux', ['kill-session', '-t', session]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const hostLines = (screen: string[]) => screen.filter((l) => /pve-\d{3}/.test(l));

test('60 hosts: the finished ones in one line, failures expanded, the running host with its task', async (t) => {
  if (!hasTmux) return t.fail('tmux is needed (scripts/install-deps.sh test installs it, as root)');
  const { mid, end } = await replay(60);
  const screen = mid.join('\n');
  t.regex(screen, /57 of 60 hosts done {2}ok=57 changed=57 skipped=0/, screen);
  t.regex(screen, /pve-060\n.*vfio › vfio-pci claims the chosen devices/, 'the running host shows its task');
  for (const h of ['pve-059', 'pve-058']) t.regex(screen, new RegExp(`${h} .*failed=1`), `${h} failed, expanded`);
  t.true(hostLines(mid).length <= 8, `only the running and the failed hosts have lines:\n${screen}`);
  const final = end.join('\n');
  t.regex(final, /58 of 60 hosts done {2}ok=58 changed=57/, final);
  t.false(/^\W*pve-0(0[1-9]|[1-4]\d|5[0-7]|60) /m.test(final), `no host that finished well has a line of its own:\n${final}`);
  t.regex(final, /pve-059: no space left on device/, 'the failure details below the tree');
});

test('under 50 hosts every host keeps its line', async (t) => {
  if (!hasTmux) return t.fail('tmux is needed (scripts/install-deps.sh test installs it, as root)');
  const { end } = await replay(12);
  const final = end.join('\n');
  t.false(/hosts done/.test(final), final);
  for (let i = 1; i <= 12; i++) t.regex(final, new RegExp(`pve-${String(i).padStart(3, '0')}\\s+ok=`), final);
});
