/**
 * Converge benchmark on the lab (not a test: it prints figures). Needs root (the lab does).
 *
 *   node --import tsx bench/converge.ts          # N = 10, 50
 *   node --import tsx bench/converge.ts 10 20    # chosen N
 *
 * For each N: a lab of N nodes with a reboot delay of 5 s, then, through the CLI in-process
 * (`main(argv, io)`, as `passthru` runs it):
 *  - `apply playbooks/gpu-passthrough.yaml --guests shutdown --forks N --progress quiet --json`
 *    on the fresh lab (full converge, with reboots), its wall time compared to the unavoidable
 *    waits: standalone nodes reboot in parallel (one delay if any rebooted); the members of one
 *    cluster one at a time (members rebooted × delay); clusters are independent. So
 *    unavoidable = max(delay if a standalone node rebooted, max over clusters of rebooted × delay),
 *    overhead = wall − unavoidable;
 *  - the same apply again (no-op: one probe and reads per host per stage), and `check`;
 *  - per host, time from run start to its first facts (connect + probe) and the probe alone;
 *  - the reboot window: first reboot sent → last node back, time a node is down, and per cluster
 *    member the whole cycle (slot granted → next member may go);
 *  - peak RSS of this process (the controller; cumulative over the run).
 * Node mix: cycles of the profiles that converge (intel, amd, pve7, shared-group, cluster3's three
 * members, the GPU guest), cut to N. The two profiles the playbook refuses by design
 * (iommu-off-firmware, two-identical-gpus-bootvga) are left out: with `max_fail_percentage: 0`
 * they stop the run, and that is not a converge. All cluster3 members join the one cluster the
 * profile names. Hosts a converge leaves failed are printed with the report's messages.
 * The lab is brought down at the end (also on error or signal): only the one this run started.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootLog, labDown, labStatus, labUp, type NodeStatus } from '../src/lab/index.ts';
import { main, type Io } from '../src/cli/main.ts';
import { EventBus, type RunEvent } from '../src/engine/events.ts';
import type { RunReport } from '../src/model/types.ts';
import { scenariosFor } from './mix.ts';

const DELAY_S = 5;
const BASE_ADDR = '127.0.6.1';
const PLAYBOOK = fileURLToPath(new URL('../playbooks/gpu-passthrough.yaml', import.meta.url));
/** Profiles that converge; cluster3 stands for its three members. */

const sizes = process.argv.slice(2).map(Number).filter((n) => Number.isInteger(n) && n > 0 && n <= 250);
const Ns = sizes.length ? sizes : [10, 50];

const now = () => performance.now();
const s = (msv: number) => `${(msv / 1000).toFixed(1)} s`;
const median = (xs: number[]) => {
  if (!xs.length) return NaN;
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
};
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

// The engine's events, seen from here without touching the CLI: every EventBus the run creates
// emits through the prototype, so timestamps of facts and reboots come from the run itself.
let events: Array<{ t: number; e: RunEvent }> | null = null;
const emit = EventBus.prototype.emit;
EventBus.prototype.emit = function (this: EventBus, e: RunEvent) {
  events?.push({ t: now(), e });
  emit.call(this, e);
};

const quietIo: Io = { out: () => {}, err: (m) => process.stderr.write(m), isTTY: false };

interface Run {
  code: number;
  wallMs: number;
  report: RunReport | null;
  events: Array<{ t: number; e: RunEvent }>;
  t0: number;
}

async function passthru(cmd: 'apply' | 'check', inventory: string, dir: string, n: number, tag: string): Promise<Run> {
  const json = join(dir, `${tag}.json`);
  const argv = [cmd, PLAYBOOK, '-i', inventory, '--guests', 'shutdown', '--forks', String(n), '--progress', 'quiet',
    '--json', json, '--failed-hosts', join(dir, `${tag}.failed`)];
  events = [];
  const t0 = now();
  const code = await main(argv, quietIo);
  const wallMs = now() - t0;
  const ev = events;
  events = null;
  let report: RunReport | null = null;
  try {
    report = JSON.parse(readFileSync(json, 'utf8')) as RunReport;
  } catch {
    /* no report: the run did not get that far; the exit code says why */
  }
  return { code, wallMs, report, events: ev, t0 };
}

/** Failed/unreachable hosts with their messages, from the report. */
function failures(r: Run): string[] {
  if (!r.report) return [`no JSON report (exit ${r.code})`];
  const out: string[] = [];
  for (const [h, { tasks }] of Object.entries(r.report.hosts)) {
    for (const t of tasks) {
      if (t.status === 'failed' || t.status === 'unreachable')
        out.push(`${h}: ${t.status} in ${t.role || '-'} › ${t.task}: ${t.msg.split('\n')[0]}`);
    }
  }
  for (const [h, rc] of Object.entries(r.report.recap)) if (rc.rebootPending) out.push(`${h}: reboot pending`);
  return out.length ? out : [`exit ${r.code}, no failed task in the report`];
}

interface Row {
  n: number;
  standalone: number;
  clusters: string;
  rebooted: number;
  code: number;
  wall: number;
  unavoidable: number;
  noop: number;
  noopCode: number;
  noopChanged: number;
  check: number;
  checkCode: number;
  facts: number;
  probe: number;
  rssMiB: number;
  // where the converge's time goes
  beforeReboot: number;
  rebootWindow: number;
  afterReboot: number;
  downFor: number;
  memberCycle: number;
  detectLag: number;
  labDown: number;
  failed: string[];
}

function analyse(n: number, labDir: string, nodes: NodeStatus[], conv: Run): Omit<Row, 'noop' | 'noopCode' | 'noopChanged' | 'check' | 'checkCode' | 'rssMiB' | 'failed'> {
  const recap = conv.report?.recap ?? {};
  const rebooted = new Set(Object.entries(recap).filter(([, r]) => r.rebooted).map(([h]) => h));
  const clusterOf = new Map(nodes.map((x) => [x.name, x.cluster]));
  const perCluster = new Map<string, { members: number; rebooted: number }>();
  for (const x of nodes) {
    if (!x.cluster) continue;
    const c = perCluster.get(x.cluster) ?? { members: 0, rebooted: 0 };
    c.members++;
    if (rebooted.has(x.name)) c.rebooted++;
    perCluster.set(x.cluster, c);
  }
  const standaloneRebooted = [...rebooted].some((h) => !clusterOf.get(h));
  const unavoidable = Math.max(standaloneRebooted ? DELAY_S * 1000 : 0, ...[...perCluster.values()].map((c) => c.rebooted * DELAY_S * 1000));

  const ev = conv.events;
  const firstFacts = new Map<string, { at: number; probe: number }>();
  for (const { t, e } of ev) if (e.type === 'facts' && !firstFacts.has(e.host)) firstFacts.set(e.host, { at: t - conv.t0, probe: e.durationMs });
  const starts = ev.filter((x) => x.e.type === 'reboot-start').map((x) => x.t);
  const ups = ev.filter((x) => x.e.type === 'reboot-up');
  const end = ev.find((x) => x.e.type === 'run-end')?.t ?? conv.t0 + conv.wallMs;
  const firstStart = starts.length ? Math.min(...starts) : end;
  const lastUp = ups.length ? Math.max(...ups.map((x) => x.t)) : firstStart;
  // A member's cycle: from its reboot-start to the next member's reboot-start in the same cluster
  // (the last one: to its own up). Includes the reboot command, the delay, boot, reconnect,
  // probe, quorum check and the next member's pre-reboot probe and guest shutdown.
  const cycles: number[] = [];
  const byCluster = new Map<string, number[]>();
  for (const { t, e } of ev) {
    if (e.type !== 'reboot-start') continue;
    const c = clusterOf.get(e.host);
    if (c) byCluster.set(c, [...(byCluster.get(c) ?? []), t]);
  }
  for (const ts of byCluster.values()) for (let i = 1; i < ts.length; i++) cycles.push(ts[i]! - ts[i - 1]!);

  // Node side: the boot's `up` line (the node's sshd is about to listen) → the controller's
  // reboot-up (new boot_id proven): reconnect back-off, probe, test command.
  // And the node's own `down` (written by its reboot command) → `up`: what the lab costs.
  const lags: number[] = [];
  const labDowns: number[] = [];
  for (const { e } of ev) {
    if (e.type !== 'reboot-up') continue;
    const log = bootLog(labDir, e.host);
    const i = log.findIndex((b) => b.event === 'up' && b.bootId === e.bootId);
    if (i < 0) continue;
    lags.push(e.at - log[i]!.at);
    const down = log.slice(0, i).reverse().find((b) => b.event === 'down');
    if (down) labDowns.push(log[i]!.at - down.at);
  }

  return {
    n,
    detectLag: median(lags),
    labDown: median(labDowns),
    standalone: nodes.filter((x) => !x.cluster).length,
    clusters: [...perCluster].map(([c, v]) => `${c}:${v.rebooted}/${v.members}`).join(' ') || '-',
    rebooted: rebooted.size,
    code: conv.code,
    wall: conv.wallMs,
    unavoidable,
    facts: median([...firstFacts.values()].map((f) => f.at)),
    probe: median([...firstFacts.values()].map((f) => f.probe)),
    beforeReboot: firstStart - conv.t0,
    rebootWindow: lastUp - firstStart,
    afterReboot: end - lastUp,
    downFor: mean(ups.map((x) => (x.e as Extract<RunEvent, { type: 'reboot-up' }>).downForMs)),
    memberCycle: median(cycles),
  };
}

/** The temp directory of the lab this run started (the lab itself is in `<dir>/lab`). */
let liveDir: string | null = null;
async function cleanup(): Promise<void> {
  const d = liveDir;
  liveDir = null;
  if (!d) return;
  // Only once the lab is down: a lab's files must outlive its processes (its stop files).
  await labDown(join(d, 'lab'));
  rmSync(d, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`bench: ${sig}, bringing the lab down\n`);
    void cleanup().finally(() => process.exit(130));
  });
}
const hardStop = setTimeout(() => {
  process.stderr.write('bench: time box (30 min) exceeded, bringing the lab down\n');
  void cleanup().finally(() => process.exit(1));
}, 30 * 60_000);

async function runN(n: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), `passthru-bench-converge-${n}-`));
  liveDir = dir;
  try {
    const t = now();
    const info = await labUp({ dir: join(dir, 'lab'), scenarios: scenariosFor(n), rebootDelayS: DELAY_S, baseAddr: BASE_ADDR });
    process.stderr.write(`bench: N=${n}: lab up in ${s(now() - t)} (${info.nodes.length} nodes); converging...\n`);
    const nodes = await labStatus(info.dir);
    const conv = await passthru('apply', info.inventoryPath, dir, n, 'converge');
    const failed = conv.code === 0 ? [] : failures(conv);
    process.stderr.write(`bench: N=${n}: converge exit ${conv.code} in ${s(conv.wallMs)}; no-op apply...\n`);
    const noop = await passthru('apply', info.inventoryPath, dir, n, 'noop');
    if (noop.code !== 0) failed.push(...failures(noop).map((f) => `(no-op apply) ${f}`));
    process.stderr.write(`bench: N=${n}: no-op exit ${noop.code} in ${s(noop.wallMs)}; check...\n`);
    const chk = await passthru('check', info.inventoryPath, dir, n, 'check');
    if (chk.code !== 0) failed.push(...failures(chk).map((f) => `(check) ${f}`));
    const rssMiB = process.resourceUsage().maxRSS / 1024;
    return {
      ...analyse(n, info.dir, nodes, conv),
      noop: noop.wallMs,
      noopCode: noop.code,
      noopChanged: Object.values(noop.report?.recap ?? {}).reduce((a, r) => a + r.changed + (r.rebooted ? 1 : 0), 0),
      check: chk.wallMs,
      checkCode: chk.code,
      rssMiB,
      failed,
    };
  } finally {
    await cleanup();
  }
}

const rows: Row[] = [];
try {
  for (const n of Ns) {
    process.stderr.write(`bench: N=${n}: lab up (${scenariosFor(n).join(', ')})...\n`);
    rows.push(await runN(n));
  }
} catch (e) {
  process.stderr.write(`bench: could not run: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
} finally {
  clearTimeout(hardStop);
}

if (rows.length) {
  const cols: Array<[string, (r: Row) => string]> = [
    ['N', (r) => String(r.n)],
    ['unclustered', (r) => String(r.standalone)],
    ['cluster:reb/all', (r) => r.clusters],
    ['rebooted', (r) => String(r.rebooted)],
    ['exit', (r) => String(r.code)],
    ['converge', (r) => s(r.wall)],
    ['unavoidable', (r) => s(r.unavoidable)],
    ['overhead', (r) => s(r.wall - r.unavoidable)],
    ['ovh/node', (r) => `${((r.wall - r.unavoidable) / r.n).toFixed(0)} ms`],
    ['no-op (exit)', (r) => `${s(r.noop)} (${r.noopCode})`],
    ['check (exit)', (r) => `${s(r.check)} (${r.checkCode})`],
    ['facts p50', (r) => `${r.facts.toFixed(0)} ms`],
    ['probe p50', (r) => `${r.probe.toFixed(0)} ms`],
    ['peak RSS', (r) => `${r.rssMiB.toFixed(0)} MiB`],
  ];
  const w = cols.map(([h, f]) => Math.max(h.length, ...rows.map((r) => f(r).length)));
  console.log(cols.map(([h], i) => h.padStart(w[i]!)).join('  '));
  for (const r of rows) console.log(cols.map(([, f], i) => f(r).padStart(w[i]!)).join('  '));
  console.log('\nwhere the converge goes:');
  const cols2: Array<[string, (r: Row) => string]> = [
    ['N', (r) => String(r.n)],
    ['before 1st reboot', (r) => s(r.beforeReboot)],
    ['reboot window', (r) => s(r.rebootWindow)],
    ['after last up', (r) => s(r.afterReboot)],
    ['node down (mean)', (r) => (Number.isNaN(r.downFor) ? '-' : s(r.downFor))],
    ['member cycle p50', (r) => (Number.isNaN(r.memberCycle) ? '-' : s(r.memberCycle))],
    ['lab down→up p50', (r) => (Number.isNaN(r.labDown) ? '-' : s(r.labDown))],
    ['node up → seen p50', (r) => (Number.isNaN(r.detectLag) ? '-' : s(r.detectLag))],
    ['no-op changed+rebooted', (r) => String(r.noopChanged)],
  ];
  const w2 = cols2.map(([h, f]) => Math.max(h.length, ...rows.map((r) => f(r).length)));
  console.log(cols2.map(([h], i) => h.padStart(w2[i]!)).join('  '));
  for (const r of rows) console.log(cols2.map(([, f], i) => f(r).padStart(w2[i]!)).join('  '));
  console.log(
    `\nreboot delay ${DELAY_S} s; unavoidable = max(${DELAY_S} s if a standalone node rebooted, max over clusters of rebooted members × ${DELAY_S} s); ` +
      'overhead = converge − unavoidable. facts p50 = median per host of run start → its first facts (connect + probe); probe p50 = the probe alone. ' +
      'node down = reboot sent → new boot proven; member cycle = one cluster member\'s reboot-start → the next one\'s; lab down→up = the node\'s own reboot command → its boot (boots.log: lab cost, ≥ delay); node up → seen = that boot → the run has proven it. Peak RSS is this process (cumulative over the run).',
  );
  for (const r of rows) {
    if (!r.failed.length) continue;
    console.log(`\nN=${r.n}: not clean:`);
    for (const f of r.failed) console.log(`  ${f}`);
  }
}
