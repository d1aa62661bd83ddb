/**
 * OpenSSH `known_hosts`: parsing, lookup and recording, with OpenSSH's own conventions:
 * `host`, `host1,host2`, `[host]:port` for non-22 ports, wildcards `*`/`?`, negation `!pat`,
 * hashed names `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, `#` comments, and the markers
 * `@revoked` (the key is refused for matching hosts) and `@cert-authority` (host certificates,
 * which this client does not use: such lines neither vouch for nor contradict a plain key).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { HostKeyChecking } from '../model/types.ts';

export interface KnownHostEntry {
  /** 1-based line number in the file. */
  line: number;
  marker?: 'revoked' | 'cert-authority';
  /** Host patterns of a plain entry (empty for a hashed entry). */
  patterns: string[];
  /** Salt and hash of a hashed entry. */
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  key: Buffer;
}

/** The default file: `~/.ssh/known_hosts`. */
export function defaultKnownHostsFile(): string {
  return join(homedir(), '.ssh', 'known_hosts');
}

/** The name OpenSSH looks up for a host and port: `host` for port 22, else `[host]:port`. */
export function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** `SHA256:<base64 without padding>`, as `ssh-keygen -l` and `ssh` print it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type written inside an SSH public key blob (`ssh-ed25519`, `ssh-rsa`, ...). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  if (len > 64 || 4 + len > blob.length) return 'unknown';
  return blob.subarray(4, 4 + len).toString('latin1');
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let rest = lines[i]!.replace(/\r$/, '').trim();
    if (rest === '' || rest.startsWith('#')) continue;
    let marker: KnownHostEntry['marker'];
    if (rest.startsWith('@')) {
      const m = /^@(\S+)\s+(.*)$/.exec(rest);
      if (!m) continue;
      if (m[1] === 'revoked') marker = 'revoked';
      else if (m[1] === 'cert-authority') marker = 'cert-authority';
      else continue; // unknown marker: ignore the line, as OpenSSH does
      rest = m[2]!;
    }
    const fields = rest.split(/\s+/);
    if (fields.length < 3) continue;
    const [hostField, keyType, keyB64] = fields as [string, string, string];
    let key: Buffer;
    try {
      key = Buffer.from(keyB64, 'base64');
    } catch {
      continue;
    }
    if (key.length === 0) continue;
    const entry: KnownHostEntry = { line: i + 1, patterns: [], keyType, key };
    if (marker) entry.marker = marker;
    if (hostField.startsWith('|1|')) {
      const parts = hostField.split('|');
      if (parts.length !== 4) continue;
      entry.hashed = { salt: Buffer.from(parts[2]!, 'base64'), hash: Buffer.from(parts[3]!, 'base64') };
    } else {
      entry.patterns = hostField.split(',').filter((p) => p !== '');
    }
    out.push(entry);
  }
  return out;
}

/** Compiled host patterns: every connection matches its name against every line of the file. */
const globs = new Map<string, (name: string) => boolean>();

function globMatch(pattern: string, name: string): boolean {
  let match = globs.get(pattern);
  if (!match) {
    if (!/[*?]/.test(pattern)) {
      const lower = pattern.toLowerCase();
      match = (n) => n.toLowerCase() === lower;
    } else {
      const re = new RegExp(
        '^' +
          pattern
            .split('')
            .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
            .join('') +
          '$',
        'i',
      );
      match = (n) => re.test(n);
    }
    globs.set(pattern, match);
  }
  return match(name);
}

/** Does the entry apply to this lookup name (`host` or `[host]:port`)? */
export function entryMatches(entry: KnownHostEntry, name: string): boolean {
  if (entry.hashed) {
    const h = createHmac('sha1', entry.hashed.salt).update(name).digest();
    return h.length === entry.hashed.hash.length && h.equals(entry.hashed.hash);
  }
  let matched = false;
  for (const p of entry.patterns) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false; // a negated match overrides everything
    } else if (globMatch(p, name)) matched = true;
  }
  return matched;
}

/** Key types that mean the same key family in known_hosts (an `ssh-rsa` line covers rsa-sha2-*). */
function sameFamily(a: string, b: string): boolean {
  const norm = (t: string) => (t === 'rsa-sha2-256' || t === 'rsa-sha2-512' ? 'ssh-rsa' : t);
  return norm(a) === norm(b);
}

export type HostKeyStatus = 'ok' | 'unknown' | 'changed' | 'revoked';

export interface HostKeyCheck {
  status: HostKeyStatus;
  /** Whether the connection may go on (depends on status and mode). */
  accept: boolean;
  /** `accept-new` appended the key to the file. */
  recorded?: boolean;
  /** `accept-new` in a run that writes nothing (check mode): accepted for this run, not recorded. */
  wouldRecord?: boolean;
  keyType: string;
  fingerprint: string;
  /** For `changed`: what the file holds for this host. */
  known?: { keyType: string; fingerprint: string; line: number }[];
  /** Why the key was refused, or the warning for `off`; names host, key type and fingerprints. */
  message?: string;
  /** What to do about a refusal. */
  hint?: string;
}

/**
 * The parsed files, each with the identity of the text it was parsed from: every connection of a
 * run reads the same file, twice (key types to ask for, then the check).
 */
const parsed = new Map<string, { id: string; entries: KnownHostEntry[] }>();

/**
 * Read and parse a known_hosts file; a missing file is empty. Parsed again only when the file
 * changed (inode, size or modification time: recordHostKey renames a new file over it). The
 * entries are shared: callers do not change them.
 */
export function readKnownHosts(file: string): KnownHostEntry[] {
  let st;
  try {
    st = statSync(file);
  } catch {
    return []; // as existsSync: absent, or not to be looked at
  }
  const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  const hit = parsed.get(file);
  if (hit?.id === id) return hit.entries;
  const entries = parseKnownHosts(readFileSync(file, 'utf8'));
  parsed.set(file, { id, entries });
  return entries;
}

/** Key types the file knows for this host (to ask the server for those first). */
export function knownKeyTypes(file: string, host: string, port: number): string[] {
  const name = hostKeyName(host, port);
  const types: string[] = [];
  for (const e of readKnownHosts(file)) {
    if (!e.marker && entryMatches(e, name) && !types.includes(e.keyType)) types.push(e.keyType);
  }
  return types;
}

/**
 * Add `name keytype base64` to the file, creating it (0600, directory 0700) when missing. Never
 * half-written, never losing a line another writer added: under an exclusive lock file
 * (`<file>.lock`, O_EXCL, stale after 10 s) the current text is read again, the line is skipped
 * if it is there by now, and the whole file is rewritten to a temp file, fsynced and renamed over
 * the old one (keeping its mode). A symlinked known_hosts is appended to in place with one
 * O_APPEND write under the same lock (a rename would replace the link).
 */
export function recordHostKey(file: string, host: string, port: number, keyType: string, key: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const line = `${hostKeyName(host, port)} ${keyType} ${key.toString('base64')}\n`;
  withFileLock(`${file}.lock`, () => {
    const old = existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
    const already = parseKnownHosts(old.toString('utf8')).some(
      (e) => !e.marker && entryMatches(e, hostKeyName(host, port)) && e.key.equals(key),
    );
    if (already) return;
    const prefix = old.length > 0 && old[old.length - 1] !== 0x0a ? '\n' : '';
    if (existsSync(file) && lstatSync(file).isSymbolicLink()) {
      const fd = openSync(file, 'a', 0o600);
      try {
        writeSync(fd, `${prefix}${line}`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return;
    }
    const mode = existsSync(file) ? statSync(file).mode & 0o7777 : 0o600;
    const tmp = `${file}.passthru-tmp.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
      try {
        writeSync(fd, Buffer.concat([old, Buffer.from(`${prefix}${line}`)]));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  });
}

/** Run `fn` holding `lockPath` (created O_EXCL; one older than 10 s is a dead writer's). */
function withFileLock(lockPath: string, fn: () => void): void {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      closeSync(openSync(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const age = Date.now() - (statSync(lockPath, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 10_000) {
        rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${lockPath} is held by another writer (remove it if no passthru or ssh runs)`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    fn();
  } finally {
    rmSync(lockPath, { force: true });
  }
}

/**
 * Check the key a server presented against the file, in the given mode.
 * - strict: ok only when a matching line holds this key; unknown or changed = refuse.
 * - accept-new: unknown keys are recorded and accepted; changed ones are refused. With
 *   `record: false` (check mode, which changes nothing anywhere) an unknown key is accepted for
 *   this run only and the file is left alone.
 * - off: everything is accepted, with a warning message (the caller logs it).
 * A key under `@revoked` for the host is refused in strict and accept-new.
 * A host known only with keys of other types is treated as changed (never silently downgraded).
 */
export function checkHostKey(
  file: string,
  host: string,
  port: number,
  keyType: string,
  key: Buffer,
  mode: HostKeyChecking,
  opts: { record?: boolean } = {},
): HostKeyCheck {
  const name = hostKeyName(host, port);
  const fp = fingerprint(key);
  const entries = readKnownHosts(file).filter((e) => e.marker !== 'cert-authority' && entryMatches(e, name));
  const revoked = entries.some((e) => e.marker === 'revoked' && e.key.equals(key));
  const plain = entries.filter((e) => !e.marker);
  const match = plain.some((e) => e.key.equals(key));
  const known = plain
    .filter((e) => !e.key.equals(key))
    .map((e) => ({ keyType: e.keyType, fingerprint: fingerprint(e.key), line: e.line }));
  const fix = `ssh-keygen -R '${name}' -f ${file}`;

  let status: HostKeyStatus;
  if (revoked) status = 'revoked';
  else if (match) status = 'ok';
  else if (known.length > 0) status = 'changed';
  else status = 'unknown';

  const base = { status, keyType, fingerprint: fp };
  if (mode === 'off') {
    return {
      ...base,
      accept: true,
      ...(known.length ? { known } : {}),
      message:
        status === 'ok'
          ? undefined
          : `host key checking is off for ${name}: accepted ${status} ${keyType} key ${fp} without verification`,
    };
  }
  if (status === 'ok') return { ...base, accept: true };
  if (status === 'revoked') {
    return {
      ...base,
      accept: false,
      message: `the ${keyType} host key of ${name} (${fp}) is marked @revoked in ${file}`,
      hint: `the host presents a revoked key: do not connect until the host has a new key; then run ${fix} and reconnect`,
    };
  }
  if (status === 'changed') {
    const same = known.filter((k) => sameFamily(k.keyType, keyType));
    const shown = same.length ? same : known;
    const what = same.length
      ? `the ${keyType} host key of ${name} has CHANGED: known ${shown.map((k) => `${k.fingerprint} (${file}:${k.line})`).join(', ')}, presented ${fp}`
      : `${name} presented a ${keyType} key ${fp}, but ${file} knows it only by ${shown.map((k) => `${k.keyType} ${k.fingerprint} (line ${k.line})`).join(', ')}`;
    return {
      ...base,
      accept: false,
      known,
      message: `${what}; refusing to connect (someone may be intercepting the connection, or the host was reinstalled)`,
      hint: `if the new key is expected (host reinstalled), check it on the host with \`ssh-keygen -lf /etc/ssh/ssh_host_${keyType.replace(/^ssh-/, '').replace(/-.*/, '')}_key.pub\`, then run: ${fix}  and reconnect`,
    };
  }
  // unknown
  if (mode === 'accept-new') {
    if (opts.record === false) return { ...base, accept: true, wouldRecord: true };
    recordHostKey(file, host, port, keyType, key);
    return { ...base, accept: true, recorded: true };
  }
  return {
    ...base,
    accept: false,
    message: `the ${keyType} host key of ${name} (${fp}) is not in ${file}, and host key checking is strict`,
    hint: `check the fingerprint on the host (\`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub\`), then add it with \`ssh-keyscan -p ${port} ${host} >> ${file}\`, or set host_key_checking: accept-new for the first connection`,
  };
}
