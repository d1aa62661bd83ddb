/**
 * Which credentials to offer a server, in order, and how: an explicit password (only when the
 * user gave one), the identity file from the inventory (passphrase from an environment variable
 * or a prompt), the ssh-agent (`SSH_AUTH_SOCK`), then the usual default keys. Secrets stay in
 * the returned objects: no message built here contains one.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { ConnSpec } from '../model/types.ts';

const { utils } = ssh2;

export type AuthAttempt =
  | { type: 'password'; label: string; password: string }
  /** The key as parsed (and decrypted): what ssh2 signs with, not parsed again per connection. */
  | { type: 'publickey'; label: string; key: ParsedKey }
  | { type: 'agent'; label: string; agent: string };

type ParsedKey = Exclude<ReturnType<typeof utils.parseKey>, Error>;

/**
 * Keys as parsed, by their bytes and passphrase: every connection of a run offers the same keys,
 * and parsing one (decrypting it, deriving its public half) costs more than the rest of the
 * offer. Holds what the attempts hold anyway.
 */
const parsedKeys = new Map<string, ReturnType<typeof utils.parseKey>>();
function parseKey(data: Buffer, passphrase?: string): ReturnType<typeof utils.parseKey> {
  const id = createHash('sha256').update(data).update(passphrase === undefined ? '\0-' : `\0+${passphrase}`).digest('hex');
  let key = parsedKeys.get(id);
  if (key === undefined) parsedKeys.set(id, (key = utils.parseKey(data, passphrase)));
  return key;
}

export interface AuthOptions {
  /** Asked for a key passphrase when no environment variable holds it. */
  prompt?: (question: string) => Promise<string>;
  log?: (msg: string) => void;
  /** Environment to read SSH_AUTH_SOCK and passphrase variables from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Home directory for the default keys (default os.homedir()). */
  home?: string;
}

/** A problem with the local credentials themselves (unreadable key, wrong passphrase). */
export class AuthSetupError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'AuthSetupError';
  }
}

function isEncryptedError(err: Error): boolean {
  return /encrypted|passphrase/i.test(err.message);
}

/** Parse a key file; returns the attempt, or undefined (with a log line) when it cannot be used. */
async function keyAttempt(
  file: string,
  spec: ConnSpec,
  opts: AuthOptions,
  explicit: boolean,
): Promise<AuthAttempt | undefined> {
  const log = opts.log ?? (() => {});
  const env = opts.env ?? process.env;
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (e) {
    if (!explicit) return undefined;
    throw new AuthSetupError(
      `cannot read identity file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'check identity_file in the inventory',
    );
  }
  const plain = parseKey(data);
  if (!(plain instanceof Error)) return { type: 'publickey', label: `key ${file}`, key: plain };
  if (!isEncryptedError(plain)) {
    if (!explicit) {
      log(`skipping ${file}: not a usable private key`);
      return undefined;
    }
    throw new AuthSetupError(`cannot parse identity file ${file}: ${plain.message}`);
  }
  let passphrase: string | undefined;
  let source = '';
  if (spec.passphraseEnv && env[spec.passphraseEnv] !== undefined) {
    passphrase = env[spec.passphraseEnv];
    source = `environment variable ${spec.passphraseEnv}`;
  } else if (opts.prompt) {
    passphrase = await opts.prompt(`Passphrase for ${file}: `);
    source = 'the prompt';
  } else if (!explicit) {
    log(`skipping ${file}: encrypted and no passphrase available`);
    return undefined;
  } else {
    throw new AuthSetupError(
      `identity file ${file} is encrypted and no passphrase is available`,
      spec.passphraseEnv
        ? `set the environment variable ${spec.passphraseEnv}`
        : 'set passphrase_env in the inventory to the name of an environment variable holding it, or load the key into ssh-agent',
    );
  }
  const parsed = parseKey(data, passphrase);
  if (parsed instanceof Error) {
    throw new AuthSetupError(
      `cannot decrypt identity file ${file} with the passphrase from ${source}`,
      'check the passphrase (it is never printed)',
    );
  }
  return { type: 'publickey', label: `key ${file}`, key: parsed };
}

/** The credentials to try, in order. Throws AuthSetupError for an unusable explicit key. */
export async function resolveAuth(spec: ConnSpec, opts: AuthOptions = {}): Promise<AuthAttempt[]> {
  const env = opts.env ?? process.env;
  const home = opts.home ?? homedir();
  const out: AuthAttempt[] = [];
  if (spec.password !== undefined) out.push({ type: 'password', label: 'password', password: spec.password });
  if (spec.identityFile) {
    const file = spec.identityFile.startsWith('~/') ? join(home, spec.identityFile.slice(2)) : spec.identityFile;
    const a = await keyAttempt(file, spec, opts, true);
    if (a) out.push(a);
  }
  const sock = env.SSH_AUTH_SOCK;
  if (sock && existsSync(sock)) out.push({ type: 'agent', label: `ssh-agent (${sock})`, agent: sock });
  for (const name of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
    const file = join(home, '.ssh', name);
    if (out.some((a) => a.label === `key ${file}`) || !existsSync(file)) continue;
    const a = await keyAttempt(file, spec, opts, false).catch((e: Error) => {
      opts.log?.(`skipping ${file}: ${e.message}`);
      return undefined;
    });
    if (a) out.push(a);
  }
  return out;
}

/**
 * An ssh2 `authHandler`: offers the attempts in order, skipping methods the server does not
 * allow. `tried` collects the labels offered (for the error message).
 */
export function makeAuthHandler(username: string, attempts: AuthAttempt[], tried: string[], log?: (m: string) => void) {
  let i = 0;
  return (methodsLeft: string[] | null, _partial: boolean | null, next: (a: unknown) => void): void => {
    while (i < attempts.length) {
      const a = attempts[i++]!;
      const method = a.type === 'agent' ? 'publickey' : a.type;
      if (methodsLeft && !methodsLeft.includes(method)) continue;
      tried.push(a.label);
      log?.(`trying ${a.label}`);
      if (a.type === 'password') return next({ type: 'password', username, password: a.password });
      if (a.type === 'agent') return next({ type: 'agent', username, agent: a.agent });
      return next({ type: 'publickey', username, key: a.key });
    }
    next(false);
  };
}
