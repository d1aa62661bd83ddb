/**
 * The reboot coordinator against a small in-test simulation of nodes and clusters: a fake
 * Connection whose reboot command takes the node down for a while, a reconnect that waits until
 * it is up, and a probe whose boot_id changes with each boot and whose quorum is computed from
 * how many simulated members are up.
 */
import test from 'ava';
import type { Connection, ExecResult, ReconnectOptions } from '../../src/transport/connection.ts';
import type { Facts } from '../../src/facts/types.ts';
import type { Stage } from '../../src/model/types.ts';
import { EventBus, type RunEvent } from '../../src/engine/events.ts';
import {
  coordinateReboots,
  clusterDownLimit,
  quorumOf,
  REBOOT_COMMAND,
  type RebootCandidate,
  type RebootOptions,
} from '../../src/engine/reboot.ts';
import { stoppedGuestsText } from '../../src/engine/reboot-rules.ts';

type Guest = Facts['guests'][number];

interface SimNode {
  name: string;
  cluster: string | null;
  /** `pvecm status` without its `Name:` line (pmxcfs could not read corosync.conf). */
  hideName?: boolean;
  /** corosync down on this member: `Cannot initialize CMAP service`. */
  corosyncDown?: boolean;
  up: boolean;
  boot: number;
  /** How long the node stays down. */
  downMs: number;
  /** Delay between the reboot command and the node actually going down. */
  lagMs: number;
  neverBack: boolean;
  /** The reboot command is accepted but nothing happens. */
  ignoresReboot: boolean;
  /** `qm start` / `pct start` exit 1 and the guest stays stopped. */
  startFails?: boolean;
  guests: Guest[];
  conns: FakeConn[];
}

class Sim {
  readonly nodes = new Map<string, SimNode>();
  /** Every command, in order, as `node: command`. */
  readonly log: string[] = [];
  readonly intervals: Array<{ node: string; down: number; up?: number }> = [];
  readonly maxDown = new Map<string, number>();
  probes = 0;

  add(name: string, opts: Partial<SimNode> = {}): SimNode {
    const n: SimNode = {
      name,
      cluster: null,
      up: true,
      boot: 1,
      downMs: 60,
      lagMs: 15,
      neverBack: false,
      ignoresReboot: false,
      guests: [],
      conns: [],
      ...opts,
    };
    this.nodes.set(name, n);
    return n;
  }

  members(cluster: string): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.cluster === cluster);
  }

  goDown(n: SimNode): void {
    n.up = false;
    for (const c of n.conns) c.alive = false;
    this.intervals.push({ node: n.name, down: Date.now() });
    if (n.cluster) {
      const down = this.members(n.cluster).filter((m) => !m.up).length;
      this.maxDown.set(n.cluster, Math.max(this.maxDown.get(n.cluster) ?? 0, down));
    }
    if (!n.neverBack) {
      setTimeout(() => {
        n.boot++;
        n.up = true;
        const iv = [...this.intervals].reverse().find((i) => i.node === n.name)!;
        iv.up = Date.now();
      }, n.downMs);
    }
  }

  conn(name: string): FakeConn {
    const c = new FakeConn(this, this.nodes.get(name)!);
    this.nodes.get(name)!.conns.push(c);
    return c;
  }

  facts(n: SimNode): Facts {
    const base = baseFacts(n.name);
    base.bootId = `${n.name}-boot-${n.boot}`;
    base.guests = n.guests.map((g) => ({ ...g }));
    if (n.cluster) {
      const members = this.members(n.cluster);
      const up = members.filter((m) => m.up).length;
      base.cluster = {
        name: n.cluster,
        quorate: up >= quorumOf(members.length),
        expectedVotes: members.length,
        totalVotes: up,
        nodes: members.map((m) => m.name),
      };
      if (n.hideName) base.cluster = { ...base.cluster, name: null, member: true };
      if (n.corosyncDown) {
        base.cluster = { ...base.cluster, member: true, quorate: false, expectedVotes: 0, totalVotes: 0, quorumUnknown: 'Cannot initialize CMAP service' };
      }
    }
    return base;
  }

  probe = async (conn: Connection): Promise<Facts> => {
    const c = conn as FakeConn;
    this.probes++;
    await sleep(1);
    if (!c.alive || !c.node.up) throw new Error(`${c.host}: connection lost`);
    return this.facts(c.node);
  };
}

class FakeConn implements Connection {
  alive = true;
  constructor(
    private sim: Sim,
    readonly node: SimNode,
  ) {}
  get host(): string {
    return this.node.name;
  }
  async exec(command: string): Promise<ExecResult> {
    await sleep(1);
    if (!this.alive || !this.node.up) throw new Error(`${this.host}: connection lost`);
    this.sim.log.push(`${this.host}: ${command}`);
    if (command === REBOOT_COMMAND && !this.node.ignoresReboot) {
      setTimeout(() => this.sim.goDown(this.node), this.node.lagMs);
    }
    const m = /^(qm|pct) shutdown (\S+)/.exec(command);
    if (m) {
      const g = this.node.guests.find((x) => x.id === m[2] && x.kind === m[1]);
      if (g) setTimeout(() => (g.status = 'stopped'), 20);
    }
    const start = /^(qm|pct) start (\S+)$/.exec(command);
    if (start) {
      if (this.node.startFails) return { command, code: 1, stdout: '', stderr: 'start failed', durationMs: 1 };
      const g = this.node.guests.find((x) => x.id === start[2] && x.kind === start[1]);
      if (g) g.status = 'running';
    }
    return { command, code: 0, stdout: '', stderr: '', durationMs: 1 };
  }
  async write(): Promise<never> {
    throw new Error('not used');
  }
  async reconnect(opts: ReconnectOptions): Promise<void> {
    const end = Date.now() + opts.deadlineMs;
    this.alive = false;
    while (Date.now() < end) {
      if (this.node.up) {
        this.alive = true;
        return;
      }
      await sleep(3);
    }
    throw new Error(`${this.host}: reconnect timed out`);
  }
  async close(): Promise<void> {}
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function baseFacts(hostname: string): Facts {
  return {
    hostname,
    cpuVendor: 'intel',
    cpuVirtualization: true,
    kernelRelease: '6.8.12-4-pve',
    kernelVersion: '6.8.12',
    kernelsInstalled: ['6.8.12-4-pve'],
    kernelNext: '6.8.12-4-pve',
    pveVersion: '8.2.4',
    pveMajor: 8,
    bootloader: 'grub-uefi',
    bootloaderEvidence: [],
    cmdlineConfigured: '',
    cmdlineRunning: '',
    iommu: { active: false, evidence: [], irqRemapping: false, present: true },
    iommuGroups: {},
    pci: [],
    modules: [],
    memory: { totalKb: 0, hugepagesTotal: 0, hugepagesFree: 0, hugepageSizeKb: 2048 },
    packages: {},
    dkms: {},
    docker: { installed: false, runtimes: [] },
    cluster: { name: null, quorate: false, expectedVotes: 0, totalVotes: 0, nodes: [] },
    guests: [],
    bootId: `${hostname}-boot-1`,
    vms: [],
    containers: [],
    pveNodes: [],
    pciMappings: [],
    dri: [],
  };
}

function stage(over: Partial<Stage> = {}): Stage {
  return {
    name: 'Host kernel',
    hosts: 'all',
    roles: [],
    vars: {},
    anyErrorsFatal: false,
    reboot: 'if-needed',
    rebootTimeoutS: 2,
    guestPolicy: 'refuse',
    haMaintenance: false,
    maxDownPerCluster: 1,
    pos: { file: 'p.yaml', line: 1, col: 1 },
    ...over,
  };
}

function setup(sim: Sim, names: string[], over: Partial<RebootOptions> = {}, st: Partial<Stage> = {}) {
  const bus = new EventBus();
  const events: RunEvent[] = [];
  bus.on((e) => events.push(e));
  const cands: RebootCandidate[] = names.map((h) => {
    const conn = sim.conn(h);
    return { host: h, conn, facts: sim.facts(sim.nodes.get(h)!), reasons: ['kernel command line changed'] };
  });
  const opts: RebootOptions = { stage: stage(st), noReboot: false, check: false, bus, probe: sim.probe, pollMs: 5, ...over };
  return { cands, opts, events };
}

function cluster(sim: Sim, name: string, n: number, opts: Partial<SimNode> = {}): string[] {
  return Array.from({ length: n }, (_, i) => sim.add(`${name}-n${i + 1}`, { cluster: name, ...opts }).name);
}

function assertNoOverlap(t: import('ava').ExecutionContext, ivs: Array<{ down: number; up?: number }>) {
  const s = [...ivs].sort((a, b) => a.down - b.down);
  for (let i = 1; i < s.length; i++) {
    t.truthy(s[i - 1].up, 'previous member came back');
    t.true(s[i].down >= s[i - 1].up!, `member down at ${s[i].down} while another was down until ${s[i - 1].up}`);
  }
}

// ------------------------------------------------------------------ pure helpers

test('quorum and the down limit per cluster size', (t) => {
  t.is(quorumOf(3), 2);
  t.is(quorumOf(4), 3);
  t.is(quorumOf(5), 3);
  t.is(clusterDownLimit(3, 1), 1);
  t.is(clusterDownLimit(3, 5), 1);
  t.is(clusterDownLimit(5, 5), 2);
  t.is(clusterDownLimit(5, 1), 1);
  t.is(clusterDownLimit(4, 3), 1);
  t.is(clusterDownLimit(7, 9), 3);
  t.is(clusterDownLimit(2, 1), 0);
  t.is(clusterDownLimit(1, 1), 1);
  t.is(clusterDownLimit(5, 0), 1, 'a bound below 1 is taken as 1');
});

// ------------------------------------------------------------------ clusters

test('three-node cluster: rolling reboot, never two members down at once', async (t) => {
  const sim = new Sim();
  const names = cluster(sim, 'c1', 3);
  const { cands, opts, events } = setup(sim, names);
  const res = await coordinateReboots(cands, opts);

  t.deepEqual([...res.keys()], names);
  for (const h of names) {
    const r = res.get(h)!;
    t.is(r.status, 'rebooted', JSON.stringify(r));
    if (r.status === 'rebooted') {
      t.is(r.facts.bootId, `${h}-boot-2`);
      t.true(r.upAt >= r.downAt);
    }
  }
  t.is(sim.intervals.length, 3);
  t.true(sim.intervals.every((i) => i.up !== undefined));
  assertNoOverlap(t, sim.intervals);
  t.is(sim.maxDown.get('c1'), 1);
  // the progress display learns who waits for whom
  const waits = events.filter((e) => e.type === 'reboot-wait');
  t.true(waits.some((e) => e.type === 'reboot-wait' && e.host === 'c1-n2' && e.waitingFor === 'c1-n1'));
  t.true(waits.some((e) => e.type === 'reboot-wait' && e.host === 'c1-n3' && e.waitingFor === 'c1-n2'));
  const ups = events.filter((e) => e.type === 'reboot-up');
  t.is(ups.length, 3);
  t.true(ups.every((e) => e.type === 'reboot-up' && e.downForMs >= 0 && e.bootId.endsWith('boot-2')));
});

test('five-node cluster: max_down_per_cluster 5 is capped at 2; 1 keeps it serial', async (t) => {
  const sim = new Sim();
  const names = cluster(sim, 'c5', 5, { downMs: 80 });
  const { cands, opts } = setup(sim, names, {}, { maxDownPerCluster: 5 });
  const res = await coordinateReboots(cands, opts);
  t.true([...res.values()].every((r) => r.status === 'rebooted'));
  t.is(sim.maxDown.get('c5'), 2);

  const sim2 = new Sim();
  const names2 = cluster(sim2, 'd5', 5, { downMs: 30 });
  const s2 = setup(sim2, names2, {}, { maxDownPerCluster: 1 });
  await coordinateReboots(s2.cands, s2.opts);
  t.is(sim2.maxDown.get('d5'), 1);
  assertNoOverlap(t, sim2.intervals);
});

test('a member that never comes back: failed with its name, the rest of the cluster pending', async (t) => {
  const sim = new Sim();
  const names = cluster(sim, 'c1', 3);
  sim.nodes.get('c1-n2')!.neverBack = true;
  const { cands, opts } = setup(sim, names, {}, { rebootTimeoutS: 0.3 });
  const res = await coordinateReboots(cands, opts);

  t.is(res.get('c1-n1')!.status, 'rebooted');
  const f = res.get('c1-n2')!;
  t.is(f.status, 'failed');
  if (f.status === 'failed') {
    t.regex(f.msg, /^c1-n2 did not come back within 0\.3s of going down at \d{4}-/);
    t.is(typeof f.downAt, 'number');
  }
  const p = res.get('c1-n3')!;
  t.deepEqual(p, { host: 'c1-n3', status: 'pending', reason: 'cluster c1: member c1-n2 did not come back' });
  t.false(sim.log.some((l) => l.startsWith('c1-n3: ') && l.includes('reboot')), 'no reboot sent to c1-n3');
});

test('quorum lost before a reboot: waits up to the timeout, then fails clearly and sends nothing', async (t) => {
  const sim = new Sim();
  cluster(sim, 'c1', 3);
  sim.nodes.get('c1-n2')!.up = false; // two of three down, not candidates
  sim.nodes.get('c1-n3')!.up = false;
  const { cands, opts, events } = setup(sim, ['c1-n1'], {}, { rebootTimeoutS: 0.25 });
  const t0 = Date.now();
  const res = await coordinateReboots(cands, opts);
  const took = Date.now() - t0;

  const r = res.get('c1-n1')!;
  t.is(r.status, 'failed');
  if (r.status === 'failed') {
    t.regex(r.msg, /c1-n1: not rebooted: cluster c1 is not quorate/);
    t.regex(r.msg, /1 of 3 votes/);
    t.truthy(r.hint);
  }
  t.true(took >= 240, `waited ${took} ms`);
  t.true(events.some((e) => e.type === 'reboot-wait' && e.waitingFor === 'quorum of cluster c1'));
  t.false(sim.log.some((l) => l.includes(REBOOT_COMMAND)));
});

test('quorate but no headroom (a non-candidate member is down): waits until it is back, then reboots', async (t) => {
  const sim = new Sim();
  cluster(sim, 'c1', 3);
  const n3 = sim.nodes.get('c1-n3')!;
  n3.up = false;
  setTimeout(() => (n3.up = true), 100);
  const { cands, opts } = setup(sim, ['c1-n1']);
  const t0 = Date.now();
  const res = await coordinateReboots(cands, opts);
  t.is(res.get('c1-n1')!.status, 'rebooted');
  t.true(sim.intervals[0].down - t0 >= 95, 'did not go down while c1-n3 was down');
});

test('members whose pvecm status lacks the Name: line still roll one at a time, never as standalone hosts', async (t) => {
  const sim = new Sim();
  const names = cluster(sim, 'c1', 3, { hideName: true, downMs: 40 });
  const { cands, opts, events } = setup(sim, names);
  t.true(cands.every((c) => c.facts.cluster.name === null && c.facts.cluster.member === true));
  const res = await coordinateReboots(cands, opts);
  t.true([...res.values()].every((r) => r.status === 'rebooted'));
  t.is(sim.maxDown.get('c1'), 1);
  assertNoOverlap(t, sim.intervals);
  t.true(events.some((e) => e.type === 'reboot-wait' && /cluster \(of unknown name\): at most 1 member down/.test(e.reason)));
});

test('a member whose quorum cannot be read (corosync down) is refused with the reason; nothing sent to it', async (t) => {
  const sim = new Sim();
  const names = cluster(sim, 'c1', 3);
  sim.nodes.get('c1-n2')!.corosyncDown = true;
  const { cands, opts } = setup(sim, names);
  const res = await coordinateReboots(cands, opts);
  const r = res.get('c1-n2')!;
  t.is(r.status, 'failed');
  if (r.status === 'failed') {
    t.regex(r.msg, /c1-n2: not rebooted: it is a member of cluster c1, but its quorum cannot be read \(Cannot initialize CMAP service\)/);
    t.regex(r.hint ?? '', /corosync/);
  }
  t.false(sim.log.includes(`c1-n2: ${REBOOT_COMMAND}`));
});

test('two-node cluster without a QDevice: members pending, nothing sent', async (t) => {
  const sim = new Sim();
  const names = cluster(sim, 'duo', 2);
  const { cands, opts } = setup(sim, names);
  const res = await coordinateReboots(cands, opts);
  for (const h of names) {
    const r = res.get(h)!;
    t.is(r.status, 'pending');
    if (r.status === 'pending') t.regex(r.reason, /cluster duo has 2 votes and needs 2 up/);
  }
  t.deepEqual(sim.log, []);
});

test('HA maintenance: enabled before the reboot, disabled after the node is back', async (t) => {
  const sim = new Sim();
  const names = cluster(sim, 'c1', 3);
  const { cands, opts } = setup(sim, names.slice(0, 1), {}, { haMaintenance: true });
  const res = await coordinateReboots(cands, opts);
  t.is(res.get('c1-n1')!.status, 'rebooted');
  t.deepEqual(sim.log, [
    'c1-n1: ha-manager crm-command node-maintenance enable c1-n1',
    `c1-n1: ${REBOOT_COMMAND}`,
    'c1-n1: true',
    'c1-n1: ha-manager crm-command node-maintenance disable c1-n1',
  ]);
});

// ------------------------------------------------------------------ standalone

test('standalone hosts reboot in parallel (about one delay, not three)', async (t) => {
  const sim = new Sim();
  const names = ['a', 'b', 'c'].map((n) => sim.add(n, { downMs: 200 }).name);
  const { cands, opts } = setup(sim, names);
  const t0 = Date.now();
  const res = await coordinateReboots(cands, opts);
  const took = Date.now() - t0;
  t.true([...res.values()].every((r) => r.status === 'rebooted'));
  t.true(took >= 200 && took < 450, `took ${took} ms`);
  const downs = sim.intervals.map((i) => i.down);
  t.true(Math.max(...downs) - Math.min(...downs) < 100, 'all went down together');
});

test('standalone and cluster members in one run: the standalone host does not wait for the cluster', async (t) => {
  const sim = new Sim();
  const names = cluster(sim, 'c1', 3, { downMs: 80 });
  sim.add('solo', { downMs: 80 });
  const { cands, opts } = setup(sim, [...names, 'solo']);
  const res = await coordinateReboots(cands, opts);
  t.true([...res.values()].every((r) => r.status === 'rebooted'));
  const solo = res.get('solo')!;
  const n3 = res.get('c1-n3')!;
  if (solo.status === 'rebooted' && n3.status === 'rebooted') t.true(solo.upAt < n3.downAt);
  assertNoOverlap(t, sim.intervals.filter((i) => i.node.startsWith('c1-')));
});

test('a reconnect to the old boot is not proof: a host that ignores the reboot fails', async (t) => {
  const sim = new Sim();
  sim.add('stuck', { ignoresReboot: true });
  sim.add('slow', { lagMs: 120 }); // still up (old boot) for a while after the command
  const { cands, opts, events } = setup(sim, ['stuck', 'slow'], {}, { rebootTimeoutS: 0.4 });
  const res = await coordinateReboots(cands, opts);
  const stuck = res.get('stuck')!;
  t.is(stuck.status, 'failed');
  if (stuck.status === 'failed') t.regex(stuck.msg, /^stuck did not come back .*still running the boot from before \(boot_id stuck-boot-1\)/);
  const slow = res.get('slow')!;
  t.is(slow.status, 'rebooted');
  if (slow.status === 'rebooted') t.is(slow.facts.bootId, 'slow-boot-2');
  const up = events.find((e) => e.type === 'reboot-up' && e.host === 'slow');
  t.truthy(up);
  if (up?.type === 'reboot-up') t.true(up.downForMs >= 120 + 60 - 5, `downForMs ${up.downForMs}`);
});

// ------------------------------------------------------------------ guests

test('guests running under refuse: pending with the guest list, no reboot', async (t) => {
  const sim = new Sim();
  sim.add('pve1', {
    guests: [
      { kind: 'qm', id: '100', name: 'win11', status: 'running' },
      { kind: 'pct', id: '101', name: '', status: 'running' },
      { kind: 'qm', id: '102', name: 'off', status: 'stopped' },
    ],
  });
  const { cands, opts, events } = setup(sim, ['pve1']);
  const res = await coordinateReboots(cands, opts);
  t.deepEqual(res.get('pve1'), {
    host: 'pve1',
    status: 'pending',
    reason: 'guests running: 100 (win11), 101; stop them or set guests: shutdown',
  });
  t.deepEqual(sim.log, []);
  t.false(events.some((e) => e.type === 'reboot-start'));
});

test('guests under shutdown: qm/pct shutdown sent and waited for before the reboot', async (t) => {
  const sim = new Sim();
  const n = sim.add('pve1', {
    guests: [
      { kind: 'qm', id: '100', name: 'win11', status: 'running' },
      { kind: 'pct', id: '101', name: 'plex', status: 'running' },
    ],
  });
  const { cands, opts } = setup(sim, ['pve1'], {}, { guestPolicy: 'shutdown' });
  const res = await coordinateReboots(cands, opts);
  t.is(res.get('pve1')!.status, 'rebooted');
  const iQm = sim.log.findIndex((l) => l.startsWith('pve1: qm shutdown 100'));
  const iPct = sim.log.findIndex((l) => l.startsWith('pve1: pct shutdown 101'));
  const iReboot = sim.log.indexOf(`pve1: ${REBOOT_COMMAND}`);
  t.true(iQm >= 0 && iPct >= 0 && iReboot > iQm && iReboot > iPct, sim.log.join('\n'));
  t.true(n.guests.every((g) => g.status === 'stopped'));
});

test('guests under ignore: rebooted anyway', async (t) => {
  const sim = new Sim();
  sim.add('pve1', { guests: [{ kind: 'qm', id: '100', name: 'x', status: 'running' }] });
  const { cands, opts } = setup(sim, ['pve1'], {}, { guestPolicy: 'ignore' });
  const res = await coordinateReboots(cands, opts);
  t.is(res.get('pve1')!.status, 'rebooted');
  t.false(sim.log.some((l) => l.includes('shutdown')));
});

// ------------------------------------------------------------------ nothing sent

for (const [label, over, st, re] of [
  ['--no-reboot', { noReboot: true }, {}, /^reboot pending \(--no-reboot\): kernel command line changed$/],
  ['check mode', { check: true }, {}, /^check mode: would reboot: kernel command line changed$/],
  ['reboot: never', {}, { reboot: 'never' as const }, /reboot: never/],
] as const) {
  test(`${label}: every candidate pending, no exec, no probe`, async (t) => {
    const sim = new Sim();
    const names = [...cluster(sim, 'c1', 3), sim.add('solo').name];
    const { cands, opts, events } = setup(sim, names, over, st);
    const res = await coordinateReboots(cands, opts);
    for (const h of names) {
      const r = res.get(h)!;
      t.is(r.status, 'pending');
      if (r.status === 'pending') t.regex(r.reason, re);
    }
    t.deepEqual(sim.log, []);
    t.is(sim.probes, 0);
    t.deepEqual(events, [], 'nothing happens, so nothing is announced (the caller reports the outcomes)');
  });
}

test('Ctrl-C: an aborted signal starts no new reboot; the member already down is waited for', async (t) => {
  const sim = new Sim();
  const names = cluster(sim, 'c1', 3, { downMs: 80 });
  const ac = new AbortController();
  const { cands, opts, events } = setup(sim, names, { signal: ac.signal });
  opts.bus.on((e) => {
    if (e.type === 'reboot-down') ac.abort();
  });
  const res = await coordinateReboots(cands, opts);
  t.is(res.get('c1-n1')!.status, 'rebooted');
  t.deepEqual(res.get('c1-n2'), { host: 'c1-n2', status: 'pending', reason: 'interrupted: no new reboot started' });
  t.is(res.get('c1-n3')!.status, 'pending');
  t.is(sim.intervals.length, 1);
  t.is(events.filter((e) => e.type === 'reboot-start').length, 1);
});

test('a host unreachable before its reboot fails without holding back the others', async (t) => {
  const sim = new Sim();
  sim.add('gone');
  sim.add('ok');
  const { cands, opts } = setup(sim, ['gone', 'ok']);
  sim.nodes.get('gone')!.up = false;
  const res = await coordinateReboots(cands, opts);
  const g = res.get('gone')!;
  t.is(g.status, 'failed');
  if (g.status === 'failed') t.regex(g.msg, /^gone: could not read its state before the reboot/);
  t.is(res.get('ok')!.status, 'rebooted');
});

// ------------------------------------------------------------------ Ctrl-C with guests shut down

function guestHost(sim: Sim, opts: Partial<SimNode> = {}): SimNode {
  return sim.add('pve1', {
    guests: [
      { kind: 'qm', id: '100', name: 'win11', status: 'running' },
      { kind: 'pct', id: '101', name: '', status: 'running' },
    ],
    ...opts,
  });
}

test('Ctrl-C after the guests were shut down, before the reboot: they are started again, nothing rebooted', async (t) => {
  const sim = new Sim();
  const n = guestHost(sim);
  const ac = new AbortController();
  const { cands, opts, events } = setup(sim, ['pve1'], { signal: ac.signal }, { guestPolicy: 'shutdown' });
  opts.bus.on((e) => {
    if (e.type === 'reboot-prepare' && e.what.startsWith('shutting down')) ac.abort();
  });
  const res = await coordinateReboots(cands, opts);
  t.deepEqual(res.get('pve1'), {
    host: 'pve1',
    status: 'pending',
    reason: 'interrupted: no new reboot started; guests started again: 100 (win11), 101',
  });
  t.false(sim.log.includes(`pve1: ${REBOOT_COMMAND}`));
  const iStop = sim.log.indexOf('pve1: qm shutdown 100 --timeout 2');
  const iStart = sim.log.indexOf('pve1: qm start 100');
  t.true(iStop >= 0 && iStart > iStop, sim.log.join('\n'));
  t.true(sim.log.includes('pve1: pct start 101'));
  t.true(n.guests.every((g) => g.status === 'running'));
  t.true(events.some((e) => e.type === 'reboot-prepare' && e.what === 'interrupted: starting 2 guests again'));
});

test('Ctrl-C after the drain, and the guests do not start again: the outcome names them', async (t) => {
  const sim = new Sim();
  guestHost(sim, { startFails: true });
  const ac = new AbortController();
  const { cands, opts } = setup(sim, ['pve1'], { signal: ac.signal }, { guestPolicy: 'shutdown' });
  opts.bus.on((e) => {
    if (e.type === 'reboot-prepare' && e.what.startsWith('shutting down')) ac.abort();
  });
  const r = (await coordinateReboots(cands, opts)).get('pve1')!;
  t.is(r.status, 'pending');
  if (r.status === 'pending') t.is(r.reason, 'interrupted: no new reboot started; guests left stopped: 100 (win11), 101');
  t.deepEqual(r.stoppedGuests?.map((g) => `${g.kind} ${g.id}`), ['qm 100', 'pct 101']);
  t.false(sim.log.includes(`pve1: ${REBOOT_COMMAND}`));
  const text = stoppedGuestsText('pve1', r.stoppedGuests!);
  t.is(text.msg, 'pve1: guests shut down for the reboot and left stopped after the interruption: 100 (win11), 101');
  t.is(text.hint, 'start them on pve1: `qm start 100`; `pct start 101`');
});

test('Ctrl-C after the reboot was sent: the host is waited for, and the guests still stopped are named', async (t) => {
  const sim = new Sim();
  guestHost(sim);
  const ac = new AbortController();
  const { cands, opts } = setup(sim, ['pve1'], { signal: ac.signal }, { guestPolicy: 'shutdown' });
  opts.bus.on((e) => {
    if (e.type === 'reboot-down') ac.abort();
  });
  const r = (await coordinateReboots(cands, opts)).get('pve1')!;
  t.is(r.status, 'rebooted');
  t.deepEqual(r.stoppedGuests?.map((g) => g.id), ['100', '101']);
  t.false(sim.log.some((l) => / start /.test(l)), 'not started behind the reboot');
});

test('no Ctrl-C: guests shut down for a reboot are not reported as left stopped', async (t) => {
  const sim = new Sim();
  guestHost(sim);
  const { cands, opts } = setup(sim, ['pve1'], {}, { guestPolicy: 'shutdown' });
  const r = (await coordinateReboots(cands, opts)).get('pve1')!;
  t.is(r.status, 'rebooted');
  t.is(r.stoppedGuests, undefined);
});
