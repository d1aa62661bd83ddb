/**
 * Faults that lose nothing, on the lab through the CLI with the built-in playbook: a full disk on
 * a node, a node whose every process (sshd, the sessions, a write half way) is killed in the
 * middle of a run, and two `apply` runs against one node at once. Evidence from the nodes' own
 * files. Needs root (the lab does); fails with the reason otherwise.
 * PASSTHRU_TEST_DEBUG=DIR keeps each run's output in DIR (faults-run-N.txt).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { labUp, nodeFile, type LabInfo } from '../../src/lab/index.ts';
import { labRunner, tasks } from '../helpers/cli.ts';
import { crashNode, LOCK_FILES, onFirstChange, startNode } from '../helpers/faults.ts';
import { bootsSince, isRoot, labSshOptions, labTest as lab, nodeTree, tearDownLab, tempDir, type NodeTree } from '../helpers/lab.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/gpu-passthrough.yaml', import.meta.url));
const TEMP_FILE = /\/\.passthru-tmp\.[^/]+$/;

let info: LabInfo | undefined;
let dir = '';
let tmp = '';
const node = (profile: string) => info!.nodes.find((n) => n.profile === profile)!;

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-faults-lab-');
  tmp = tempDir('passthru-faults-out-');
  info = await labUp({
    dir,
    scenarios: ['intel-grub-pve8-rtx4090', 'amd-systemdboot-zfs-pve8-rx6800', 'pve7-kernel515'],
    baseAddr: '127.0.170.1',
    rebootDelayS: 1,
  });
});

test.after.always(() => tearDownLab(dir, tmp));

const run = labRunner({ name: 'faults', playbook: PLAYBOOK, inventory: () => info!.inventoryPath, out: () => tmp });

/** A command on a lab node as root, over OpenSSH (not through the engine). */
async function ssh(name: string, command: string): Promise<string> {
  const n = info!.nodes.find((x) => x.name === name)!;
  const r = await promisify(execFile)('ssh', [...labSshOptions(dir), `root@${n.address}`, command]);
  return r.stdout;
}

lab('a full disk on the node: the write fails, the old files are intact, the run names host, task and cause; freed, the rerun converges', async (t) => {
  const amd = node('amd-systemdboot-zfs-pve8-rx6800').name;
  // /etc/modprobe.d becomes a full 256 KiB tmpfs holding a copy of what was there (the original
  // stays untouched underneath and comes back with the umount).
  await ssh(
    amd,
    'set -e; mkdir -p /root/.fault-orig; mount --bind /etc/modprobe.d /root/.fault-orig; ' +
      'mount -t tmpfs -o size=256k tmpfs /etc/modprobe.d; cp -a /root/.fault-orig/. /etc/modprobe.d/; ' +
      'dd if=/dev/zero of=/etc/modprobe.d/.fill bs=4k >/dev/null 2>&1 || true',
  );
  const sums = () => ssh(amd, 'cd /etc/modprobe.d && ls -A | sort && sha256sum -- *');
  const before = await sums();
  let freed = false;
  const free = async () => {
    if (freed) return;
    freed = true;
    await ssh(amd, 'umount /etc/modprobe.d && umount /root/.fault-orig && rmdir /root/.fault-orig');
  };
  try {
    const r = await run('apply', '--limit', amd);
    t.is(r.code, 2, r.text); // a host failed
    t.is(r.report.recap[amd].failed, 1, JSON.stringify(r.report.recap[amd]));
    const bad = tasks(r.report, amd).find((x) => x.status === 'failed')!;
    t.truthy(bad, r.text);
    t.regex(bad.msg ?? '', /\/etc\/modprobe\.d\/.*(No space left on device|short write|wrote \d+ of \d+).*the old file is unchanged/s, bad.msg);
    t.regex(r.text, new RegExp(`${amd}`));
    t.is(await sums(), before, 'every file in the full directory is as it was, and no temp file is left');
    t.false(r.report.recap[amd].rebooted, 'a host whose run failed is not rebooted');
    await free();
    const again = await run('apply', '--limit', amd);
    t.is(again.code, 0, again.text);
    t.true(again.report.recap[amd].rebooted);
    const check = await run('check', '--limit', amd);
    t.is(check.code, 0, check.text);
    t.is(check.report.recap[amd].changed, 0);
  } finally {
    await free().catch(() => undefined);
  }
});

lab('a node killed in the middle of a run: that host is unreachable, the other converges; started again, the next run finishes it and no file is half-written', async (t) => {
  const intel = node('intel-grub-pve8-rtx4090');
  const seven = node('pve7-kernel515').name;
  const before = nodeTree(dir, intel.name);
  let crashedAt: string[] = [];
  let afterCrash: NodeTree | undefined;
  const stop = onFirstChange(dir, intel.name, before, (changed) => {
    crashedAt = changed;
    crashNode(dir, intel.name, { stayDown: true });
    afterCrash = nodeTree(dir, intel.name);
  });
  const since = Date.now();
  const r = await run('apply', '--limit', `${intel.name},${seven}`).finally(stop);
  t.truthy(afterCrash, `the run wrote nothing on ${intel.name} to strike at`);
  t.is(r.code, 3, r.text);
  t.true(r.report.recap[intel.name].unreachable + r.report.recap[intel.name].failed > 0, JSON.stringify(r.report.recap[intel.name]));
  t.true(r.report.failedHosts.includes(intel.name));
  t.is(r.report.recap[seven].failed, 0, r.text);
  t.true(r.report.recap[seven].rebooted, 'the other host went on: converged and rebooted');
  t.deepEqual(bootsSince(dir, seven, since).map((e) => e.event), ['down', 'up']);

  await startNode(dir, intel.name, intel.address);
  const again = await run('apply', '--limit', intel.name);
  t.is(again.code, 0, again.text);
  t.true(again.report.recap[intel.name].rebooted, 'the rerun applied and booted what the killed run had begun');
  const final = nodeTree(dir, intel.name);
  // Each file the crash left changed is either the run's finished content or a writer's temp file
  // (never the target itself half-written); a temp file of the killed writer is gone once a
  // later write went into its directory. The killed run's lock record is the next run's to replace.
  for (const [p, h] of afterCrash!) {
    if (before.get(p) === h || TEMP_FILE.test(p) || LOCK_FILES.test(p)) continue;
    t.is(final.get(p), h, `${p} after the crash is neither the old nor the finished content (first change seen: ${crashedAt.join(' ')})`);
  }
  t.deepEqual([...final.keys()].filter((p) => TEMP_FILE.test(p) && !afterCrash!.has(p)), [], 'the rerun leaves no temp file of its own');
  const check = await run('check', '--limit', `${intel.name},${seven}`);
  t.is(check.code, 0, check.text);
});

lab('two applies against one node at once: the second waits on the first\'s lock and never interleaves its changes', async (t) => {
  const seven = node('pve7-kernel515').name;
  // Drift that makes a run change files, rebuild the initramfs and reboot.
  const conf = nodeFile(dir, seven, '/etc/modprobe.d/vfio.conf')!;
  nodeFile(dir, seven, '/etc/modprobe.d/vfio.conf', conf.replace(/^options vfio-pci ids=.*$/m, 'options vfio-pci ids=10de:ffff'));
  const owner = join(dir, 'nodes', seven, 'root', 'var', 'lib', 'passthru', 'apply.owner');
  const first = run('apply', '--limit', seven);
  for (let i = 0; i < 600 && !existsSync(owner); i++) await new Promise((r) => setTimeout(r, 50));
  t.true(existsSync(owner), 'the first run holds the lock');
  const second = await run('apply', '--limit', seven);
  const a = await first;
  t.is(a.code, 0, a.text);
  t.true(a.report.recap[seven].changed > 0);
  if (second.code === 0) {
    // It waited for the lock, then found the node converged: nothing of it interleaved.
    t.is(second.report.recap[seven].changed, 0, second.text);
  } else {
    // It stopped: the lock was still held after its wait (a failed host, naming the holder), or
    // the first run rebooted the node while the second waited (unreachable). Never a change.
    t.true([2, 3].includes(second.code), second.text);
    t.regex(second.text, /another apply run holds the lock on this node: .*pid \d+|connection to \S+ lost/, second.text);
    t.is(second.report.recap[seven].changed, 0, 'the second run changed nothing');
  }
  t.is(nodeFile(dir, seven, '/etc/modprobe.d/vfio.conf'), conf, 'the file is as the first run wrote it');
});
