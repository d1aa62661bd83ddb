/**
 * The reboot coordinator on the lab: real OpenSSH nodes, the lab's `reboot`, the real facts
 * probe and the SSH transport's reconnect. Down/up times are read from the nodes themselves
 * (`<labdir>/nodes/<name>/boots.log`, written by the node side), not from our own events.
 * Needs root (the lab does); skipped otherwise with the reason.
 */
import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labUp, bootLog, labStatus, type LabInfo } from '../../src/lab/index.ts';
import { connectSsh } from '../../src/transport/ssh.ts';
import { gatherFacts, type Facts } from '../../src/facts/index.ts';
import type { Connection } from '../../src/transport/connection.ts';
import type { Stage } from '../../src/model/types.ts';
import { EventBus, type RunEvent } from '../../src/engine/events.ts';
import { coordinateReboots, quorumOf, type RebootCandidate } from '../../src/engine/reboot.ts';
import { downIntervals, isRoot, labTest as lab, tearDownLab, tempDir } from '../helpers/lab.ts';

let info: LabInfo | undefined;
let dir = '';
const conns: Connection[] = [];
/** Probes whose cluster came from the node's own `pvecm status`. */
let fromPvecm = 0;

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-orch-');
  info = await labUp({
    dir,
    scenarios: ['cluster3', 'intel-grub-pve8-rtx4090'],
    rebootDelayS: 1,
    baseAddr: '127.0.61.1',
  });
});

test.after.always(async () => {
  for (const c of conns) await c.close().catch(() => undefined);
  await tearDownLab(dir);
});

function stage(over: Partial<Stage> = {}): Stage {
  return {
    name: 'orchestration',
    hosts: 'all',
    roles: [],
    vars: {},
    anyErrorsFatal: false,
    reboot: 'if-needed',
    rebootTimeoutS: 60,
    guestPolicy: 'ignore',
    haMaintenance: false,
    maxDownPerCluster: 1,
    pos: { file: 'test', line: 1, col: 1 },
    ...over,
  };
}

async function connect(name: string): Promise<Connection> {
  const node = info!.nodes.find((n) => n.name === name)!;
  const c = await connectSsh(name, {
    host: node.address,
    port: 22,
    user: 'root',
    identityFile: join(dir, 'ssh', 'id_ed25519'),
    knownHostsFile: join(dir, 'ssh', 'known_hosts'),
    hostKeyChecking: 'strict',
    become: false,
    transport: 'ssh',
  });
  conns.push(c);
  return c;
}

/**
 * The real probe. While the lab has no `pvecm` stub the probe sees no cluster; then cluster
 * membership and quorum are taken from the lab's own record of who is up, so the coordinator
 * still gets a cluster whose votes drop while a member is down.
 */
async function probe(conn: Connection): Promise<Facts> {
  const f = await gatherFacts(conn, { timeoutMs: 20_000 });
  if (f.cluster.name !== null) fromPvecm++;
  const clusterFile = join(dir, 'nodes', conn.host, 'cluster');
  if (f.cluster.name === null && existsSync(clusterFile)) {
    const name = readFileSync(clusterFile, 'utf8').trim();
    const members = (await labStatus(dir)).filter((n) => n.cluster === name);
    const up = members.filter((n) => n.state === 'up').length;
    f.cluster = { name, quorate: up >= quorumOf(members.length), expectedVotes: members.length, totalVotes: up, nodes: members.map((n) => n.name) };
  }
  return f;
}

async function candidates(names: string[]): Promise<RebootCandidate[]> {
  return Promise.all(
    names.map(async (host) => {
      const conn = await connect(host);
      return { host, conn, facts: await probe(conn), reasons: ['test'] };
    }),
  );
}

const intervals = (node: string, since: number) => downIntervals(dir, node, since);

lab('three-node cluster and a standalone node: members one at a time, the standalone in parallel', async (t) => {
  const members = info!.nodes.filter((n) => n.profile === 'cluster3').map((n) => n.name);
  const solo = info!.nodes.find((n) => n.profile !== 'cluster3')!.name;
  t.is(members.length, 3);
  const cands = await candidates([...members, solo]);
  const bus = new EventBus();
  const events: RunEvent[] = [];
  bus.on((e) => events.push(e));
  const since = Date.now();
  const res = await coordinateReboots(cands, { stage: stage(), noReboot: false, check: false, bus, probe, pollMs: 250 });

  for (const c of cands) {
    const r = res.get(c.host)!;
    t.is(r.status, 'rebooted', `${c.host}: ${JSON.stringify(r).slice(0, 300)}`);
    if (r.status === 'rebooted') t.not(r.facts.bootId, c.facts.bootId);
  }
  const ivs = members.flatMap((m) => intervals(m, since));
  t.is(ivs.length, 3, JSON.stringify(ivs));
  ivs.sort((a, b) => a.down - b.down);
  for (let i = 1; i < ivs.length; i++) {
    t.true(ivs[i].down >= ivs[i - 1].up, `${ivs[i].node} went down at ${ivs[i].down} while ${ivs[i - 1].node} was down until ${ivs[i - 1].up}`);
  }
  const soloIv = intervals(solo, since);
  t.is(soloIv.length, 1);
  t.true(soloIv[0].down < ivs[1].down, 'the standalone node did not wait for the cluster');
  t.true(events.some((e) => e.type === 'reboot-wait'));
  t.log(`cluster facts from pvecm status in ${fromPvecm} probes`);
  t.log(ivs.map((i) => `${i.node} down ${i.up - i.down} ms`).join(', '), `; ${solo} down ${soloIv[0].up - soloIv[0].down} ms`);
});

lab('running guests under refuse: the member is reported with its guests, not rebooted', async (t) => {
  const member = info!.nodes.find((n) => n.profile === 'cluster3')!.name;
  const cands = await candidates([member]);
  t.true(cands[0].facts.guests.some((g) => g.id === '110'), 'the lab reports guest 110 running');
  const since = Date.now();
  const res = await coordinateReboots(cands, { stage: stage({ guestPolicy: 'refuse' }), noReboot: false, check: false, bus: new EventBus(), probe, pollMs: 250 });
  t.deepEqual(res.get(member), { host: member, status: 'pending', reason: 'guests running: 110 (ci-runner); stop them or set guests: shutdown' });
  t.deepEqual(intervals(member, since), []);
});

lab('a member that never comes back stops the rolling reboot of its cluster, naming it', async (t) => {
  const members = info!.nodes.filter((n) => n.profile === 'cluster3').map((n) => n.name);
  const [first, second, third] = members;
  const cands = await candidates([second, first, third]);
  const bus = new EventBus();
  // The first member rebooted never returns: its supervisor is told to stop.
  bus.on((e) => {
    if (e.type === 'reboot-down' && e.host === second) writeFileSync(join(dir, 'nodes', second, 'stop'), '');
  });
  const since = Date.now();
  const res = await coordinateReboots(cands, { stage: stage({ rebootTimeoutS: 8 }), noReboot: false, check: false, bus, probe, pollMs: 250 });
  const r = res.get(second)!;
  t.is(r.status, 'failed');
  if (r.status === 'failed') t.regex(r.msg, new RegExp(`^${second} did not come back within 8s of going down at `));
  for (const other of [first, third]) {
    t.deepEqual(res.get(other), { host: other, status: 'pending', reason: `cluster lab3: member ${second} did not come back` });
    t.deepEqual(intervals(other, since), [], `${other} was not rebooted`);
    t.false(bootLog(dir, other).some((e) => e.at >= since), `${other} boots.log untouched`);
  }
});
