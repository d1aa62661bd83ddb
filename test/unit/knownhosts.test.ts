import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkHostKey,
  entryMatches,
  fingerprint,
  hostKeyName,
  keyTypeOf,
  parseKnownHosts,
  readKnownHosts,
  recordHostKey,
} from '../../src/transport/knownhosts.ts';
import { Limiter } from '../../src/transport/limiter.ts';
import { ensureSshDeps } from '../helpers/sshd.ts';

ensureSshDeps(); // ssh-keygen

const dir = mkdtempSync(join(tmpdir(), 'passthru-kh-'));
function key(name: string): { type: string; b64: string; blob: Buffer; path: string } {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path]);
  const [type, b64] = readFileSync(`${path}.pub`, 'utf8').trim().split(' ') as [string, string];
  return { type, b64, blob: Buffer.from(b64, 'base64'), path };
}
const A = key('a');
const B = key('b');

test('fingerprint matches ssh-keygen -l', (t) => {
  const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${A.path}.pub`]).toString();
  t.is(out.split(' ')[1], fingerprint(A.blob));
  t.is(keyTypeOf(A.blob), 'ssh-ed25519');
});

test('host names: port 22 plain, others bracketed', (t) => {
  t.is(hostKeyName('pve1', 22), 'pve1');
  t.is(hostKeyName('10.0.0.1', 2222), '[10.0.0.1]:2222');
});

test('parse: comments, comma lists, [host]:port, wildcards, negation, markers', (t) => {
  const text = [
    '# a comment',
    '',
    `pve1,10.0.0.1 ${A.type} ${A.b64}`,
    `[pve2]:2222 ${A.type} ${A.b64} comment here`,
    `*.lab,!bad.lab ${B.type} ${B.b64}`,
    `@revoked pve3 ${B.type} ${B.b64}`,
    `@cert-authority *.lab ${A.type} ${A.b64}`,
    `@unknown pve9 ${A.type} ${A.b64}`,
    'garbage',
  ].join('\n');
  const e = parseKnownHosts(text);
  t.is(e.length, 5);
  t.deepEqual(e[0]!.patterns, ['pve1', '10.0.0.1']);
  t.is(e[0]!.line, 3);
  t.true(entryMatches(e[0]!, '10.0.0.1'));
  t.false(entryMatches(e[0]!, '[10.0.0.1]:2222'));
  t.true(entryMatches(e[1]!, '[pve2]:2222'));
  t.false(entryMatches(e[1]!, 'pve2'));
  t.true(entryMatches(e[2]!, 'node1.lab'));
  t.false(entryMatches(e[2]!, 'bad.lab'));
  t.is(e[3]!.marker, 'revoked');
  t.is(e[4]!.marker, 'cert-authority');
});

test('hashed entries written by ssh-keygen -H match by HMAC-SHA1', (t) => {
  const f = join(dir, 'hashed');
  writeFileSync(f, `[127.0.0.5]:2200 ${A.type} ${A.b64}\npve7 ${B.type} ${B.b64}\n`);
  execFileSync('ssh-keygen', ['-q', '-H', '-f', f], { stdio: 'ignore' });
  const text = readFileSync(f, 'utf8');
  t.false(text.includes('pve7'));
  t.is(checkHostKey(f, '127.0.0.5', 2200, A.type, A.blob, 'strict').status, 'ok');
  t.is(checkHostKey(f, 'pve7', 22, B.type, B.blob, 'strict').status, 'ok');
  t.is(checkHostKey(f, 'pve7', 2200, B.type, B.blob, 'strict').status, 'unknown');
  t.is(checkHostKey(f, 'pve7', 22, A.type, A.blob, 'strict').status, 'changed');
});

test('strict: unknown refused, changed refused with both fingerprints and the fix', (t) => {
  const f = join(dir, 'kh-strict');
  writeFileSync(f, `[h]:2201 ${A.type} ${A.b64}\n`);
  const u = checkHostKey(f, 'other', 22, A.type, A.blob, 'strict');
  t.like(u, { status: 'unknown', accept: false });
  const c = checkHostKey(f, 'h', 2201, B.type, B.blob, 'strict');
  t.like(c, { status: 'changed', accept: false });
  t.true(c.message!.includes(fingerprint(A.blob)) && c.message!.includes(fingerprint(B.blob)), c.message);
  t.true(c.message!.includes('ssh-ed25519') && c.message!.includes('[h]:2201'));
  t.true(c.hint!.includes(`ssh-keygen -R '[h]:2201' -f ${f}`), c.hint);
  t.is(readFileSync(f, 'utf8'), `[h]:2201 ${A.type} ${A.b64}\n`);
});

test('accept-new: creates the file 0600 and records; changed still refused; revoked refused', (t) => {
  const f = join(dir, 'new', 'known_hosts');
  t.false(existsSync(f));
  const r = checkHostKey(f, 'h', 2202, A.type, A.blob, 'accept-new');
  t.like(r, { status: 'unknown', accept: true, recorded: true });
  t.is(statSync(f).mode & 0o777, 0o600);
  t.is(readFileSync(f, 'utf8'), `[h]:2202 ${A.type} ${A.b64}\n`);
  t.like(checkHostKey(f, 'h', 2202, A.type, A.blob, 'accept-new'), { status: 'ok', accept: true });
  t.like(checkHostKey(f, 'h', 2202, B.type, B.blob, 'accept-new'), { status: 'changed', accept: false });
  writeFileSync(f, `@revoked * ${B.type} ${B.b64}\n`, { flag: 'a' });
  t.like(checkHostKey(f, 'x', 22, B.type, B.blob, 'accept-new'), { status: 'revoked', accept: false });
  // a file without a final newline gets one before the appended line
  const g = join(dir, 'nonl');
  writeFileSync(g, `a ${A.type} ${A.b64}`);
  checkHostKey(g, 'b', 22, A.type, A.blob, 'accept-new');
  t.is(readFileSync(g, 'utf8'), `a ${A.type} ${A.b64}\nb ${A.type} ${A.b64}\n`);
});

test('accept-new in check mode accepts for the run and writes nothing', (t) => {
  const f = join(dir, 'check', 'known_hosts');
  const r = checkHostKey(f, 'h', 22, A.type, A.blob, 'accept-new', { record: false });
  t.like(r, { status: 'unknown', accept: true, wouldRecord: true });
  t.is(r.recorded, undefined);
  t.false(existsSync(join(dir, 'check')));
  const g = join(dir, 'kh-check2');
  writeFileSync(g, `other ${B.type} ${B.b64}\n`);
  checkHostKey(g, 'h', 22, A.type, A.blob, 'accept-new', { record: false });
  t.is(readFileSync(g, 'utf8'), `other ${B.type} ${B.b64}\n`);
  // A changed key is refused in check mode too.
  writeFileSync(g, `h ${B.type} ${B.b64}\n`);
  t.like(checkHostKey(g, 'h', 22, A.type, A.blob, 'accept-new', { record: false }), { status: 'changed', accept: false });
});

test('accept-new records atomically: mode kept, no temp or lock left, a key recorded meanwhile is not doubled', (t) => {
  const f = join(dir, 'kh-atomic');
  writeFileSync(f, `# mine\nx ${B.type} ${B.b64}\n`, { mode: 0o644 });
  chmodSync(f, 0o644);
  const inodeBefore = statSync(f).ino;
  recordHostKey(f, 'h', 22, A.type, A.blob);
  recordHostKey(f, 'h', 22, A.type, A.blob);
  t.is(readFileSync(f, 'utf8'), `# mine\nx ${B.type} ${B.b64}\nh ${A.type} ${A.b64}\n`);
  t.is(statSync(f).mode & 0o777, 0o644);
  t.not(statSync(f).ino, inodeBefore, 'replaced by rename, not rewritten in place');
  t.deepEqual(readdirSync(dir).filter((n) => n.startsWith('kh-atomic')), ['kh-atomic']);
});

test('accept-new from many processes at once: every line recorded, none lost or torn', (t) => {
  const f = join(dir, 'kh-many');
  const script = join(dir, 'record.ts');
  writeFileSync(
    script,
    `import { recordHostKey } from ${JSON.stringify(join(process.cwd(), 'src/transport/knownhosts.ts'))};\n` +
      `const [f, n, type, b64] = process.argv.slice(2);\n` +
      `for (let i = 0; i < 5; i++) recordHostKey(f, 'host' + n + '-' + i, 22, type, Buffer.from(b64, 'base64'));\n`,
  );
  const shell = Array.from({ length: 6 }, (_, n) => `node --import tsx ${script} ${f} ${n} ${A.type} ${A.b64} &`).join(' ') + ' wait';
  execFileSync('sh', ['-c', shell], { cwd: process.cwd() });
  const lines = readFileSync(f, 'utf8').trim().split('\n');
  t.is(lines.length, 30);
  t.is(new Set(lines).size, 30);
  for (const l of lines) t.regex(l, new RegExp(`^host\\d-\\d ${A.type} ${A.b64.replace(/[+/]/g, '\\$&')}$`));
  t.false(existsSync(`${f}.lock`));
});

test('a file read again is parsed once, and again after any change: a key recorded, an edit in place of the same size', async (t) => {
  const f = join(dir, 'kh-cache');
  writeFileSync(f, `pve1 ${A.type} ${A.b64}\n`);
  const first = readKnownHosts(f);
  t.is(readKnownHosts(f), first, 'unchanged file: the same parse');
  recordHostKey(f, 'pve2', 22, B.type, B.blob); // renames a new file over it
  t.deepEqual(readKnownHosts(f).map((e) => e.patterns[0]), ['pve1', 'pve2']);
  writeFileSync(f, `pve1 ${A.type} ${A.b64}\n`);
  t.deepEqual(readKnownHosts(f).map((e) => e.patterns[0]), ['pve1']);
  // Same inode, same size: told apart by the modification time (file times tick in a few ms).
  await new Promise((r) => setTimeout(r, 30));
  writeFileSync(f, `pve3 ${A.type} ${A.b64}\n`);
  t.deepEqual(readKnownHosts(f).map((e) => e.patterns[0]), ['pve3']);
  t.is(checkHostKey(f, 'pve3', 22, A.type, A.blob, 'strict').status, 'ok');
  t.is(checkHostKey(f, 'pve1', 22, A.type, A.blob, 'strict').status, 'unknown');
  t.deepEqual(readKnownHosts(join(dir, 'no-such-file')), []);
});

test('host patterns: literal names match without regard to case; wildcards and negation as before', (t) => {
  const [e] = parseKnownHosts(`PVE-A.example,*.lab,!bad.lab,node?? ${A.type} ${A.b64}\n`);
  t.true(entryMatches(e!, 'pve-a.example'));
  t.true(entryMatches(e!, 'x.lab'));
  t.false(entryMatches(e!, 'bad.lab'));
  t.true(entryMatches(e!, 'node12'));
  t.false(entryMatches(e!, 'node123'));
  t.false(entryMatches(e!, 'pve-a.example.org'));
  t.false(entryMatches(e!, 'pve-aXexample'), 'a dot is a dot, not any character');
});

test('off: accepts, with a warning for unknown or changed keys', (t) => {
  const f = join(dir, 'kh-off');
  writeFileSync(f, `h ${A.type} ${A.b64}\n`);
  t.like(checkHostKey(f, 'h', 22, A.type, A.blob, 'off'), { status: 'ok', accept: true, message: undefined });
  const c = checkHostKey(f, 'h', 22, B.type, B.blob, 'off');
  t.like(c, { status: 'changed', accept: true });
  t.regex(c.message!, /host key checking is off for h/);
});

test('Limiter: never more than max in flight, FIFO, resize', async (t) => {
  const l = new Limiter(3);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  const job = (i: number) =>
    l.run(async () => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 5));
      order.push(i);
      active--;
      return i;
    });
  const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => job(i)));
  t.deepEqual(rs, Array.from({ length: 12 }, (_, i) => i));
  t.is(peak, 3);
  l.resize(1);
  peak = 0;
  await Promise.all([job(1), job(2), job(3)]);
  t.is(peak, 1);
  await t.throwsAsync(l.run(async () => Promise.reject(new Error('boom'))), { message: 'boom' });
  t.is(l.inFlight, 0);
});
