/**
 * Remote commands per host, counted by the lab nodes themselves (each node's sshd logs one
 * `Starting session:` line per command, LogLevel VERBOSE), not by the engine. On converged nodes:
 * - a no-op `check` is ONE command per host per stage: the facts probe with the stage's reads
 *   folded into it (tasks' and gates' reads, speculative where they depend on facts); the gates
 *   read nothing again when nothing was planned, run or rebooted;
 * - a no-op `apply` takes the node's apply lock: one command held open for the run, whose stdout
 *   says when it holds the lock (no polling with other commands); the probe and the reads run
 *   inside that same command once it holds the lock, so it is ONE command per host too.
 * A run that changes a file reads the host again for its gates. Needs root (the lab does).
 */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { labUp, nodeFile, sessionCount, type LabInfo } from '../../src/lab/index.ts';
import { labRunner } from '../helpers/cli.ts';
import { isRoot, tearDownLab, tempDir } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/gpu-passthrough.yaml', import.meta.url));

let info: LabInfo | undefined;
let dir = '';
let tmp = '';

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-roundtrips-lab-');
  tmp = tempDir('passthru-roundtrips-out-');
  info = await labUp({ dir, scenarios: ['intel-grub-pve8-rtx4090', 'amd-systemdboot-zfs-pve8-rx6800'], baseAddr: '127.0.173.1', rebootDelayS: 1 });
});
test.after.always(() => tearDownLab(dir, tmp));

const run = labRunner({ name: 'roundtrips', playbook: PLAYBOOK, inventory: () => info!.inventoryPath, out: () => tmp });
/** Commands each node's sshd has started so far (counted by the node). */
const sessions = () => info!.nodes.map((n) => sessionCount(dir, n.name));

async function counted(cmd: 'apply' | 'check', ...args: string[]): Promise<{ code: number; perHost: number[]; text: string }> {
  const before = sessions();
  const r = await run(cmd, ...args);
  const after = sessions();
  return { code: r.code, text: r.text, perHost: after.map((a, i) => a - before[i]!) };
}

test.serial('no-op check: one command per host (one stage runs on these hosts); no-op apply: one too (the lock, with the probe inside)', async (t) => {
  if (!isRoot) return t.fail('the lab needs root');
  const conv = await counted('apply');
  t.is(conv.code, 0, conv.text);
  t.log(`converge apply: ${conv.perHost.join(', ')} commands per host`);
  t.true(conv.perHost.every((c) => c > 2), `a converge does real work: ${conv.perHost}`);
  const check = await counted('check');
  t.log(`no-op check: ${check.perHost.join(', ')} commands per host`);
  t.is(check.code, 0, check.text);
  const noop = await counted('apply');
  t.log(`no-op apply: ${noop.perHost.join(', ')} commands per host`);
  t.is(noop.code, 0, noop.text);
  t.deepEqual(check.perHost, [1, 1]);
  t.deepEqual(noop.perHost, [1, 1]);
});

test.serial('a drift fixed without a reboot: the gates read the host again after the change', async (t) => {
  if (!isRoot) return t.fail('the lab needs root');
  const intel = info!.nodes.find((n) => n.profile === 'intel-grub-pve8-rtx4090')!;
  const conf = '/etc/modprobe.d/vfio.conf';
  nodeFile(dir, intel.name, conf, `${nodeFile(dir, intel.name, conf)}# drift\n`);
  const drift = await counted('check', '--limit', intel.name);
  t.is(drift.code, 5, drift.text);
  const fix = await counted('apply', '--limit', intel.name);
  t.log(`drift check: ${drift.perHost.join(', ')}; drift fixed by apply: ${fix.perHost.join(', ')} commands per host`);
  t.is(fix.code, 0, fix.text);
  const i = info!.nodes.indexOf(intel);
  // the probe with the reads, then the gates reading the drifted file's role again
  t.is(drift.perHost[i], 2, `${drift.perHost}`);
  // the lock with the probe and the reads, the write, its handler (update-initramfs), fresh facts
  t.true(fix.perHost[i]! > 2, `${fix.perHost}`);
  t.false(nodeFile(dir, intel.name, conf)!.includes('# drift'));
  const after = await counted('check');
  t.is(after.code, 0, after.text);
  t.deepEqual(after.perHost, [1, 1]);
});
