/**
 * Answers kept for the lab's stub tools (src/lab/answers.ts, answer_get in lab/stubs/lib/common.sh):
 * what the boot computes in TypeScript is byte for byte what the stub computes from the same file,
 * and what the stub printed before answers existed; a kept answer is used only while it is strictly
 * newer than its file. The stubs run here outside any node (LAB_NODE is a temporary directory).
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dpkgIndex, formatDmesg, keepAnswer, writeDmesgAnswers } from '../../src/lab/answers.ts';

const LIB = join(import.meta.dirname, '../../lab/stubs/lib');
const BIN = join(import.meta.dirname, '../../lab/stubs/bin');

function fakeNode(t: { teardown: (f: () => void) => void }): { node: string; run: string; ans: string } {
  const node = mkdtempSync(join(tmpdir(), 'passthru-answers-'));
  t.teardown(() => rmSync(node, { recursive: true, force: true }));
  const run = join(node, 'gen/run');
  mkdirSync(run, { recursive: true });
  return { node, run, ans: join(run, 'answers') };
}
const stub = (node: string, tool: string, args: string[], env: Record<string, string> = {}) =>
  execFileSync('bash', [join(BIN, tool), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH!, LAB_NODE: node, LAB_DIR: node, LAB_LIB: LIB, ...env },
  });
/** Sets a file's time (seconds since the epoch). */
const at = (f: string, s: number) => utimesSync(f, s, s);

const RAW_DMESG = [
  '[           0.000000] Linux version 6.8.12-4-pve',
  '[           0.013000] DMAR: IOMMU enabled',
  '[          12.987000] vfio-pci 0000:01:00.0: enabling device',
  'a line without a timestamp',
  '[  123456.5] short fraction',
  '',
].join('\n');
/** What the dmesg stub printed before answers existed (its awk program, verbatim). */
const OLD_DMESG_AWK =
  '{ if (match($0, /^\\[ *[0-9]+\\.[0-9]+\\] /)) { ts = substr($0, 2, RLENGTH - 3); gsub(/ /, "", ts); split(ts, p, "."); printf "[%5d.%s] %s\\n", p[1], p[2], substr($0, RLENGTH + 1) } else print }';

test("dmesg: the boot's answer, the stub's own and the old awk format agree byte for byte", (t) => {
  const { node, run, ans } = fakeNode(t);
  writeFileSync(join(run, 'dmesg'), RAW_DMESG);
  const old = execFileSync('awk', [OLD_DMESG_AWK, join(run, 'dmesg')], { encoding: 'utf8' });
  t.is(formatDmesg(RAW_DMESG), old);
  t.regex(old, /^\[    0\.013000\] DMAR: IOMMU enabled$/m);
  // no answer yet: the stub computes it, prints it and keeps it
  at(join(run, 'dmesg'), 1_000_000);
  t.is(stub(node, 'dmesg', []), old);
  t.is(readFileSync(join(ans, 'dmesg'), 'utf8'), old);
  t.deepEqual(readdirSync(ans), ['dmesg'], 'no temporary file left');
  // the boot's answer (TypeScript) is the same
  rmSync(ans, { recursive: true });
  writeDmesgAnswers(run);
  t.is(readFileSync(join(ans, 'dmesg'), 'utf8'), old);
  t.is(readFileSync(join(ans, 'dmesg-mtime'), 'utf8'), '1000000\n');
  t.is(stub(node, 'dmesg', []), old);
});

test('an answer is used while strictly newer than its file; equal or older: computed again and kept', (t) => {
  const { node, run, ans } = fakeNode(t);
  const f = join(run, 'dmesg');
  writeFileSync(f, '[    1.000000] one\n');
  mkdirSync(ans);
  const a = join(ans, 'dmesg');
  writeFileSync(a, 'KEPT\n');
  at(f, 1_000_000);
  at(a, 1_000_001);
  t.is(stub(node, 'dmesg', []), 'KEPT\n', 'newer: used as it is');
  at(a, 1_000_000);
  t.is(stub(node, 'dmesg', []), '[    1.000000] one\n', 'same time: stale');
  t.is(readFileSync(a, 'utf8'), '[    1.000000] one\n', 'and kept again');
  t.true(statSync(a).mtimeMs > statSync(f).mtimeMs);
  writeFileSync(a, 'KEPT\n');
  at(a, 999_999);
  t.is(stub(node, 'dmesg', []), '[    1.000000] one\n', 'older: stale');
  // the file's time not older than the stamp taken before reading it (as when it changes meanwhile): printed, not kept
  rmSync(a);
  at(f, Date.now() / 1000 + 60);
  t.is(stub(node, 'dmesg', []), '[    1.000000] one\n');
  t.false(existsSync(a));
  t.deepEqual(readdirSync(ans), []);
});

const STATUS = [
  'Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\nDescription: z\n',
  'Package: dkms\nStatus: install ok installed\nPriority: optional\nVersion: 3.0.10-8\nDescription: dkms\n Version: 9 (a continuation line)\n',
  'Package: proxmox-kernel-6.8.12-4-pve\nStatus: install ok installed\nVersion: 6.8.12-4\n',
  'Package: proxmox-kernel-helper\nStatus: install ok installed\nVersion: 8.1.0\n',
  'Package: proxmox-kernel-6.5.13-6-pve\nStatus: deinstall ok config-files\nVersion: 6.5.13-6\n',
  'Package: noversion\nStatus: install ok installed\n',
  'Package: dkms\nStatus: install ok installed\nVersion: 3.0.11-1\n',
  'Description: a stanza without a package\n',
].join('\n');

test("dpkg index: the boot's and the stub's agree; dpkg-query -W, -s and -l read it, in name order", (t) => {
  const { node, run, ans } = fakeNode(t);
  const status = join(node, 'status');
  writeFileSync(status, STATUS);
  at(status, 1_000_000);
  const env = { LAB_DPKG_STATUS: status };
  const idx = dpkgIndex(STATUS);
  t.is(
    idx,
    'dkms\t3.0.11-1\tinstall ok installed\nnoversion\t\tinstall ok installed\nproxmox-kernel-6.5.13-6-pve\t6.5.13-6\tdeinstall ok config-files\n' +
      'proxmox-kernel-6.8.12-4-pve\t6.8.12-4\tinstall ok installed\nproxmox-kernel-helper\t8.1.0\tinstall ok installed\nzlib1g\t1:1.2.13\tinstall ok installed\n',
  );
  const all = stub(node, 'dpkg-query', ['-W', '-f=${Package}\\t${Version}\\t${db:Status-Status}\\n'], env);
  t.is(readFileSync(join(ans, 'dpkg.tsv'), 'utf8'), idx, 'the stub kept the same index');
  t.is(all, idx.replace(/\t[^\t\n]*$/gm, '\tinstalled'));
  t.is(stub(node, 'dpkg-query', ['-W', 'proxmox-kernel-*'], env), 'proxmox-kernel-6.5.13-6-pve\t6.5.13-6\nproxmox-kernel-6.8.12-4-pve\t6.8.12-4\nproxmox-kernel-helper\t8.1.0\n');
  t.is(stub(node, 'dpkg-query', ['-W', '-f=${Version}', 'noversion'], env), '');
  t.is(stub(node, 'dpkg-query', ['-s', 'dkms'], env), 'Package: dkms\nStatus: install ok installed\nVersion: 3.0.11-1\n\n');
  t.regex(stub(node, 'dpkg-query', ['-l', 'zlib1g'], env), /^ii {2}zlib1g {35}1:1\.2\.13 +amd64 {8}zlib1g$/m);
  t.throws(() => stub(node, 'dpkg-query', ['-W', 'nothing-*'], env), { message: /no packages found matching nothing-\*/ });
  // the boot's index is the same, and is used
  rmSync(ans, { recursive: true });
  t.true(keepAnswer(run, 'dpkg.tsv', [status], () => dpkgIndex(readFileSync(status, 'utf8'))));
  t.is(stub(node, 'dpkg-query', ['-W', '-f=${Package}\\t${Version}\\t${db:Status-Status}\\n'], env), all);
  // the status file edited directly (newer than the index): read again
  writeFileSync(status, STATUS + '\nPackage: vendor-reset\nStatus: install ok installed\nVersion: 0.1.1\n');
  t.is(stub(node, 'dpkg-query', ['-W', 'vendor-reset'], env), 'vendor-reset\t0.1.1\n');
  t.regex(readFileSync(join(ans, 'dpkg.tsv'), 'utf8'), /^vendor-reset\t0\.1\.1\t/m);
});

test('keepAnswer waits out an input written in the same clock tick; the answer is strictly newer', (t) => {
  const { run } = fakeNode(t);
  const f = join(run, 'input');
  writeFileSync(f, 'x');
  t.true(keepAnswer(run, 'a', [f], () => 'y'));
  const a = join(run, 'answers/a');
  t.is(readFileSync(a, 'utf8'), 'y');
  t.true(statSync(a, { bigint: true }).mtimeNs > statSync(f, { bigint: true }).mtimeNs);
  // an input that changes while it is read: never kept
  let n = 0;
  t.false(keepAnswer(run, 'b', [f], () => (writeFileSync(f, String(n++)), 'z'), 5));
  t.false(existsSync(join(run, 'answers/b')));
  t.deepEqual(readdirSync(join(run, 'answers')), ['a']);
});
