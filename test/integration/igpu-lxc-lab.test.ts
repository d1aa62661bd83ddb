/**
 * playbooks/transcode-lxc.yaml on two lab nodes with an Intel iGPU: Proxmox VE 8.2 (devN through
 * pct set; the iGPU is renderD129 there, behind an Arc A380 holding renderD128) and Proxmox VE 7.4
 * (lxc.cgroup2.devices.allow + lxc.mount.entry lines). The container config names the node that
 * /dev/dri/by-path resolves the iGPU to, with the major:minor and gid read from the node itself; the
 * second run changes nothing; check mode changes no byte; each refusal fails the host and touches
 * nothing; a running container gets a new devN hot-plugged and a changed one only as pending.
 * Lab addresses 127.0.180.x. Needs root (the lab does).
 */
import test from 'ava';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labUp, type LabInfo } from '../../src/lab/index.ts';
import { runCli, tasks, type CliRun } from '../helpers/cli.ts';
import { fileTree, isRoot, labInventory, labSh, labTest, nodeTree, sameTree, tearDownLab, tempDir } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/transcode-lxc.yaml', import.meta.url));
const ROLES = fileURLToPath(new URL('../../roles', import.meta.url));
const N8 = 'pve-igpu';
const N7 = 'pve-igpu-seven';
const NODES = [N8, N7];
let info: LabInfo;
let dir = '';
let tmp = '';
/** Whether this machine has a /dev/dri before the lab starts (the lab must not create one). */
const machineDri = existsSync('/dev/dri');

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-igpu-lab-');
  tmp = tempDir('passthru-igpu-out-');
  info = await labUp({ dir, scenarios: ['intel-igpu-pve8-lxc', 'intel-igpu-pve7-lxc'], baseAddr: '127.0.180.1', rebootDelayS: 1 });
  symlinkSync(ROLES, join(tmp, 'roles'));
});
test.after.always(() => tearDownLab(dir, tmp));

/** The lab inventory (lxc_id and igpu_slot from the profiles), changed by `change`. */
function inventory(file: string, change: (hv: Map<string, Record<string, unknown>>) => void = () => {}): string {
  return labInventory(info.inventoryPath, tmp, file, change);
}
let runNo = 0;
const run = (cmd: 'apply' | 'check', inv: string, ...args: string[]): Promise<CliRun> =>
  runCli([cmd, PLAYBOOK, '-i', inv, '--progress', 'quiet', ...args], { json: join(tmp, `run-${++runNo}.json`) });
const sh = (node: string, command: string) => labSh(dir, info.nodes.find((x) => x.name === node)!.address, command);
/** Each node's /etc/pve (standalone nodes: their own), path → sha256. */
const pveTree = (node: string): Map<string, string> => fileTree(join(dir, 'nodes', node, 'pve'));
const snapshot = () => NODES.map((n) => ({ pve: pveTree(n), root: nodeTree(dir, n) }));
const unchanged = (a: ReturnType<typeof snapshot>, b: ReturnType<typeof snapshot>) => a.every((x, i) => sameTree(x.pve, b[i]!.pve) && sameTree(x.root, b[i]!.root));
const ctConf = (node: string, id: number) => readFileSync(join(dir, 'nodes', node, 'pve/nodes', node, 'lxc', `${id}.conf`), 'utf8');
const failedMsg = (r: CliRun, h: string) => tasks(r.report, h).filter((x) => x.status === 'failed').map((x) => x.msg).join(' | ');
/** What the node itself says its iGPU render node is: path, major, minor (from hex), gid. */
async function igpuNode(node: string): Promise<{ path: string; major: number; minor: number; gid: number }> {
  const r = await sh(node, "p=$(readlink -f /dev/dri/by-path/pci-0000:00:02.0-render) && stat -c '%n %t %T %g' \"$p\"");
  const [path, ma, mi, gid] = r.out.trim().split(' ');
  return { path: path!, major: Number.parseInt(ma!, 16), minor: Number.parseInt(mi!, 16), gid: Number(gid) };
}

labTest('converge: devN on PVE 8.2 (the by-path node, not renderD128), lxc lines on PVE 7.4; rerun 0 changed; check 0 bytes', async (t) => {
  // the nodes' /dev/dri lives in their own mount namespaces: the machine's /dev is as it was
  t.is(existsSync('/dev/dri'), machineDri);
  if (!machineDri) t.true((await sh(N8, 'test -c /dev/null && test -c /dev/urandom && test -d /dev/pts && echo ok')).out.includes('ok'), 'the node\'s own /dev has the basic nodes');
  const inv = inventory('inv.yaml');
  const before = snapshot();
  const r1 = await run('apply', inv);
  t.is(r1.code, 0, r1.text);
  for (const n of NODES) t.is(r1.report.recap[n]!.changed, 1, `${n}: ${tasks(r1.report, n).map((x) => `${x.task}: ${x.status}`).join(', ')}`);
  // PVE 8.2: dev0 through pct set, the iGPU's node as the node reports it (renderD129: the Arc probed first)
  const g8 = await igpuNode(N8);
  t.is(g8.path, '/dev/dri/renderD129');
  t.deepEqual([g8.major, g8.minor], [226, 129]);
  const c8 = ctConf(N8, 200);
  t.regex(c8, new RegExp(`^dev0: ${g8.path},gid=${g8.gid}$`, 'm'), c8);
  t.notRegex(c8, /renderD128|lxc\./);
  t.regex((await sh(N8, 'pct config 200')).out, new RegExp(`^dev0: ${g8.path},gid=${g8.gid}$`, 'm'));
  // PVE 7.4: the two raw lines, with the major:minor read from the node
  const g7 = await igpuNode(N7);
  const c7 = ctConf(N7, 210);
  t.true(c7.endsWith(`lxc.cgroup2.devices.allow: c ${g7.major}:${g7.minor} rwm\nlxc.mount.entry: ${g7.path} ${g7.path.slice(1)} none bind,optional,create=file\n`), c7);
  t.notRegex(c7, /^dev\d+:/m);
  // nothing else changed: only the two container configs
  const after = snapshot();
  for (const [i, n] of NODES.entries()) {
    t.true(sameTree(before[i]!.root, after[i]!.root), `${n}: node files unchanged`);
    const changed = [...after[i]!.pve].filter(([k, v]) => before[i]!.pve.get(k) !== v).map(([k]) => k);
    t.deepEqual(changed, [`/nodes/${n}/lxc/${n === N8 ? 200 : 210}.conf`]);
  }
  // the gates passed
  for (const n of NODES) t.true(tasks(r1.report, n).some((x) => x.role === 'igpu-lxc' && x.kind === 'gate' && x.status === 'ok'), n);
  const r2 = await run('apply', inv);
  t.is(r2.code, 0, r2.text);
  for (const n of NODES) t.is(r2.report.recap[n]!.changed, 0, `${n}: ${tasks(r2.report, n).filter((x) => x.changed).map((x) => x.task).join(', ')}`);
  const s = snapshot();
  const c = await run('check', inv);
  t.is(c.code, 0, c.text);
  t.true(unchanged(s, snapshot()), 'check mode changed no byte');
});

labTest('refusals fail the host and touch nothing', async (t) => {
  // 1. no such container
  let s = snapshot();
  let r = await run('apply', inventory('inv-none.yaml', (hv) => (hv.get(N8)!.lxc_id = 999)), '--limit', N8);
  t.is(r.code, 2, r.text);
  t.regex(failedMsg(r, N8), /expected container 999 on pve-igpu, found no \/etc\/pve\/lxc\/999\.conf/);
  t.true(unchanged(s, snapshot()));
  // 2. a slot without a DRM node (the NIC), refused by the host stage before the container stage
  s = snapshot();
  r = await run('apply', inventory('inv-nic.yaml', (hv) => (hv.get(N7)!.igpu_slot = '00:1f.6')), '--limit', N7);
  t.is(r.code, 2, r.text);
  t.regex(failedMsg(r, N7), /expected a render node in \/dev\/dri\/by-path for 0000:00:1f\.6 .*driver e1000e/);
  t.false(tasks(r.report, N7).some((x) => x.role === 'igpu-lxc'), 'the container stage did not run');
  t.true(unchanged(s, snapshot()));
  // 3. the iGPU chosen for vfio-pci as well
  s = snapshot();
  r = await run('apply', inventory('inv-vfio.yaml', (hv) => (hv.get(N8)!.passthrough_slots = ['00:02'])), '--limit', N8);
  t.is(r.code, 2, r.text);
  t.regex(failedMsg(r, N8), /expected the iGPU 0000:00:02\.0 to stay with the host, found it chosen for vfio-pci/);
  t.true(unchanged(s, snapshot()));
  // 4. pct refuses what pve-container refuses (a path that is not a device) and the file stays
  s = snapshot();
  const bad = await sh(N8, 'pct set 200 --dev1 /dev/dri/renderD200,gid=1');
  t.not(bad.code, 0);
  t.regex(bad.err, /Device \/dev\/dri\/renderD200 does not exist/);
  t.true(unchanged(s, snapshot()));
});

labTest('a running container: a new devN is hot-plugged; a changed one is refused, or pending when allowed', async (t) => {
  t.regex((await sh(N8, 'pct list')).out, /^201\s+running/m);
  const g8 = await igpuNode(N8);
  const r1 = await run('apply', inventory('inv-201.yaml', (hv) => (hv.get(N8)!.lxc_id = 201)), '--limit', N8, '--tags', 'igpu-lxc');
  t.is(r1.code, 0, r1.text);
  t.regex(ctConf(N8, 201), new RegExp(`^dev0: ${g8.path},gid=${g8.gid}\\n`, 'm'));
  t.notRegex(ctConf(N8, 201), /pve:pending/);
  const s = snapshot();
  const r2 = await run('apply', inventory('inv-201-gid.yaml', (hv) => Object.assign(hv.get(N8)!, { lxc_id: 201, lxc_dev_gid: 44 })), '--limit', N8, '--tags', 'igpu-lxc');
  t.is(r2.code, 2, r2.text);
  t.regex(failedMsg(r2, N8), /container 201 is running: dev0 would change/);
  t.true(unchanged(s, snapshot()));
  const r3 = await run('apply', inventory('inv-201-pending.yaml', (hv) => Object.assign(hv.get(N8)!, { lxc_id: 201, lxc_dev_gid: 44, lxc_apply_pending: true })), '--limit', N8, '--tags', 'igpu-lxc');
  t.is(r3.code, 0, r3.text);
  t.regex(ctConf(N8, 201), new RegExp(`^dev0: ${g8.path},gid=${g8.gid}\\n[^]*\\[pve:pending\\]\\ndev0: ${g8.path},gid=44\\n`, 'm'));
  // the pending value is what the config will be: the next run has nothing to do
  const r4 = await run('apply', inventory('inv-201-pending2.yaml', (hv) => Object.assign(hv.get(N8)!, { lxc_id: 201, lxc_dev_gid: 44, lxc_apply_pending: true })), '--limit', N8, '--tags', 'igpu-lxc');
  t.is(r4.code, 0, r4.text);
  t.is(r4.report.recap[N8]!.changed, 0);
});
