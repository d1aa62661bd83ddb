/**
 * The node lock against concurrent applies, run by the local transport (real sh, real flock):
 * the second run waits, then stops with who holds the lock; the lock ends with its run.
 */
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalConnection } from '../../src/transport/local.ts';
import { lockHost, lockScript } from '../../src/engine/host-lock.ts';
import { RunError } from '../../src/model/errors.ts';

const conn = new LocalConnection('pve1');

test('a second apply waits for the lock, then stops with who holds it; the lock ends with its run', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = await lockHost(conn, { dir, owner: 'run A (root@ctl pid 1)', waitS: 1 });
  t.truthy(a);
  t.is((await readFile(join(dir, 'apply.owner'), 'utf8')).trim(), 'run A (root@ctl pid 1)');
  const started = Date.now();
  const e = await t.throwsAsync(lockHost(conn, { dir, owner: 'run B', waitS: 1 }), { instanceOf: RunError });
  t.true(Date.now() - started >= 900, 'it waited before giving up');
  t.regex(e!.message, /pve1: not applied: another apply run holds the lock on this node: run A \(root@ctl pid 1\) \(waited 1 s\)/);
  t.regex((e as RunError).hint ?? '', /wait for that run to finish/);
  await a!.release();
  // Released: the owner record is gone and the next run gets the lock at once.
  await t.throwsAsync(readFile(join(dir, 'apply.owner'), 'utf8'));
  const c = await lockHost(conn, { dir, owner: 'run C', waitS: 1 });
  t.truthy(c);
  await c!.release();
});

test('a run waiting for the lock gets it as soon as the first run ends', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = await lockHost(conn, { dir, owner: 'A', waitS: 5 });
  const b = lockHost(conn, { dir, owner: 'B', waitS: 5 });
  await new Promise((r) => setTimeout(r, 300));
  await a!.release();
  const got = await b;
  t.truthy(got);
  t.is((await readFile(join(dir, 'apply.owner'), 'utf8')).trim(), 'B');
  await got!.release();
});

test('no flock on the host: a warning, and the run goes on unlocked', async (t) => {
  const warnings: string[] = [];
  const noFlock = new LocalConnection('pve2');
  const exec = noFlock.exec.bind(noFlock);
  noFlock.exec = (command, opts) => exec(`PATH=/nonexistent; ${command}`, opts);
  const r = await lockHost(noFlock, { dir: '/tmp/passthru-lock-none', owner: 'A', waitS: 1, warn: (m) => warnings.push(m) });
  t.is(r, null);
  t.regex(warnings[0] ?? '', /pve2: could not lock the node against a concurrent apply \(passthru: flock\(1\) is not installed/);
  t.true(lockScript('/var/lib/passthru', "it's", 3).includes(`'it'\\''s'`));
});

test('a run never waits on its own lock: a second host of the same run on the same machine goes on at once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = await lockHost(conn, { dir, owner: 'run A', waitS: 5 });
  const started = Date.now();
  const again = await lockHost(conn, { dir, owner: 'run A', waitS: 5 });
  t.truthy(again);
  t.true(Date.now() - started < 3000, 'no wait for its own lock');
  // Another run still waits and stops: the first holder keeps the lock.
  await t.throwsAsync(lockHost(conn, { dir, owner: 'run B', waitS: 0 }), { instanceOf: RunError, message: /holds the lock on this node: run A/ });
  await again!.release();
  await a!.release();
});
