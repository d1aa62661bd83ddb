import test from 'ava';
import { mkdtemp, mkdir, writeFile, chmod, rm, symlink, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { LocalConnection } from '../../src/transport/local.ts';
import {
  HostObserver,
  buildReadScript,
  parseReadOutput,
  newMarker,
  readKey,
  type ObservedFile,
} from '../../src/modules/observer.ts';
import type { CmdState, Read } from '../../src/modules/contract.ts';
import { cmd, type Connection, type ExecOptions } from '../../src/transport/connection.ts';

const local = new LocalConnection('local');
/** A read map as an object with sorted keys: the order reads come back in is not part of the result. */
const sorted = (m: Map<string, unknown>) => Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)));
const BIN = Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 13, 0x80]);

async function oddTree() {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-obs-'));
  const names = {
    spaces: join(dir, 'a file with spaces'),
    quotes: join(dir, `it's "quoted"`),
    subst: join(dir, '$(touch pwned) `x`'),
    newlineName: join(dir, 'new\nline'),
    binary: join(dir, 'bin'),
    missing: join(dir, 'missing'),
    dir: join(dir, 'a dir'),
    link: join(dir, 'link'),
    empty: join(dir, 'empty'),
  };
  await writeFile(names.spaces, 'one\ntwo\n');
  await writeFile(names.quotes, "it's\n");
  await writeFile(names.subst, 'no trailing newline');
  await writeFile(names.newlineName, 'line1\nline2\n\n');
  await writeFile(names.binary, BIN);
  await chmod(names.binary, 0o600);
  await mkdir(names.dir);
  await symlink(names.spaces, names.link);
  await writeFile(names.empty, '');
  return { dir, names };
}

test('buildReadScript/parseReadOutput round trip on real sh: odd names, binary, missing, dir', async (t) => {
  const { dir, names } = await oddTree();
  const reads: Read[] = [
    { kind: 'file', path: names.spaces },
    { kind: 'file', path: names.quotes },
    { kind: 'file', path: names.subst },
    { kind: 'file', path: names.newlineName },
    { kind: 'file', path: names.binary },
    { kind: 'file', path: names.missing },
    { kind: 'file', path: names.dir },
    { kind: 'stat', path: names.dir },
    { kind: 'file', path: names.link },
    { kind: 'file', path: names.empty },
    { kind: 'cmd', command: `printf 'a\\0b'; echo oops >&2; exit 4` },
    { kind: 'cmd', command: 'this is ( not valid sh' },
    { kind: 'cmd', command: 'cat; echo after' },
  ];
  const marker = newMarker();
  const script = buildReadScript(reads, marker);
  // Run inside the temp dir: a `$(touch pwned)` that ran would create <dir>/pwned.
  const res = await local.exec(`${cmd('cd', dir)} && sh -s`, { stdin: script, nothrow: true });
  const out = parseReadOutput(res.stdout, marker);
  t.is(out.size, reads.length);
  const f = (p: string) => out.get(`file:${p}`) as ObservedFile;
  t.like(f(names.spaces), { exists: true, content: 'one\ntwo\n', mode: 0o644, isDir: false });
  t.is(f(names.quotes).content, "it's\n");
  t.is(f(names.subst).content, 'no trailing newline');
  t.is(f(names.newlineName).content, 'line1\nline2\n\n');
  t.deepEqual(f(names.binary).bytes, BIN);
  t.is(f(names.binary).mode, 0o600);
  t.deepEqual(f(names.missing), { exists: false, content: '' });
  t.like(f(names.dir), { exists: true, isDir: true, content: '' });
  t.like(out.get(`stat:${names.dir}`) as ObservedFile, { exists: true, isDir: true, mode: 0o755 });
  t.is(f(names.link).content, 'one\ntwo\n');
  t.like(f(names.empty), { exists: true, content: '' });
  t.is(typeof f(names.spaces).owner, 'string');
  t.deepEqual(out.get(readKey(reads[10]!)) as CmdState, { code: 4, stdout: 'a\0b', stderr: 'oops\n' });
  t.not((out.get(readKey(reads[11]!)) as CmdState).code, 0);
  // A command reading stdin gets EOF, not the rest of the script.
  t.deepEqual(out.get(readKey(reads[12]!)), { code: 0, stdout: 'after\n', stderr: '' });
  // The regular files and the commands' outputs came in one archive; one by one gives the same.
  t.true(res.stdout.includes(`\n${marker} - tarrc 0\n`), 'the batch archive was read whole');
  const one = await local.exec(`${cmd('cd', dir)} && sh -s`, { stdin: buildReadScript(reads, marker, { batch: false }), nothrow: true });
  t.false(one.stdout.includes(`${marker} - tar`));
  t.deepEqual(sorted(parseReadOutput(one.stdout, marker)), sorted(out));
  // $(touch pwned) in a name was never run.
  t.false((await readdir(dir)).includes('pwned'));
  t.true((await readdir(dir)).includes('$(touch pwned) `x`'));
  await rm(dir, { recursive: true });
});

test('a batch whose archive fails falls back to reading one by one in the same script; without tar too', async (t) => {
  const { dir, names } = await oddTree();
  const reads: Read[] = [
    { kind: 'file', path: names.spaces },
    { kind: 'file', path: names.binary },
    { kind: 'cmd', command: 'echo out; echo err >&2' },
  ];
  const marker = newMarker();
  const script = buildReadScript(reads, marker);
  const want = parseReadOutput((await local.exec('sh -s', { stdin: buildReadScript(reads, marker, { batch: false }) })).stdout, marker);
  t.is(want.size, 3);
  // tar fails (a stand-in that exits 2 after half an archive) / tar is not installed
  const bin = join(dir, 'bin-dir');
  await mkdir(bin);
  await writeFile(join(bin, 'tar'), '#!/bin/sh\nprintf garbage\nexit 2\n', { mode: 0o755 });
  // no tar at all: a PATH of links to every other program the script runs
  const noTar = join(dir, 'no-tar');
  await mkdir(noTar);
  for (const p of ['sh', 'mktemp', 'rm', 'mkdir', 'stat', 'base64', 'cat']) await symlink(execFileSync('sh', ['-c', `command -v ${p}`]).toString().trim(), join(noTar, p));
  for (const path of [`${bin}:/usr/bin:/bin`, noTar]) {
    const res = await local.exec(`PATH=${path} sh -s`, { stdin: script, nothrow: true });
    t.regex(res.stdout, new RegExp(`${marker} - tarrc [^0]`));
    t.deepEqual(sorted(parseReadOutput(res.stdout, marker)), sorted(want), path);
  }
  await rm(dir, { recursive: true });
});

test('parseReadOutput ignores noise outside the marker and lines of another marker', (t) => {
  const key = Buffer.from('file:/x').toString('base64');
  const stdout = `motd noise\nOTHER_1 ${key} missing\nPT_m ${key} stat 600 root adm regular file\nPT_m ${key} data\n${Buffer.from('hi\n').toString('base64')}\nPT_m - done\ntrailing\n`;
  const out = parseReadOutput(stdout, 'PT_m');
  t.deepEqual(out.get('file:/x'), {
    exists: true,
    content: 'hi\n',
    bytes: Buffer.from('hi\n'),
    mode: 0o600,
    owner: 'root',
    group: 'adm',
    isDir: false,
  });
});

test('an unreadable file is an error for file(), other reads unaffected', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-obs-'));
  await chmod(dir, 0o755);
  const p = join(dir, 'secret');
  await writeFile(p, 'x');
  await chmod(p, 0);
  // root reads anything: run the read script as nobody, so the permission really is refused.
  const asNobody: Connection = {
    host: 'nobody',
    exec: (command, opts) => local.exec(`setpriv --reuid=65534 --regid=65534 --clear-groups ${command}`, opts),
    write: async () => ({}),
    reconnect: async () => {},
    close: async () => {},
  };
  const obs = new HostObserver(process.getuid?.() === 0 ? asNobody : local);
  await obs.prefetch([{ kind: 'file', path: p }, { kind: 'file', path: join(dir, 'none') }]);
  await t.throwsAsync(obs.file(p), { message: /cannot read .*secret/ });
  t.false((await obs.file(join(dir, 'none'))).exists);
  await rm(dir, { recursive: true });
});

class CountingConnection extends LocalConnection {
  execs = 0;
  override exec(command: string, opts?: ExecOptions) {
    this.execs++;
    return super.exec(command, opts);
  }
}

test('HostObserver: one exec for a prefetch, cache answers, lazy reads cost one each', async (t) => {
  const { dir, names } = await oddTree();
  const conn = new CountingConnection('local');
  const obs = new HostObserver(conn);
  await obs.prefetch([
    { kind: 'file', path: names.spaces },
    { kind: 'file', path: names.spaces },
    { kind: 'stat', path: names.dir },
    { kind: 'cmd', command: 'echo hi' },
  ]);
  t.is(obs.roundTrips, 1);
  t.is(conn.execs, 1);
  t.is((await obs.file(names.spaces)).content, 'one\ntwo\n');
  t.true((await obs.stat(names.dir)).isDir);
  t.is((await obs.stat(names.spaces)).content, '', 'stat answered from the file read, without content');
  t.is((await obs.cmd('echo hi')).stdout, 'hi\n');
  t.is(obs.roundTrips, 1);
  // A prefetch of things already read does not exec.
  await obs.prefetch([{ kind: 'file', path: names.spaces }]);
  t.is(obs.roundTrips, 1);
  // Undeclared reads: one round trip each, even when asked concurrently.
  const [a, b] = await Promise.all([obs.file(names.quotes), obs.file(names.quotes)]);
  t.is(a.content, "it's\n");
  t.is(b, a);
  t.is(obs.roundTrips, 2);
  t.is(conn.execs, 2);
  await rm(dir, { recursive: true });
});

test('HostObserver.record overlays planned writes, deletes and chmods', async (t) => {
  const { dir, names } = await oddTree();
  const obs = new HostObserver(local);
  await obs.prefetch([{ kind: 'file', path: names.spaces }, { kind: 'file', path: names.binary }]);
  const fresh = join(dir, 'fresh');
  obs.record([
    { kind: 'write', path: names.spaces, content: 'planned\n' },
    { kind: 'write', path: fresh, content: 'new', mode: 0o600 },
    { kind: 'delete', path: names.binary },
    { kind: 'chmod', path: names.quotes, mode: 0o700 },
    { kind: 'exec', command: 'true' },
  ]);
  t.like(await obs.file(names.spaces), { exists: true, content: 'planned\n', mode: 0o644 });
  t.like(await obs.stat(fresh), { exists: true, mode: 0o600 });
  t.is((await obs.file(fresh)).content, 'new');
  t.deepEqual(await obs.file(names.binary), { exists: false, content: '' });
  t.like(await obs.file(names.quotes), { exists: true, content: "it's\n", mode: 0o700 });
  // The host itself did not change.
  t.is((await local.exec(`cat ${JSON.stringify(names.spaces)}`)).stdout, 'one\ntwo\n');
  // After an exec action every cached answer is read again; the planned overlays stay.
  const counter = `${dir}/count`;
  const count = `echo x >> '${counter}'; wc -l < '${counter}'`;
  t.is((await obs.cmd(count)).stdout.trim(), '1');
  t.is((await obs.cmd(count)).stdout.trim(), '1', 'answered from the cache');
  obs.record([{ kind: 'exec', command: 'true' }]);
  t.is((await obs.cmd(count)).stdout.trim(), '2', 'asked again after a command');
  t.is((await obs.file(fresh)).content, 'new', 'overlay kept');
  await rm(dir, { recursive: true });
});

test('HostObserver: a broken read script reports which read is missing', async (t) => {
  const broken: Connection = {
    host: 'b',
    exec: async (command) => ({ command, code: 127, stdout: '', stderr: 'sh: not found', durationMs: 0 }),
    write: async () => ({}),
    reconnect: async () => {},
    close: async () => {},
  };
  const obs = new HostObserver(broken);
  await t.throwsAsync(obs.prefetch([{ kind: 'file', path: '/etc/x' }]), {
    message: /b: reading the host failed \(exit 127\) before file:\/etc\/x: sh: not found/,
  });
});
