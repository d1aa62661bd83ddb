import test from 'ava';
import { assertModule } from '../../src/modules/assert.ts';
import { parseMode } from '../../src/modules/file.ts';
import { editLines, splitLines, joinLines } from '../../src/modules/line.ts';
import { setKey, fileValue } from '../../src/modules/sysctl.ts';
import { parseDpkgQuery } from '../../src/facts/parsers.ts';
import { diffStat, unifiedDiff } from '../../src/modules/diff.ts';
import { colorizeDiff } from '../../src/report/format.ts';
import { applyActions } from '../../src/modules/apply.ts';
import { modules } from '../../src/modules/index.ts';
import { CommandError, type Connection, type ExecOptions, type WriteOptions } from '../../src/transport/connection.ts';
import { planWith } from './modules-fake.ts';
import { describeRun } from '../../src/modules/command.ts';
import { readFileSync } from 'node:fs';

// ------------------------------------------------------------------ assert

const vars = { facts: { cpuVendor: 'intel', iommu: { active: true } }, hugepages: 4 };

test('assert: all true → noop with success_msg', async (t) => {
  const p = await planWith(assertModule, { that: ["facts.cpuVendor == 'intel'", 'facts.iommu.active', 'hugepages > 2'], success_msg: 'IOMMU on' }, {}, vars);
  t.deepEqual(p.kind === 'noop' ? p.reason : p, 'IOMMU on');
});

test('assert: default success message counts expressions', async (t) => {
  const p = await planWith(assertModule, { that: 'hugepages == 4' }, {}, vars);
  t.is(p.kind === 'noop' ? p.reason : '', 'all 1 assertion passed');
});

test('assert: failure lists the false expressions, with fail_msg and hint', async (t) => {
  const p = await planWith(
    assertModule,
    { that: ["facts.cpuVendor == 'amd'", 'facts.iommu.active', 'hugepages > 10'], fail_msg: 'not ready', hint: 'reboot first' },
    {},
    vars,
  );
  if (p.kind !== 'fail') return t.fail(JSON.stringify(p));
  t.is(p.msg, "not ready\n  false: facts.cpuVendor == 'amd'\n  false: hugepages > 10");
  t.is(p.hint, 'reboot first');
});

test('assert: an expression that errors (undefined variable) fails and says so', async (t) => {
  const p = await planWith(assertModule, { that: 'nosuchvar == 1' }, {}, vars);
  if (p.kind !== 'fail') return t.fail(JSON.stringify(p));
  t.regex(p.msg, /^assertion failed\n {2}error: nosuchvar == 1: /);
});

test('assert is read-only and every module has doc, schema docs and a plan', (t) => {
  t.true(assertModule.readOnly);
  for (const [name, m] of modules) {
    t.is(m.name, name);
    t.true(m.doc.length > 20, name);
    for (const [k, spec] of Object.entries(m.spec.options)) t.true(spec.description.length > 3, `${name}.${k}`);
  }
});

// ------------------------------------------------------------------ pure helpers

test('parseMode: strings and YAML ints are octal; bad ones throw', (t) => {
  t.is(parseMode('0644'), 0o644);
  t.is(parseMode('600'), 0o600);
  t.is(parseMode(644), 0o644);
  t.is(parseMode('0o1777'), 0o1777);
  t.is(parseMode(undefined), undefined);
  t.throws(() => parseMode(999));
  t.throws(() => parseMode('rw-r--r--'));
});

test('splitLines/joinLines round-trip any text', (t) => {
  for (const s of ['', 'a', 'a\n', 'a\n\n', '\n', 'a\r\nb\r\n', 'x\ny']) t.is(joinLines(splitLines(s)), s);
});

test('editLines: regexp with firstmatch replaces the first match', (t) => {
  const r = editLines('k=1\nk=2\n', { state: 'present', line: 'k=9', regexp: /^k=/, firstmatch: true });
  t.deepEqual(r, { changed: true, text: 'k=9\nk=2\n', msg: 'replace line 1' });
});

test('editLines: regexp without match but exact line present is a no-op (lineinfile)', (t) => {
  const r = editLines('a\nwanted\n', { state: 'present', line: 'wanted', regexp: /^nomatch/ });
  t.false(r.changed);
});

test('editLines: insert into an empty file adds a newline', (t) => {
  const r = editLines('', { state: 'present', line: 'x' });
  t.deepEqual(r, { changed: true, text: 'x\n', msg: 'insert line at the end' });
});

test('sysctl setKey keeps comments, keeps an equal value however spelled', (t) => {
  t.is(setKey('a.b=1\n', 'a.b', '1'), 'a.b=1\n');
  t.is(setKey('# c\na.b=1\nx = 2', 'a.b', '3'), '# c\na.b = 3\nx = 2');
  t.is(setKey('', 'a.b', '3'), 'a.b = 3\n');
  t.is(setKey('a.b = 1\nx = 2\n', 'a.b', undefined), 'x = 2\n');
  t.is(fileValue('a.b = 1\n; a.b = 5\na/b=2\n', 'a.b'), '2');
});

test('parseDpkgQuery (read by apt): only status installed counts', (t) => {
  const m = parseDpkgQuery('a\t1\tinstalled\nb\t2\tconfig-files\nc\t3\thalf-installed\n');
  t.deepEqual(Object.entries(m), [['a', '1']]);
});

// ------------------------------------------------------------------ diff display

test('unifiedDiff has a/ b/ labels and hunks; diffStat counts', (t) => {
  const d = { path: '/etc/x', before: 'a\nb\nc\n', after: 'a\nB\nc\nd\n' };
  const u = unifiedDiff(d);
  t.true(u.startsWith('--- a/etc/x\n+++ b/etc/x\n@@ '), u);
  t.true(u.includes('\n-b\n+B\n'));
  t.deepEqual(diffStat(d), { added: 2, removed: 1, text: '+2 -1' });
  t.is(unifiedDiff({ path: '/x', before: 'same', after: 'same' }), '');
  const c = colorizeDiff({ color: true }, u);
  t.true(c.includes('\x1b[31m-b\x1b[0m'));
  t.true(c.includes('\x1b[32m+B\x1b[0m'));
  t.is(colorizeDiff({ color: false }, u), u, 'no colour: the diff as it is');
});

// ------------------------------------------------------------------ applyActions

class RecordingConnection implements Connection {
  readonly host = 'rec';
  log: string[] = [];
  failOn?: string;
  async exec(command: string, opts: ExecOptions = {}) {
    this.log.push(`exec ${command}${opts.stdin !== undefined ? ` <${opts.stdin}` : ''}${opts.timeoutMs ? ` t=${opts.timeoutMs}` : ''}`);
    const r = { command, code: command === this.failOn ? 1 : 0, stdout: '', stderr: 'boom', durationMs: 1 };
    if (r.code && !opts.nothrow) throw new CommandError(this.host, r);
    return r;
  }
  async write(path: string, content: string | Buffer, opts: WriteOptions = {}) {
    this.log.push(`write ${path} ${JSON.stringify(String(content))} ${JSON.stringify(opts)}`);
    return opts.backup ? { backupPath: `${path}.bak` } : {};
  }
  async reconnect() {}
  async close() {}
}

test('applyActions does exactly the actions, quoted, and collects reboots and backups', async (t) => {
  const c = new RecordingConnection();
  const r = await applyActions(
    c,
    [
      { kind: 'write', path: '/etc/a b', content: 'x', mode: 0o600, backup: true },
      { kind: 'delete', path: "/etc/it's" },
      { kind: 'chmod', path: '/etc/c', mode: 0o4755, owner: 'root', group: 'adm' },
      { kind: 'exec', command: 'echo hi', stdin: 'in', timeoutMs: 5 },
      { kind: 'request-reboot', reason: 'cmdline' },
    ],
    { timeoutMs: 1000 },
  );
  t.deepEqual(c.log, [
    'write /etc/a b "x" {"mode":384,"backup":true}',
    "exec rm -f -- '/etc/it'\\''s' t=1000",
    'exec chown root:adm -- /etc/c t=1000',
    'exec chmod 4755 -- /etc/c t=1000',
    'exec echo hi <in t=5',
  ]);
  t.deepEqual(r, { rebootReasons: ['cmdline'], backups: ['/etc/a b.bak'], execs: [{ command: 'echo hi', stdout: '', stderr: 'boom' }] });
});

test('applyActions stops at the first failing command with a CommandError', async (t) => {
  const c = new RecordingConnection();
  c.failOn = 'false';
  await t.throwsAsync(
    applyActions(c, [
      { kind: 'exec', command: 'false' },
      { kind: 'exec', command: 'never' },
    ]),
    { instanceOf: CommandError },
  );
  t.deepEqual(c.log, ['exec false']);
});

// ------------------------------------------------------------------ what a command did, in words

test('describeRun: the bootloader and initramfs tools say what they did, from their real output', (t) => {
  const grub = readFileSync(new URL('../fixtures/lab/update-grub.txt', import.meta.url), 'utf8').replace(/^#.*\n/, '');
  t.is(describeRun([{ command: 'update-grub', stdout: '', stderr: grub }]), 'update-grub: grub.cfg regenerated (2 kernels)');
  const pbt = readFileSync(new URL('../fixtures/lab/proxmox-boot-tool-refresh.txt', import.meta.url), 'utf8').replace(/^#.*\n/, '');
  t.is(describeRun([{ command: 'proxmox-boot-tool refresh', stdout: pbt, stderr: '' }]), 'proxmox-boot-tool refresh: 3 kernels copied to 1 ESP');
  const initramfs = 'update-initramfs: Generating /boot/initrd.img-6.8.12-4-pve\nupdate-initramfs: Generating /boot/initrd.img-6.5.13-6-pve\n';
  t.is(describeRun([{ command: 'update-initramfs -u -k all', stdout: initramfs, stderr: '' }]), 'initramfs rebuilt for 2 kernels (6.8.12-4-pve, 6.5.13-6-pve)');
  t.is(describeRun([{ command: 'make-thing', stdout: 'x', stderr: '' }]), undefined, 'other commands keep their plan message');
});
