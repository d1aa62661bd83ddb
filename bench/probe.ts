/**
 * What the facts probe costs on a lab node (not a test: it prints figures). Needs root (the lab
 * does). `npm run bench -- probe [RUNS]`
 *
 * A lab of one node per converging profile; on each node, RUNS times (default 5), OpenSSH runs
 * the probe (`sh -s` < probeScript()) under bash's `time` inside the node: the CPU (user + system)
 * of the probe and every program it started, the median printed per node. Then one run with a
 * clock around each section, so the costly sections (on a lab node: the stub programs) show.
 * A real node answers most sections from the kernel in microseconds; on a lab node the stubs
 * (bash scripts, node for qm/pct) cost what they cost here, which is what this measures.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labUp } from '../src/lab/index.ts';
import { probeScript } from '../src/facts/probe.ts';

const RUNS = Number(process.argv[2] ?? 5) || 5;
const PROFILES = ['intel-grub-pve8-rtx4090', 'amd-systemdboot-zfs-pve8-rx6800', 'pve7-kernel515', 'debian-guest-nvidia-docker'];
const dir = mkdtempSync(join(tmpdir(), 'passthru-bench-probe-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
/** The probe with a clock read before each section; the costs go to stderr as `SECTION MS`. */
function timedProbe(script: string): string {
  const mark = /^printf '\\n@@passthru-facts:%s@@\\n' '([^']+)'$/;
  const clock = (next: string) =>
    `__t1=$(date +%s%N); [ -n "$__sec" ] && echo "$__sec $(( (__t1-__t0)/1000000 ))" >&2; __sec=${next}; __t0=$(date +%s%N)`;
  return script
    .split('\n')
    .flatMap((l) => {
      const m = mark.exec(l);
      if (m) return [clock(m[1]!), l];
      if (l.startsWith('exit 0')) return [clock(''), l];
      return [l];
    })
    .join('\n');
}

let up = false;
try {
  const info = await labUp({ dir: join(dir, 'lab'), scenarios: PROFILES, baseAddr: '127.0.126.1', rebootDelayS: 1 });
  up = true;
  const script = probeScript();
  for (const n of info.nodes) {
    const ssh = ['-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${join(info.dir, 'ssh', 'known_hosts')}`, '-i', join(info.dir, 'ssh', 'id_ed25519'), `root@${n.address}`];
    const cpu: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const out = execFileSync('ssh', [...ssh, `bash -c 'TIMEFORMAT="%U %S"; time sh -s > /dev/null' 2>&1`], { input: script }).toString().trim();
      const [u, s] = out.split('\n').pop()!.split(' ').map(Number);
      cpu.push(u! + s!);
    }
    const sections = execFileSync('ssh', [...ssh, `sh -s 2>&1 >/dev/null`], { input: timedProbe(script) })
      .toString()
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
      .filter((p) => p.length === 2)
      .sort((a, b) => Number(b[1]) - Number(a[1]));
    console.log(`${n.name} (${n.profile}): probe CPU median ${(median(cpu) * 1000).toFixed(0)} ms of ${RUNS} runs; costliest sections (wall, ms): ${sections.slice(0, 6).map(([s, ms]) => `${s} ${ms}`).join(', ')}`);
  }
} catch (e) {
  process.stderr.write(`bench: could not run: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
} finally {
  if (up) await labDown(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
}
