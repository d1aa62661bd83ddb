import test from 'ava';
import { mkdtemp, readFile, readdir, stat, writeFile, chmod, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalConnection, TIMEOUT_CODE } from '../../src/transport/local.ts';
import { backupStampMs } from '../../src/transport/write-script.ts';
import { CommandError, cmd } from '../../src/transport/connection.ts';

const conn = new LocalConnection('local');
const tmp = () => mkdtemp(join(tmpdir(), 'passthru-local-'));

test('exec: stdout, stderr, code and duration', async (t) => {
  const r = await conn.exec('echo out; echo err >&2');
  t.is(r.code, 0);
  t.is(r.stdout, 'out\n');
  t.is(r.stderr, 'err\n');
  t.is(r.command, 'echo out; echo err >&2');
  t.true(r.durationMs >= 0);
});

test('exec: non-zero exit throws CommandError carrying the result', async (t) => {
  const e = await t.throwsAsync(conn.exec('echo nope >&2; exit 3'), { instanceOf: CommandError });
  t.is((e as CommandError).result.code, 3);
  t.regex(e!.message, /local: command exited 3: .*\nnope/);
});

test('exec: nothrow returns the failing result', async (t) => {
  const r = await conn.exec('exit 7', { nothrow: true });
  t.is(r.code, 7);
});

test('exec: stdin is fed and closed', async (t) => {
  const r = await conn.exec('wc -c; cat', { stdin: '' });
  t.is(r.stdout.trim(), '0');
  const r2 = await conn.exec('tr a-z A-Z', { stdin: Buffer.from('hello\n') });
  t.is(r2.stdout, 'HELLO\n');
  // No stdin: a reading command sees EOF instead of hanging.
  const r3 = await conn.exec('cat', { timeoutMs: 5000 });
  t.is(r3.stdout, '');
});

test('exec: quoted arguments survive the shell', async (t) => {
  const odd = `it's $(echo pwned) "q" \`x\` \n end`;
  const r = await conn.exec(cmd('printf', '%s', odd));
  t.is(r.stdout, odd);
});

test('exec: timeout kills the whole process group', async (t) => {
  const dir = await tmp();
  const marker = join(dir, 'late');
  const started = Date.now();
  // A child in the background would outlive a kill of sh alone.
  const e = await t.throwsAsync(conn.exec(`(sleep 2; touch ${marker}) & sleep 10`, { timeoutMs: 300 }), {
    instanceOf: CommandError,
  });
  t.is((e as CommandError).result.code, TIMEOUT_CODE);
  t.regex((e as CommandError).result.stderr, /timed out after 300 ms/);
  t.true(Date.now() - started < 2000);
  const r = await conn.exec(`sleep 5`, { timeoutMs: 200, nothrow: true });
  t.is(r.code, TIMEOUT_CODE);
  await new Promise((res) => setTimeout(res, 2300));
  await t.throwsAsync(stat(marker), undefined, 'background child was killed with its group');
  await rm(dir, { recursive: true });
});

test('write: atomic replace keeps the old mode and leaves no temp file', async (t) => {
  const dir = await tmp();
  const p = join(dir, 'conf file');
  await writeFile(p, 'old\n');
  await chmod(p, 0o640);
  const r = await conn.write(p, 'new\n');
  t.deepEqual(r, {});
  t.is(await readFile(p, 'utf8'), 'new\n');
  t.is((await stat(p)).mode & 0o7777, 0o640);
  t.deepEqual(await readdir(dir), ['conf file']);
  await rm(dir, { recursive: true });
});

test('write: new file gets 0644 (or the given mode), bytes exact', async (t) => {
  const dir = await tmp();
  const a = join(dir, 'a');
  await conn.write(a, Buffer.from([0, 1, 255, 10]));
  t.is((await stat(a)).mode & 0o7777, 0o644);
  t.deepEqual(await readFile(a), Buffer.from([0, 1, 255, 10]));
  const b = join(dir, 'b');
  await conn.write(b, 'x', { mode: 0o600 });
  t.is((await stat(b)).mode & 0o7777, 0o600);
  await conn.write(b, 'y', { mode: 0o755 });
  t.is((await stat(b)).mode & 0o7777, 0o755);
  await rm(dir, { recursive: true });
});

test('write: backup copies the old file to <path>.passthru-<UTC ms>-<n>.bak', async (t) => {
  const dir = await tmp();
  const p = join(dir, 'grub');
  await writeFile(p, 'v1\n');
  const r1 = await conn.write(p, 'v2\n', { backup: true });
  t.regex(r1.backupPath ?? '', /\/grub\.passthru-\d{8}T\d{6}\.\d{3}Z-\d+\.bak$/);
  t.is(await readFile(r1.backupPath!, 'utf8'), 'v1\n');
  // A second backup in the same second does not overwrite the first.
  const r2 = await conn.write(p, 'v3\n', { backup: true });
  t.not(r2.backupPath, r1.backupPath);
  t.is(await readFile(r2.backupPath!, 'utf8'), 'v2\n');
  t.is(await readFile(r1.backupPath!, 'utf8'), 'v1\n');
  // No old file: nothing to back up.
  const r3 = await conn.write(join(dir, 'fresh'), 'x', { backup: true });
  t.is(r3.backupPath, undefined);
  t.is(backupStampMs(new Date(Date.UTC(2026, 10, 4, 9, 30, 12, 7))), '20261104T093012.007Z');
  await rm(dir, { recursive: true });
});

test('write: into a missing directory fails clearly and leaves nothing behind', async (t) => {
  const dir = await tmp();
  const e = await t.throwsAsync(conn.write(join(dir, 'nodir', 'f'), 'x'));
  t.regex(e!.message, /cannot write .*nodir\/f: directory .*nodir does not exist/);
  t.deepEqual(await readdir(dir), []);
  await rm(dir, { recursive: true });
});

test('write: onto a directory fails, temp file cleaned when chown fails', async (t) => {
  const dir = await tmp();
  await t.throwsAsync(conn.write(dir, 'x'), { message: /is a directory/ });
  const p = join(dir, 'f');
  await writeFile(p, 'keep\n');
  await t.throwsAsync(conn.write(p, 'x', { owner: 'no-such-user-passthru' }));
  t.is(await readFile(p, 'utf8'), 'keep\n');
  t.deepEqual(await readdir(dir), ['f']);
  await rm(dir, { recursive: true });
});

test('reconnect and close are no-ops', async (t) => {
  await t.notThrowsAsync(conn.reconnect({ deadlineMs: 10 }));
  await t.notThrowsAsync(conn.close());
});
