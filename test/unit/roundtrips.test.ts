/**
 * The facts probe and a stage's reads in one exec (HostObserver.readAlong, run by the local
 * transport: real sh), and the reads a stage needs worked out before its facts (speculativeReads).
 */
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalConnection } from '../../src/transport/local.ts';
import { HostObserver, splitAtMarker } from '../../src/modules/observer.ts';
import { factsFromOutput, probeScript } from '../../src/facts/index.ts';
import type { Connection, ExecOptions } from '../../src/transport/connection.ts';

function counting(): { conn: Connection; execs: string[] } {
  const local = new LocalConnection('local');
  const execs: string[] = [];
  const conn: Connection = {
    host: 'local',
    exec: (command: string, opts?: ExecOptions) => {
      execs.push(command);
      return local.exec(command, opts);
    },
    write: (p, c, o) => local.write(p, c, o),
    reconnect: (o) => local.reconnect(o),
    close: () => local.close(),
  };
  return { conn, execs };
}

test('the probe and the reads in one exec: facts parse as alone, the reads are answered without another exec', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-along-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'a'), 'alpha\n');
  const { conn, execs } = counting();
  const obs = new HostObserver(conn);
  const facts = await obs.readAlong(probeScript(), [
    { kind: 'file', path: join(dir, 'a') },
    { kind: 'stat', path: join(dir, 'missing') },
    { kind: 'cmd', command: 'echo "$LC_ALL|x"' },
  ], (_, r) => factsFromOutput('local', r));
  const alone = factsFromOutput('local', await new LocalConnection('l').exec('sh -s', { stdin: probeScript(), nothrow: true }));
  t.is(facts.hostname, alone.hostname);
  t.is(facts.kernelRelease, alone.kernelRelease);
  t.is((await obs.file(join(dir, 'a'))).content, 'alpha\n');
  t.false((await obs.stat(join(dir, 'missing'))).exists);
  // the probe's LC_ALL=C stays in its subshell: a command read sees the environment it always saw
  t.is((await obs.cmd('echo "$LC_ALL|x"')).stdout, `${process.env.LC_ALL ?? ''}|x\n`);
  t.is(execs.length, 1);
  t.is(obs.roundTrips, 1);
  // a read not asked for along with the probe is read when asked, as before
  t.is((await obs.file(join(dir, 'a') + 'x')).exists, false);
  t.is(execs.length, 2);
});

test('a lead that fails is the caller error; reads cut short are read again when asked', async (t) => {
  const { conn, execs } = counting();
  const obs = new HostObserver(conn);
  await t.throwsAsync(obs.readAlong('echo nothing useful', [], (_, r) => factsFromOutput('local', r)), { message: /printed nothing usable/ });
  const obs2 = new HostObserver(conn);
  // the script is killed before its reads: the lead still parses, nothing is cached
  const out = await obs2.readAlong('echo lead; kill -9 $$', [{ kind: 'cmd', command: 'echo hi' }], (s) => s);
  t.is(out.trim(), 'lead');
  t.is((await obs2.cmd('echo hi')).stdout, 'hi\n');
  t.is(execs.length, 3);
});

test('splitAtMarker: the lead is everything before the first marker line, even one printed first', (t) => {
  t.deepEqual(splitAtMarker('a\nb\nM x y\nM - done\n', 'M'), { lead: 'a\nb\n', reads: 'M x y\nM - done\n', done: true });
  t.deepEqual(splitAtMarker('M - done\n', 'M'), { lead: '', reads: 'M - done\n', done: true });
  t.deepEqual(splitAtMarker('a M x\n', 'M'), { lead: 'a M x\n', reads: '', done: false });
  t.deepEqual(splitAtMarker('a\nM x y\n', 'M'), { lead: 'a\n', reads: 'M x y\n', done: false });
});

test('speculativeReads of the shipped host stage: the files the tasks read, both bootloaders\' candidates, no command that needs a result', async (t) => {
  const { loadPlaybook } = await import('../../src/load/playbook.ts');
  const { loadInventory } = await import('../../src/inventory/load.ts');
  const { modules } = await import('../../src/modules/index.ts');
  const { speculativeReads } = await import('../../src/engine/host.ts');
  const pb = await loadPlaybook(join(import.meta.dirname, '../../playbooks/gpu-passthrough.yaml'), { modules });
  const dir = await mkdtemp(join(tmpdir(), 'passthru-spec-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'inv.yaml'), 'proxmox:\n  hosts:\n    pve1: { passthrough_slots: ["01:00"] }\n');
  const inventory = await loadInventory(join(dir, 'inv.yaml'));
  const reads = speculativeReads({
    playbook: pb, inventory, modules, check: true, forks: 1, extraVars: {}, noReboot: false,
    stage: pb.stages[0]!, host: inventory.hosts.get('pve1')!,
  });
  const keys = reads.map((r) => (r.kind === 'cmd' ? `cmd:${r.command}` : `${r.kind}:${r.path}`));
  for (const k of ['file:/etc/default/grub', 'file:/etc/kernel/cmdline', 'file:/etc/modules', 'file:/etc/modprobe.d/vfio.conf', 'file:/var/lib/passthru/pending-handlers']) {
    t.true(keys.includes(k), `${k} in ${keys.join(', ')}`);
  }
  t.false(keys.some((k) => k.includes('passthru-speculative')), keys.join(', '));
  // vendor-reset's `unless` needs the kernels a preflight registers: not run before it is known
  t.false(keys.some((k) => k.startsWith('cmd:') && k.includes('dkms')), keys.join(', '));
});
