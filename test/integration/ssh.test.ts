/**
 * The SSH transport against real OpenSSH servers on 127.0.3.N (one server per test).
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { UnreachableError } from '../../src/model/errors.ts';
import type { ConnSpec, Host } from '../../src/model/types.ts';
import { CommandError, cmd } from '../../src/transport/connection.ts';
import { openConnection } from '../../src/transport/index.ts';
import { CommandTimeoutError, connectSsh } from '../../src/transport/ssh.ts';
import { fingerprint } from '../../src/transport/knownhosts.ts';
import { knownHostsLine, makeKey, startAgent, startSshd, tempDir } from '../helpers/sshd.ts';

const addr = (n: number) => ({ address: `127.0.3.${n}`, port: 2200 + n });

/** A server on 127.0.3.n with a root key, its known_hosts file, and a spec to reach it. */
async function server(n: number, extra: Partial<Parameters<typeof startSshd>[0]> = {}) {
  const dir = tempDir(`ssh${n}`);
  const key = makeKey(dir, 'id_ed25519');
  const sshd = await startSshd({ ...addr(n), rootKeys: [key.pub], ...extra });
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, knownHostsLine(sshd), { mode: 0o600 });
  const spec = (over: Partial<ConnSpec> = {}): ConnSpec => ({
    host: sshd.host,
    port: sshd.port,
    user: 'root',
    identityFile: key.path,
    become: false,
    hostKeyChecking: 'strict',
    knownHostsFile: knownHosts,
    transport: 'ssh',
    // A handshake can take seconds when the machine is loaded (twenty servers here, a lab next
    // door): the tests that time out on purpose set their own limit.
    connectTimeoutMs: 60_000,
    ...over,
  });
  return { dir, key, sshd, knownHosts, spec };
}

const hostOf = (name: string, conn: ConnSpec): Host => ({ name, vars: {}, groups: ['all'], conn });
const noAgent = { env: { PATH: process.env.PATH } } as const;

test('key auth: runs commands, returns exit codes, throws CommandError on failure', async (t) => {
  const s = await server(1);
  t.teardown(() => s.sshd.stop());
  const c = await connectSsh('pve1', s.spec(), noAgent);
  const r = await c.exec('echo out; echo err >&2; exit 0');
  t.is(r.stdout, 'out\n');
  t.is(r.stderr, 'err\n');
  t.is(r.code, 0);
  const probe = await c.exec('exit 3', { nothrow: true });
  t.is(probe.code, 3);
  const e = await t.throwsAsync(c.exec('echo nope >&2; exit 7'), { instanceOf: CommandError });
  t.is(e!.result.code, 7);
  t.regex(e!.message, /^pve1: command exited 7/);
  await c.close();
});

test('agent auth: a key held only by our own ssh-agent', async (t) => {
  const s = await server(2);
  const agent = startAgent(s.dir);
  t.teardown(async () => {
    agent.stop();
    await s.sshd.stop();
  });
  agent.add(s.key.path);
  const logs: string[] = [];
  const c = await connectSsh('pve2', s.spec({ identityFile: undefined }), {
    env: { SSH_AUTH_SOCK: agent.sock },
    log: (m) => logs.push(m),
  });
  t.is((await c.exec('echo agent')).stdout, 'agent\n');
  t.true(logs.some((l) => l.includes('ssh-agent')), logs.join('\n'));
  await c.close();
});

test("sshd's list of host keys after login is not answered with a request to prove them", async (t) => {
  const s = await server(26, { logLevel: 'DEBUG3' });
  t.teardown(() => s.sshd.stop());
  const c = await connectSsh('pve26', s.spec(), noAgent);
  t.is((await c.exec('echo up')).stdout, 'up\n');
  await c.close();
  // The server's side of the session is logged by the time it has closed it.
  const closed = async () => {
    for (let i = 0; i < 100 && !/Disconnected from user root/.test(s.sshd.log()); i++) await new Promise((r) => setTimeout(r, 50));
    return s.sshd.log();
  };
  const log = await closed();
  t.regex(log, /notify_hostkeys: sent 1 hostkeys/, 'sshd sent its notice');
  t.notRegex(log, /hostkeys-prove-00@openssh\.com/, 'no proof asked for');
});

test('wrong key: UnreachableError names the host, with a hint', async (t) => {
  const s = await server(3);
  t.teardown(() => s.sshd.stop());
  const other = makeKey(s.dir, 'other');
  const e = await t.throwsAsync(openConnection(hostOf('pve-wrong', s.spec({ identityFile: other.path }))), {
    instanceOf: UnreachableError,
  });
  t.is(e!.host, 'pve-wrong');
  t.regex(e!.message, /pve-wrong: authentication failed for root@127\.0\.3\.3:2203/);
  t.truthy(e!.hint);
});

test('unknown host key: strict refuses and shows the fingerprint', async (t) => {
  const s = await server(4);
  t.teardown(() => s.sshd.stop());
  writeFileSync(s.knownHosts, '');
  const e = await t.throwsAsync(connectSsh('pve4', s.spec(), noAgent), { instanceOf: UnreachableError });
  const fp = fingerprint(Buffer.from(s.sshd.hostKey.split(' ')[1]!, 'base64'));
  t.true(e!.message.includes(fp), e!.message);
  t.regex(e!.message, /not in .*known_hosts.*strict/);
  t.regex(e!.hint!, /ssh-keyscan -p 2204 127\.0\.3\.4/);
  t.is(readFileSync(s.knownHosts, 'utf8'), '');
});

test('accept-new: records an unknown key (new file 0600), then refuses a changed one', async (t) => {
  const s = await server(5);
  t.teardown(() => s.sshd.stop());
  const file = join(s.dir, 'sub', 'known_hosts');
  const c = await connectSsh('pve5', s.spec({ hostKeyChecking: 'accept-new', knownHostsFile: file }), noAgent);
  await c.close();
  t.is(readFileSync(file, 'utf8'), knownHostsLine(s.sshd));
  t.is(statSync(file).mode & 0o777, 0o600);
  // Known now: strict accepts it.
  await (await connectSsh('pve5', s.spec({ knownHostsFile: file }), noAgent)).close();

  const oldLine = readFileSync(file, 'utf8');
  const oldFp = fingerprint(Buffer.from(s.sshd.hostKey.split(' ')[1]!, 'base64'));
  s.sshd.newHostKey();
  await s.sshd.restart();
  const newFp = fingerprint(Buffer.from(s.sshd.hostKey.split(' ')[1]!, 'base64'));
  const e = await t.throwsAsync(
    connectSsh('pve5', s.spec({ hostKeyChecking: 'accept-new', knownHostsFile: file }), noAgent),
    { instanceOf: UnreachableError },
  );
  t.regex(e!.message, /^pve5: the ssh-ed25519 host key of \[127\.0\.3\.5\]:2205 has CHANGED/);
  t.true(e!.message.includes(oldFp) && e!.message.includes(newFp), e!.message);
  t.true(e!.hint!.includes(`ssh-keygen -R '[127.0.3.5]:2205' -f ${file}`), e!.hint);
  t.is(readFileSync(file, 'utf8'), oldLine, 'the changed key was not recorded');
});

test('strict: a changed host key is refused before any command runs', async (t) => {
  const s = await server(6);
  t.teardown(() => s.sshd.stop());
  const before = readFileSync(s.knownHosts, 'utf8');
  s.sshd.newHostKey();
  await s.sshd.restart();
  const marker = join(s.dir, 'ran');
  const e = await t.throwsAsync(
    (async () => {
      const c = await connectSsh('pve6', s.spec(), noAgent);
      await c.exec(cmd('touch', marker));
    })(),
    { instanceOf: UnreachableError },
  );
  t.regex(e!.message, /CHANGED/);
  t.false(existsSync(marker));
  t.is(readFileSync(s.knownHosts, 'utf8'), before);
});

test('off: connects to an unknown or changed key, with a warning', async (t) => {
  const s = await server(7);
  t.teardown(() => s.sshd.stop());
  writeFileSync(s.knownHosts, '[127.0.3.7]:2207 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n');
  const logs: string[] = [];
  const c = await connectSsh('pve7', s.spec({ hostKeyChecking: 'off' }), { ...noAgent, log: (m) => logs.push(m) });
  t.is((await c.exec('echo ok')).stdout, 'ok\n');
  await c.close();
  t.true(logs.some((l) => /^WARNING: pve7: host key checking is off .*changed ssh-ed25519 key/.test(l)), logs.join('\n'));
});

test('hashed known_hosts entry (ssh-keygen -H) is recognised', async (t) => {
  const s = await server(8);
  t.teardown(() => s.sshd.stop());
  execFileSync('ssh-keygen', ['-q', '-H', '-f', s.knownHosts], { stdio: 'ignore' });
  t.regex(readFileSync(s.knownHosts, 'utf8'), /^\|1\|/);
  const c = await connectSsh('pve8', s.spec(), noAgent);
  t.is((await c.exec('echo hashed')).stdout, 'hashed\n');
  await c.close();
});

test('non-root user with passwordless sudo: become runs commands and writes as root', async (t) => {
  const dir = tempDir('ssh9');
  const key = makeKey(dir, 'id');
  const sshd = await startSshd({
    ...addr(9),
    users: [{ name: 'passthru-test', uid: 42409, sudo: 'nopasswd', authorizedKeys: [key.pub] }],
  });
  t.teardown(() => sshd.stop());
  writeFileSync(join(dir, 'kh'), knownHostsLine(sshd));
  const spec: ConnSpec = {
    host: sshd.host, port: sshd.port, user: 'passthru-test', identityFile: key.path, become: true,
    hostKeyChecking: 'strict', knownHostsFile: join(dir, 'kh'), transport: 'ssh',
  };
  const c = await connectSsh('pve9', spec, noAgent);
  t.is((await c.exec('id -u; id -un')).stdout, '0\nroot\n');
  const target = join(dir, 'owned-by-root');
  await c.write(target, 'as root\n', { mode: 0o640 });
  t.is(readFileSync(target, 'utf8'), 'as root\n');
  t.is(statSync(target).uid, 0);
  t.is(statSync(target).mode & 0o777, 0o640);
  const noBecome = await connectSsh('pve9', { ...spec, become: false }, noAgent);
  t.is((await noBecome.exec('id -un')).stdout, 'passthru-test\n');
  await noBecome.close();
  await c.close();
});

test('non-root user without sudo right: clear per-host error', async (t) => {
  const dir = tempDir('ssh10');
  const key = makeKey(dir, 'id');
  const sshd = await startSshd({
    ...addr(10),
    users: [{ name: 'passthru-nosudo', uid: 42410, sudo: 'none', authorizedKeys: [key.pub] }],
  });
  t.teardown(() => sshd.stop());
  writeFileSync(join(dir, 'kh'), knownHostsLine(sshd));
  const spec: ConnSpec = {
    host: sshd.host, port: sshd.port, user: 'passthru-nosudo', identityFile: key.path, become: true,
    hostKeyChecking: 'strict', knownHostsFile: join(dir, 'kh'), transport: 'ssh',
  };
  const e = await t.throwsAsync(openConnection(hostOf('pve10', spec)), { instanceOf: UnreachableError });
  t.is(e!.host, 'pve10');
  t.regex(e!.message, /^pve10: user passthru-nosudo cannot run commands as root through sudo/);
  t.regex(e!.hint!, /sudo/);
});

test('sudo with a password from an environment variable; the password never reaches the command', async (t) => {
  const dir = tempDir('ssh11');
  const key = makeKey(dir, 'id');
  const secret = 'sudo-S3cret-pw';
  const sshd = await startSshd({
    ...addr(11),
    users: [{ name: 'passthru-pw', uid: 42411, sudo: 'password', password: secret, authorizedKeys: [key.pub] }],
  });
  t.teardown(() => sshd.stop());
  writeFileSync(join(dir, 'kh'), knownHostsLine(sshd));
  const spec: ConnSpec = {
    host: sshd.host, port: sshd.port, user: 'passthru-pw', identityFile: key.path, become: true,
    becomePasswordEnv: 'PT_SUDO_PW', hostKeyChecking: 'strict', knownHostsFile: join(dir, 'kh'), transport: 'ssh',
  };
  const logs: string[] = [];
  const c = await connectSsh('pve11', spec, { env: { PT_SUDO_PW: secret }, log: (m) => logs.push(m) });
  t.is((await c.exec('id -u')).stdout, '0\n');
  t.is((await c.exec('cat', { stdin: 'data only' })).stdout, 'data only');
  t.is((await c.exec('cat')).stdout, '');
  await c.close();
  const bad = await t.throwsAsync(connectSsh('pve11', spec, { env: { PT_SUDO_PW: 'wrong-pw-123' }, log: (m) => logs.push(m) }), {
    instanceOf: UnreachableError,
  });
  t.regex(bad!.message, /pve11: sudo refused the password from environment variable PT_SUDO_PW/);
  for (const text of [...logs, bad!.message, bad!.hint ?? '']) {
    t.false(text.includes(secret) || text.includes('wrong-pw-123'), text);
  }
});

test('output over 1 MiB and stdin of several MiB', async (t) => {
  const s = await server(12);
  t.teardown(() => s.sshd.stop());
  const c = await connectSsh('pve12', s.spec(), noAgent);
  const big = await c.exec("head -c 3000000 /dev/zero | tr '\\0' a; echo; head -c 1500000 /dev/zero | tr '\\0' b >&2");
  t.is(big.stdout.length, 3_000_001);
  t.is(big.stdout.replace(/a/g, ''), '\n');
  t.is(big.stderr.length, 1_500_000);
  const input = Buffer.alloc(6 * 1024 * 1024);
  for (let i = 0; i < input.length; i++) input[i] = (i * 7919) & 0xff;
  const r = await c.exec('wc -c', { stdin: input });
  t.is(r.stdout.trim(), String(input.length));
  const r2 = await c.exec('sha256sum', { stdin: input });
  t.is(r2.stdout.split(' ')[0], createHash('sha256').update(input).digest('hex'));
  await c.close();
});

test('40 concurrent commands on one connection to a server with MaxSessions 5 all succeed', async (t) => {
  const s = await server(13, { maxSessions: 5 });
  t.teardown(() => s.sshd.stop());
  const c = await connectSsh('pve13', s.spec(), noAgent);
  const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => c.exec(`sleep 0.0$((${i} % 5)); echo ${i}`)));
  t.deepEqual(
    rs.map((r) => r.stdout),
    Array.from({ length: 40 }, (_, i) => `${i}\n`),
  );
  await c.close();
});

test('sshd killed mid-command: that host is unreachable, another host is unaffected', async (t) => {
  const a = await server(14);
  const b = await server(15);
  t.teardown(async () => {
    await a.sshd.stop();
    await b.sshd.stop();
  });
  const ca = await connectSsh('pve14', a.spec(), { ...noAgent, keepaliveIntervalMs: 1000 });
  const cb = await connectSsh('pve15', b.spec(), noAgent);
  const running = ca.exec('sleep 60');
  const other = cb.exec('sleep 1; echo b');
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  await a.sshd.stop();
  const e = await t.throwsAsync(running, { instanceOf: UnreachableError });
  t.is(e!.host, 'pve14');
  t.regex(e!.message, /pve14: connection to root@127\.0\.3\.14:2214 lost/);
  t.true(Date.now() - t0 < 10_000);
  await t.throwsAsync(ca.exec('true'), { instanceOf: UnreachableError });
  t.is((await other).stdout, 'b\n');
  t.is((await cb.exec('echo still')).stdout, 'still\n');
  await ca.close();
  await cb.close();
});

test('write interrupted midway leaves the target unchanged; the next write removes the dead writer\'s temp file', async (t) => {
  const s = await server(16);
  t.teardown(() => s.sshd.stop());
  const target = join(s.dir, 'target.conf');
  writeFileSync(target, 'old content\n', { mode: 0o644 });
  const c = await connectSsh('pve16', s.spec(), noAgent);
  const huge = Buffer.alloc(256 * 1024 * 1024, 0x41);
  const w = c.write(target, huge);
  // kill the server while the content is on its way
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 20));
    if (readdirSync(s.dir).some((f) => f.startsWith('.passthru-tmp.') && statSync(join(s.dir, f)).size > 0)) break;
  }
  await s.sshd.stop();
  await t.throwsAsync(w);
  t.is(readFileSync(target, 'utf8'), 'old content\n');
  await s.sshd.restart();
  await c.reconnect({ deadlineMs: 10_000, initialDelayMs: 100 });
  await c.write(target, 'new content\n');
  t.is(readFileSync(target, 'utf8'), 'new content\n');
  t.is(statSync(target).mode & 0o777, 0o644);
  t.deepEqual(
    readdirSync(s.dir).filter((f) => f.includes('passthru-')),
    [],
  );
  await c.close();
});

test('write: mode kept, mode/owner set, backup made, symlink refused', async (t) => {
  const s = await server(24);
  t.teardown(() => s.sshd.stop());
  const c = await connectSsh('pve24', s.spec(), noAgent);
  const target = join(s.dir, 'a.conf');
  writeFileSync(target, 'v1\n', { mode: 0o600 });
  const r = await c.write(target, 'v2\n', { backup: true });
  t.regex(r.backupPath!, /a\.conf\.passthru-\d{8}T\d{6}\.\d{3}Z-0\.bak$/);
  t.is(readFileSync(r.backupPath!, 'utf8'), 'v1\n');
  t.is(statSync(target).mode & 0o777, 0o600);
  await c.write(target, 'v3\n', { mode: 0o644, owner: 'nobody', group: 'nogroup' });
  t.is(statSync(target).mode & 0o777, 0o644);
  t.is(statSync(target).uid, Number(execFileSync('id', ['-u', 'nobody']).toString()));
  const fresh = join(s.dir, 'fresh.conf');
  t.deepEqual(await c.write(fresh, 'x', { backup: true }), {});
  t.is(statSync(fresh).mode & 0o777, 0o644);
  execFileSync('ln', ['-s', 'a.conf', join(s.dir, 'link.conf')]);
  const e = await t.throwsAsync(c.write(join(s.dir, 'link.conf'), 'via link\n'), { instanceOf: CommandError });
  t.regex(e!.message, /link\.conf: it is a symbolic link \(to a\.conf\).*point the task at the real file/);
  t.is(readFileSync(target, 'utf8'), 'v3\n');
  t.true(lstatSync(join(s.dir, 'link.conf')).isSymbolicLink());
  await t.throwsAsync(c.write(join(s.dir, 'missing-dir', 'x'), 'x'), { instanceOf: CommandError, message: /does not exist/ });
  await c.close();
});

test('injection attempts reach the host as data, also through sudo', async (t) => {
  const dir = tempDir('ssh17');
  const key = makeKey(dir, 'id');
  const sshd = await startSshd({
    ...addr(17),
    rootKeys: [key.pub],
    users: [{ name: 'passthru-test', uid: 42417, sudo: 'nopasswd', authorizedKeys: [key.pub] }],
  });
  t.teardown(() => sshd.stop());
  writeFileSync(join(dir, 'kh'), knownHostsLine(sshd));
  const marker = join(dir, 'pwned');
  const base: ConnSpec = {
    host: sshd.host, port: sshd.port, user: 'root', identityFile: key.path, become: false,
    hostKeyChecking: 'strict', knownHostsFile: join(dir, 'kh'), transport: 'ssh',
  };
  const values = [
    `'; touch ${marker}; '`,
    `$(touch ${marker})`,
    `\`touch ${marker}\``,
    `x\ntouch ${marker}\n`,
    `"; touch ${marker}; "`,
    `a b  c * ? [x] ~ | & > ${marker}`,
  ];
  for (const spec of [base, { ...base, user: 'passthru-test', become: true }]) {
    const c = await connectSsh('pve17', spec, noAgent);
    for (const v of values) {
      t.is((await c.exec(cmd('printf', '%s', v))).stdout, v);
      // a file name that is itself an injection attempt (relative: a name cannot hold a slash)
      const path = join(dir, `f-${createHash('md5').update(v).digest('hex').slice(0, 6)} $(touch pwned-by-name) \`touch pwned-by-name\` ';x'`);
      await c.write(path, v);
      t.is(readFileSync(path, 'utf8'), v);
    }
    await c.close();
  }
  t.false(existsSync(marker));
  t.false(existsSync(join(sshd.dir, 'root-home', 'pwned-by-name')));
  t.false(existsSync(join(sshd.dir, 'home', 'passthru-test', 'pwned-by-name')));
  t.is(readdirSync(dir).filter((f) => f.startsWith('f-')).length, values.length);
});

test('reconnect after an sshd restart with the same host key, waiting while it is down', async (t) => {
  const s = await server(18);
  t.teardown(() => s.sshd.stop());
  const c = await connectSsh('pve18', s.spec(), noAgent);
  t.is((await c.exec('echo 1')).stdout, '1\n');
  await s.sshd.stop();
  const back = new Promise((r) => setTimeout(r, 1500)).then(() => s.sshd.restart());
  const t0 = Date.now();
  await c.reconnect({ deadlineMs: 20_000, initialDelayMs: 200 });
  await back;
  t.true(Date.now() - t0 >= 1000);
  t.is((await c.exec('echo 2')).stdout, '2\n');
  await c.close();
});

test('reconnect is refused when the host key changed, even with checking off', async (t) => {
  const s = await server(19);
  t.teardown(() => s.sshd.stop());
  const c = await connectSsh('pve19', s.spec({ hostKeyChecking: 'off' }), { ...noAgent, log: () => {} });
  s.sshd.newHostKey();
  await s.sshd.restart();
  const e = await t.throwsAsync(c.reconnect({ deadlineMs: 10_000, initialDelayMs: 100 }), { instanceOf: UnreachableError });
  t.regex(e!.message, /pve19: the ssh-ed25519 host key of root@127\.0\.3\.19:2219 changed since this run connected/);
  const strict = await connectSsh('pve19b', s.spec(), noAgent).catch((x) => x);
  t.true(strict instanceof UnreachableError);
  t.regex((strict as Error).message, /CHANGED/);
});

test('no secret appears in errors or logs: password, key passphrase', async (t) => {
  const s = await server(20);
  t.teardown(() => s.sshd.stop());
  const pass = 'Key-Passphrase-9f8e';
  const enc = makeKey(s.dir, 'enc', pass);
  writeFileSync(join(s.sshd.dir, 'authorized_keys', 'root'), `${s.key.pub}\n${enc.pub}\n`);
  const logs: string[] = [];
  const log = (m: string) => logs.push(m);
  // right passphrase from the environment
  const c = await connectSsh('pve20', s.spec({ identityFile: enc.path, passphraseEnv: 'PT_PASS' }), { env: { PT_PASS: pass }, log });
  t.is((await c.exec('echo enc')).stdout, 'enc\n');
  await c.close();
  // right passphrase from the prompt
  const asked: string[] = [];
  const c2 = await connectSsh('pve20', s.spec({ identityFile: enc.path }), {
    env: {},
    log,
    prompt: async (q) => {
      asked.push(q);
      return pass;
    },
  });
  await c2.close();
  t.deepEqual(asked, [`Passphrase for ${enc.path}: `]);
  // wrong passphrase
  const e1 = await t.throwsAsync(
    connectSsh('pve20', s.spec({ identityFile: enc.path, passphraseEnv: 'PT_PASS' }), { env: { PT_PASS: 'wrong-pass-xyz' }, log }),
    { instanceOf: UnreachableError },
  );
  t.regex(e1!.message, /cannot decrypt identity file .* environment variable PT_PASS/);
  // a password (root has none usable here): refused, never shown
  const pw = 'Plain-Pw-5d4c';
  const e2 = await t.throwsAsync(
    connectSsh('pve20', s.spec({ identityFile: undefined, password: pw }), { env: {}, log }),
    { instanceOf: UnreachableError },
  );
  t.regex(e2!.message, /authentication failed .*tried: password/);
  const all = [...logs, e1!.message, e1!.hint ?? '', e2!.message, e2!.hint ?? '', e1!.stack ?? '', e2!.stack ?? ''];
  t.true(logs.length > 5);
  for (const text of all) {
    for (const secret of [pass, 'wrong-pass-xyz', pw]) t.false(text.includes(secret), text);
  }
});

test('a script on stdin (`sh -s`) is started by timeout(1) itself; any other command through sh -c, as before', async (t) => {
  const s = await server(27);
  t.teardown(() => s.sshd.stop());
  const c = await connectSsh('pve27', s.spec(), noAgent);
  // The parent of the shell that runs it (read from /proc/self: the server's pids are its own
  // namespace's, its /proc the machine's).
  const parent = 'read -r _ _ _ p _ < /proc/self/stat; cat /proc/$p/comm';
  const parentOfScript = await c.exec('sh -s', { stdin: `${parent}\n`, timeoutMs: 30_000 });
  t.is(parentOfScript.stdout, 'timeout\n', 'no shell between timeout and the script');
  const other = await c.exec(`echo $((6 * 7)) && ${parent}`, { timeoutMs: 30_000 });
  t.is(other.stdout, '42\ntimeout\n', 'a command line still runs in sh -c, under timeout');
  const killed = await c.exec('sh -s', { stdin: 'sleep 30\n', timeoutMs: 1000, nothrow: true }).catch((e: Error) => e);
  t.truthy(killed, 'an overrunning script is still ended');
  await c.close();
});

test('per-command timeout closes the channel; the connection stays usable', async (t) => {
  const s = await server(21);
  t.teardown(() => s.sshd.stop());
  const c = await connectSsh('pve21', s.spec(), noAgent);
  const t0 = Date.now();
  const e = await t.throwsAsync(c.exec('sleep 20', { timeoutMs: 300 }), { instanceOf: CommandTimeoutError });
  t.true(Date.now() - t0 < 5000);
  t.regex(e!.message, /pve21: command timed out after 300 ms: sleep 20/);
  t.is((await c.exec('echo alive')).stdout, 'alive\n');
  await c.close();
});

test('jump host: the target is reached through the jump host, whose key is pinned for reconnects', async (t) => {
  const dir = tempDir('ssh22');
  const key = makeKey(dir, 'id');
  const jump = await startSshd({ ...addr(22), rootKeys: [key.pub] });
  const target = await startSshd({ ...addr(23), rootKeys: [key.pub], extraConfig: [] });
  t.teardown(async () => {
    await jump.stop();
    await target.stop();
  });
  const kh = join(dir, 'kh');
  writeFileSync(kh, knownHostsLine(jump) + knownHostsLine(target));
  const c = await connectSsh(
    'pve23',
    {
      host: target.host, port: target.port, user: 'root', identityFile: key.path, become: false,
      jump: `root@${jump.host}:${jump.port}`, hostKeyChecking: 'strict', knownHostsFile: kh, transport: 'ssh',
    },
    noAgent,
  );
  t.is((await c.exec('echo via-jump')).stdout, 'via-jump\n');
  await c.close();
  t.regex(jump.log(), /direct-tcpip|Accepted publickey for root/);
  // The jump host's key is pinned like the target's: even with checking off, a reconnect
  // through a jump host that now shows another key is refused.
  const c2 = await connectSsh(
    'pve23',
    {
      host: target.host, port: target.port, user: 'root', identityFile: key.path, become: false,
      jump: `root@${jump.host}:${jump.port}`, hostKeyChecking: 'off', knownHostsFile: kh, transport: 'ssh',
    },
    { ...noAgent, log: () => {} },
  );
  jump.newHostKey();
  await jump.restart();
  const e = await t.throwsAsync(c2.reconnect({ deadlineMs: 10_000, initialDelayMs: 100 }), { instanceOf: UnreachableError });
  t.regex(e!.message, /pve23: the ssh-ed25519 host key of jump host root@127\.0\.3\.22:2222 changed since this run connected/);
  await c2.close();
});

test('connection refused and connect timeout name the host', async (t) => {
  const dir = tempDir('ssh25');
  const key = makeKey(dir, 'id');
  const e = await t.throwsAsync(
    openConnection(
      hostOf('pve25', {
        host: '127.0.3.25', port: 2225, user: 'root', identityFile: key.path, become: false,
        hostKeyChecking: 'strict', knownHostsFile: join(dir, 'kh'), transport: 'ssh', connectTimeoutMs: 2000,
      }),
    ),
    { instanceOf: UnreachableError },
  );
  t.regex(e!.message, /^pve25: cannot connect to root@127\.0\.3\.25:2225: .*ECONNREFUSED/);
});

