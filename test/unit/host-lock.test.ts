/**
 * The node lock against concurrent applies, run by the local transport (real sh, real flock):
 * the second run waits, then stops with who holds the lock; the lock ends with its run.
 */
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalConnection } from '../../src/transport/local.ts';
import { ALONG_MAX_BYTES, lockHost, lockScript } from '../../src/engine/host-lock.ts';
import { CommandError } from '../../src/transport/connection.ts';
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

test('a script run along with the lock prints and exits exactly as `sh -s` with it on stdin, once the lock is held', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const big = 'i=0; while [ $i -lt 4000 ]; do printf "%050d\\n" $i; i=$((i+1)); done';
  const scripts = [
    `echo '${'passthru-lock: held'}'; echo out; echo err >&2; exit 3`,
    big,
    "printf '\\n@@passthru-lock-along-end 0 0\\n'; echo still the script",
  ];
  for (const script of scripts) {
    const alone = await conn.exec('sh -s', { stdin: `${script}\n`, nothrow: true });
    const lock = await lockHost(conn, { dir, owner: 'run A', waitS: 1, along: { script, timeoutMs: 20_000 } });
    t.teardown(() => lock?.release());
    t.truthy(lock?.along, 'the script ran in the lock command');
    const r = await lock!.along!;
    t.is(r.stdout, alone.stdout, script.slice(0, 40));
    t.is(r.code, alone.code);
    await lock!.release();
  }
  // It runs once the lock is held (the owner file is written), and its stdin is not the lock's:
  // a script that reads its stdin to the end does not hold on to the lock command's.
  const script = `cat > /dev/null; echo "owner: $(cat '${dir}/apply.owner')"; printf 'no newline at the end'`;
  const withOwner = await lockHost(conn, { dir, owner: 'run B', waitS: 1, along: { script, timeoutMs: 5000 } });
  t.teardown(() => withOwner?.release());
  t.is((await withOwner!.along!).stdout, 'owner: run B\nno newline at the end');
  await withOwner!.release();
});

test('along with the lock: nothing runs while another run holds it; a script over its time is given up, the lock still released', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = await lockHost(conn, { dir, owner: 'run A', waitS: 1 });
  await t.throwsAsync(lockHost(conn, { dir, owner: 'run B', waitS: 0, along: { script: `touch '${dir}/ran'` } }), { instanceOf: RunError });
  await t.throwsAsync(readFile(join(dir, 'ran'), 'utf8'), undefined, 'the script did not run');
  await a!.release();
  const slow = await lockHost(conn, { dir, owner: 'run C', waitS: 1, along: { script: 'echo begun; sleep 2', timeoutMs: 300 } });
  t.teardown(() => slow?.release());
  const e = await t.throwsAsync(slow!.along!, { instanceOf: CommandError });
  t.regex(e!.message, /timed out after 300 ms/);
  const started = Date.now();
  await slow!.release();
  t.true(Date.now() - started < 9000, 'released once the script ended');
  // Too long for a command line: no `along`, the caller runs it as a command of its own.
  const long = await lockHost(conn, { dir, owner: 'run D', waitS: 1, along: { script: `: '${'x'.repeat(ALONG_MAX_BYTES)}'` } });
  t.truthy(long);
  t.is(long!.along, undefined);
  await long!.release();
});

test('along with the lock: output with characters of several bytes comes back whole, as sh -s gives it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // 81,920 three-byte characters in one write: the 64 KiB pipe chunks split some of them.
  const script = "s='€€€€€€€€€€'; i=0; while [ $i -lt 13 ]; do s=$s$s; i=$((i+1)); done; printf '%s' \"$s\"";
  const alone = await conn.exec('sh -s', { stdin: `${script}\n`, nothrow: true });
  const lock = await lockHost(conn, { dir, owner: 'run A', waitS: 1, along: { script, timeoutMs: 20_000 } });
  t.teardown(() => lock?.release());
  const r = await lock!.along!;
  t.is(r.stdout.length, 81_920);
  t.is(r.stdout, alone.stdout);
  await lock!.release();
});
