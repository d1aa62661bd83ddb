import test from 'ava';
import type { ConnSpec } from '../../src/model/types.ts';
import { signalNumber } from '../../src/transport/connection.ts';
import { becomeLine, becomePassword, passwordRefused, sudoUnavailable } from '../../src/transport/ssh-become.ts';
import { parseJump, sshWhere } from '../../src/transport/ssh-handshake.ts';
import { AuthSetupError, resolveAuth } from '../../src/transport/auth.ts';
import { makeKey, tempDir } from '../helpers/sshd.ts';

const spec: ConnSpec = { host: '10.0.0.5', port: 2222, user: 'ops', become: true, hostKeyChecking: 'strict', transport: 'ssh' };

test('signalNumber: names with or without SIG, 0 for none or unknown', (t) => {
  t.is(signalNumber('TERM'), 15);
  t.is(signalNumber('SIGKILL'), 9);
  t.is(signalNumber('ALRM'), 14);
  t.is(signalNumber(null), 0);
  t.is(signalNumber('NOPE'), 0);
});

test('becomeLine: as is, sudo -n, or sudo -S with the password ahead of the stdin', (t) => {
  t.deepEqual(becomeLine('none', 'id', 'in', () => t.fail() as never), { line: 'id', stdin: 'in' });
  t.deepEqual(becomeLine('nopasswd', 'id -u', undefined, () => t.fail() as never), { line: "sudo -n sh -c 'id -u'", stdin: undefined });
  const w = becomeLine('password', 'cat', 'data', () => 's3cret');
  t.is(w.line, "sudo -S -k -p '' sh -c cat");
  t.is(String(w.stdin), 's3cret\ndata');
});

test('becomePassword: the environment variable first, then ansible_become_password', (t) => {
  t.is(becomePassword(spec, {}), undefined);
  t.is(becomePassword({ ...spec, becomePassword: 'inv' }, {}), 'inv');
  t.is(becomePassword({ ...spec, becomePassword: 'inv', becomePasswordEnv: 'PW' }, { PW: 'env' }), 'env');
  t.is(becomePassword({ ...spec, becomePassword: 'inv', becomePasswordEnv: 'PW' }, {}), 'inv');
});

test('sudo errors name the user and never the password', (t) => {
  const e = passwordRefused('pve1', { ...spec, becomePasswordEnv: 'PW' }, { PW: 'hunter2' });
  t.regex(e.message, /from environment variable PW for user ops/);
  t.notRegex(e.message, /hunter2/);
  const u = sudoUnavailable('pve1', spec, { command: 'sudo -n true', code: 1, stdout: '', stderr: 'sudo: a password is required\n', durationMs: 1 });
  t.regex(u.message, /cannot run commands as root through sudo: sudo: a password is required/);
  t.regex(u.hint ?? '', /NOPASSWD/);
});

test('parseJump and sshWhere', (t) => {
  t.deepEqual(parseJump('admin@bastion:2200', 'root'), { user: 'admin', host: 'bastion', port: 2200 });
  t.deepEqual(parseJump('[fd00::1]:22', 'root'), { user: 'root', host: 'fd00::1', port: 22 });
  t.throws(() => parseJump('host:0', 'root'));
  t.is(sshWhere(spec), 'ops@10.0.0.5:2222');
});

test('resolveAuth: a key is parsed once for all the connections of a run (the same parsed key each time); a wrong passphrase still fails, the right one still works', async (t) => {
  const dir = tempDir('auth-keys');
  const plain = makeKey(dir, 'plain');
  const locked = makeKey(dir, 'locked', 'right words');
  const spec = (over: Partial<ConnSpec>): ConnSpec => ({ host: 'h', port: 22, user: 'root', become: false, hostKeyChecking: 'strict', transport: 'ssh', ...over });
  const opts = { env: { PATH: process.env.PATH }, home: dir };
  const [a] = await resolveAuth(spec({ identityFile: plain.path }), opts);
  const [b] = await resolveAuth(spec({ identityFile: plain.path }), opts);
  t.is(a!.type, 'publickey');
  t.is((a as { key: unknown }).key, (b as { key: unknown }).key, 'one parse, shared');
  t.true(((a as { key: { isPrivateKey(): boolean } }).key).isPrivateKey());
  const withPass = (p: string) => resolveAuth(spec({ identityFile: locked.path, passphraseEnv: 'KEY_PASS' }), { ...opts, env: { ...opts.env, KEY_PASS: p } });
  await t.throwsAsync(withPass('wrong words'), { instanceOf: AuthSetupError, message: /cannot decrypt/ });
  const [c] = await withPass('right words');
  t.true(((c as { key: { isPrivateKey(): boolean } }).key).isPrivateKey());
  await t.throwsAsync(withPass('wrong words'), { instanceOf: AuthSetupError }, 'a wrong passphrase after a right one is still wrong');
});
