/**
 * The one atomic write script (src/transport/write-script.ts), run by the local transport exactly
 * as the SSH transport runs it on a host: symlinks refused, unique temp names, fsync errors
 * surfaced, the old file intact on every failure, backups only on change, named to the
 * millisecond with a sequence, pruned.
 */
import test, { type ExecutionContext } from 'ava';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalConnection } from '../../src/transport/local.ts';
import { CommandError } from '../../src/transport/connection.ts';
import { BACKUP_NAME, writeOutcome, writeScript } from '../../src/transport/write-script.ts';

const conn = new LocalConnection('local');
const tmp = () => mkdtemp(join(tmpdir(), 'passthru-aw-'));
/** A temp directory removed when the test ends. */
async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true }));
  return dir;
}

test('the script is a pure function of its inputs and wants an absolute path', (t) => {
  const now = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6));
  t.is(writeScript('/etc/x', 3, { backup: true }, now), writeScript('/etc/x', 3, { backup: true }, now));
  t.regex(writeScript('/etc/x', 3, { backup: true }, now), /passthru-20260102T030405\.006Z-\$i\.bak/);
  t.throws(() => writeScript('etc/x', 1), { message: /must be absolute/ });
  t.throws(() => writeScript('/etc/x', 1, { backup: true, keepBackups: 0 }), { message: /keepBackups/ });
  // A value never becomes code: the path is one quoted word.
  t.true(writeScript("/tmp/a'$(touch x)", 1).includes(`p='/tmp/a'\\''$(touch x)'`));
});

test('a symlink at the target is refused: neither the link nor the file it points to changes', async (t) => {
  const dir = await scratch(t);
  await writeFile(join(dir, 'real.conf'), 'real\n');
  await symlink('real.conf', join(dir, 'link.conf'));
  await symlink('/nonexistent/target', join(dir, 'dangling.conf'));
  const e = await t.throwsAsync(conn.write(join(dir, 'link.conf'), 'evil\n'), { instanceOf: CommandError });
  t.regex(e!.message, /link\.conf: it is a symbolic link \(to real\.conf\); passthru neither writes through links nor replaces them/);
  await t.throwsAsync(conn.write(join(dir, 'dangling.conf'), 'evil\n'), { message: /symbolic link/ });
  t.is(await readFile(join(dir, 'real.conf'), 'utf8'), 'real\n');
  t.true((await lstat(join(dir, 'link.conf'))).isSymbolicLink());
  t.deepEqual((await readdir(dir)).sort(), ['dangling.conf', 'link.conf', 'real.conf']);
});

test('concurrent writers to one file: every write succeeds whole, no temp file of another writer is removed', async (t) => {
  const dir = await scratch(t);
  const p = join(dir, 'shared.conf');
  await writeFile(p, 'v0\n');
  // Another writer's temp file, in flight right now (it holds the lock): must survive.
  const foreign = join(dir, '.passthru-tmp.inflight01');
  await writeFile(foreign, 'partial');
  const holder = spawn('flock', ['-n', foreign, 'sleep', '30'], { stdio: 'ignore' });
  t.teardown(() => holder.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 300));
  // A leftover of a writer killed with SIGKILL (nobody holds it): cleaned.
  await writeFile(join(dir, '.passthru-tmp.stale00001'), 'old');
  const contents = Array.from({ length: 12 }, (_, i) => `writer ${i} ${'x'.repeat(5000 + i)}\n`);
  await Promise.all(contents.map((c) => conn.write(p, c)));
  t.true(contents.includes(await readFile(p, 'utf8')));
  t.deepEqual((await readdir(dir)).sort(), ['.passthru-tmp.inflight01', 'shared.conf']);
  t.is(await readFile(foreign, 'utf8'), 'partial');
});

test('a write that fails part-way (file size limit, like a full disk) leaves the old file and no temp file', async (t) => {
  const dir = await scratch(t);
  const p = join(dir, 'grub');
  await writeFile(p, 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n');
  const big = 'y'.repeat(200_000);
  // ulimit -f: the kernel refuses writes past 100 KiB (EFBIG/SIGXFSZ), as ENOSPC would.
  const r = await conn.exec(`ulimit -f 200; ${writeScript(p, big.length)}`, { stdin: big, nothrow: true });
  t.not(r.code, 0);
  t.regex(r.stderr, /cannot write .*grub: (writing the new content failed|short write).*; the old file is unchanged/);
  t.throws(() => writeOutcome('local', p, big.length, r), { instanceOf: CommandError, message: /write .*grub \(200000 bytes\)/ });
  t.is(await readFile(p, 'utf8'), 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n');
  t.deepEqual(await readdir(dir), ['grub']);
});

test('a dropped connection (stdin ends early) is a short write: old file intact', async (t) => {
  const dir = await scratch(t);
  const p = join(dir, 'vfio.conf');
  await writeFile(p, 'old\n');
  const r = await conn.exec(writeScript(p, 1000), { stdin: 'only part', nothrow: true });
  t.is(r.code, 1);
  t.regex(r.stderr, /short write \(9 of 1000 bytes/);
  t.is(await readFile(p, 'utf8'), 'old\n');
  t.deepEqual(await readdir(dir), ['vfio.conf']);
});

test('an fsync error fails the write and is reported, the old file stays', async (t) => {
  const dir = await scratch(t);
  const bin = join(dir, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'sync'), '#!/bin/sh\necho "sync: error syncing: Input/output error" >&2\nexit 1\n');
  await chmod(join(bin, 'sync'), 0o755);
  const p = join(dir, 'f');
  await writeFile(p, 'old\n');
  const r = await conn.exec(`PATH=${bin}:$PATH; export PATH; ${writeScript(p, 4)}`, { stdin: 'new\n', nothrow: true });
  t.is(r.code, 1);
  t.regex(r.stderr, /Input\/output error[\s\S]*fsync of the new content failed; the old file is unchanged/);
  t.is(await readFile(p, 'utf8'), 'old\n');
});

test('backups: only when the content changes, unique names, pruned to keepBackups', async (t) => {
  const dir = await scratch(t);
  const p = join(dir, 'grub');
  await writeFile(p, 'v0\n');
  // The same bytes again: no backup.
  t.deepEqual(await conn.write(p, 'v0\n', { backup: true, keepBackups: 3 }), {});
  const kept: string[] = [];
  for (let i = 1; i <= 6; i++) {
    const r = await conn.write(p, `v${i}\n`, { backup: true, keepBackups: 3 });
    t.regex(r.backupPath!, BACKUP_NAME);
    t.false(kept.includes(r.backupPath!));
    kept.push(r.backupPath!);
    t.is(await readFile(r.backupPath!, 'utf8'), `v${i - 1}\n`);
  }
  const left = (await readdir(dir)).filter((f) => f !== 'grub').map((f) => join(dir, f));
  t.deepEqual(left.sort(), kept.slice(-3).sort());
  t.deepEqual(await Promise.all(left.sort().map((f) => readFile(f, 'utf8'))), ['v3\n', 'v4\n', 'v5\n']);
  // Unbounded without keepBackups (as Ansible's backup: yes).
  for (let i = 7; i <= 9; i++) await conn.write(p, `v${i}\n`, { backup: true });
  t.is((await readdir(dir)).length, 1 + 3 + 3);
});

test('an ordinary file keeps its owner and mode; a fifo or device at the target is refused', async (t) => {
  const dir = await scratch(t);
  const p = join(dir, 'f');
  await writeFile(p, 'a');
  await chmod(p, 0o640);
  await conn.write(p, 'b');
  t.is((await lstat(p)).mode & 0o7777, 0o640);
  await conn.exec(`mkfifo ${join(dir, 'fifo')}`);
  await t.throwsAsync(conn.write(join(dir, 'fifo'), 'x'), { message: /not a regular file/ });
});

test('compare and swap: written only while the file still has the content the plan read, under the writers\' lock', async (t) => {
  const d = await scratch(t);
  const p = join(d, '200.conf');
  const lock = join(d, 'lock', 'pve-config-200.lock');
  await writeFile(p, 'arch: amd64\n');
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  await conn.write(p, 'arch: amd64\nlxc.mount.entry: x\n', { expectSha256: sha('arch: amd64\n'), lockFile: lock });
  t.is(await readFile(p, 'utf8'), 'arch: amd64\nlxc.mount.entry: x\n');
  // someone edited it after the read: refused, their edit kept, no temp file left
  const e = await t.throwsAsync(conn.write(p, 'mine\n', { expectSha256: sha('arch: amd64\n'), lockFile: lock }));
  t.regex(e!.message, /changed by someone else since it was read: run again; the old file is unchanged/);
  t.is(await readFile(p, 'utf8'), 'arch: amd64\nlxc.mount.entry: x\n');
  t.deepEqual((await readdir(d)).filter((f) => f.startsWith('.passthru-tmp')), []);
  // '' = must not exist yet
  await t.throwsAsync(conn.write(p, 'x\n', { expectSha256: '' }), { message: /created by someone else/ });
  await conn.write(join(d, 'new.conf'), 'x\n', { expectSha256: '' });
  t.is(await readFile(join(d, 'new.conf'), 'utf8'), 'x\n');
  // the lock is the one other writers take: held elsewhere, the write waits for it
  const holder = spawn('flock', [lock, 'sleep', '2'], { stdio: 'ignore' });
  const released = new Promise((r) => holder.on('exit', r));
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  await conn.write(p, 'after the lock\n', { expectSha256: sha('arch: amd64\nlxc.mount.entry: x\n'), lockFile: lock });
  t.true(Date.now() - t0 >= 1000, 'waited for the holder');
  await released;
  t.is(await readFile(p, 'utf8'), 'after the lock\n');
});
