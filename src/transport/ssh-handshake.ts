/**
 * Establishing an SSH session with ssh2: the algorithms offered, the jump host (ProxyJump-like,
 * through a forwarded channel), authentication (auth.ts), the host key check against
 * known_hosts (knownhosts.ts) and the pinning of keys across reconnects, and the error a person
 * reads when any of it fails. ssh.ts runs commands on the link this returns.
 */
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';
import { UnreachableError } from '../model/errors.ts';
import type { ConnSpec } from '../model/types.ts';
import { makeAuthHandler, type AuthAttempt } from './auth.ts';
import { checkHostKey, defaultKnownHostsFile, fingerprint, keyTypeOf, knownKeyTypes } from './knownhosts.ts';
import type { ConnectOptions } from './connection.ts';

/** Options of an SSH connection (the handshake reads most of them; ssh.ts the channel and keepalive ones). */
export interface SshOptions extends ConnectOptions {
  /** Channels open at once on this connection (default 8). */
  channels?: number;
  /** Keepalive interval (ms, default 5000); the connection is dropped after 3 missed. */
  keepaliveIntervalMs?: number;
  /** Environment for SSH_AUTH_SOCK and the passphrase/password variables (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * `accept-new` may add unknown host keys to known_hosts (default true). False in check mode,
   * which writes nothing anywhere: an unknown key is then accepted for the run only.
   */
  recordHostKeys?: boolean;
}

const { Client } = ssh2;
export type SshClient = InstanceType<typeof Client>;

/** A live session: the client to the host, and the jump host's when there is one. */
export interface Link {
  client: SshClient;
  jump?: SshClient;
  hostKey: Buffer;
  jumpKey?: Buffer;
}

/** What a handshake needs from its connection. */
export interface HandshakeContext {
  /** Inventory name of the host, for messages. */
  name: string;
  spec: ConnSpec;
  opts: SshOptions;
  log: (msg: string) => void;
  /** Host keys seen at the first connection: a reconnect must present the same. */
  pinned: { target?: Buffer; jump?: Buffer };
}

/** `user@host:port` of a connection spec. */
export function sshWhere(spec: ConnSpec): string {
  return `${spec.user}@${spec.host}:${spec.port}`;
}

const KEX = [
  'curve25519-sha256',
  'curve25519-sha256@libssh.org',
  'ecdh-sha2-nistp256',
  'ecdh-sha2-nistp384',
  'ecdh-sha2-nistp521',
  'diffie-hellman-group-exchange-sha256',
  'diffie-hellman-group14-sha256',
  'diffie-hellman-group16-sha512',
  'diffie-hellman-group18-sha512',
];
const HOST_KEY_ALGOS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Host key algorithms, those of key types known for the host first (as OpenSSH orders them). */
function hostKeyOrder(knownTypes: string[]): string[] {
  const first: string[] = [];
  for (const t of knownTypes) {
    const algos = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t];
    for (const a of algos) if (HOST_KEY_ALGOS.includes(a) && !first.includes(a)) first.push(a);
  }
  return [...first, ...HOST_KEY_ALGOS.filter((a) => !first.includes(a))];
}

/** Parse `user@host:port`, `host:port`, `[v6]:port` or `host` (jump host). */
export function parseJump(jump: string, defaultUser: string): { user: string; host: string; port: number } {
  let rest = jump.trim();
  let user = defaultUser;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
  }
  let host = rest;
  let port = 22;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (v6) {
    host = v6[1]!;
    if (v6[2]) port = Number(v6[2]);
  } else {
    const m = /^([^:]+):(\d+)$/.exec(rest);
    if (m) {
      host = m[1]!;
      port = Number(m[2]);
    }
  }
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid jump host: ${jump}`);
  return { user, host, port };
}

/** Connect (through the jump host when there is one) and authenticate: the live link to the host. */
export async function handshake(c: HandshakeContext, attempts: AuthAttempt[]): Promise<Link> {
  let jump: SshClient | undefined;
  let jumpKey: Buffer | undefined;
  let sock: Duplex | undefined;
  if (c.spec.jump) {
    const j = parseJump(c.spec.jump, c.spec.user);
    const jumpName = `${j.user}@${j.host}:${j.port}`;
    c.log(`connecting to jump host ${jumpName}`);
    const r = await connectClient(c, jumpName, j.host, j.port, j.user, attempts, undefined, false);
    jump = r.client;
    jumpKey = r.hostKey;
    try {
      sock = await new Promise<Duplex>((resolve, reject) =>
        jump!.forwardOut('127.0.0.1', 0, c.spec.host, c.spec.port, (err, stream) =>
          err ? reject(err) : resolve(stream),
        ),
      );
    } catch (e) {
      jump.end();
      throw new UnreachableError(
        `${c.name}: jump host ${jumpName} could not open a connection to ${c.spec.host}:${c.spec.port}: ${(e as Error).message}`,
        c.name,
        'check that the target address is reachable from the jump host and that AllowTcpForwarding is on there',
      );
    }
  }
  try {
    const r = await connectClient(c, sshWhere(c.spec), c.spec.host, c.spec.port, c.spec.user, attempts, sock, true);
    return { client: r.client, jump, hostKey: r.hostKey, ...(jumpKey ? { jumpKey } : {}) };
  } catch (e) {
    jump?.end();
    throw e;
  }
}

function connectClient(
  c: HandshakeContext,
  label: string,
  host: string,
  port: number,
  user: string,
  attempts: AuthAttempt[],
  sock: Duplex | undefined,
  isTarget: boolean,
): Promise<{ client: SshClient; hostKey: Buffer }> {
  const file = (c.spec.knownHostsFile ?? defaultKnownHostsFile());
  const mode = c.spec.hostKeyChecking;
  const tried: string[] = [];
  let keyProblem: { message: string; hint?: string } | undefined;
  let presented: Buffer | undefined;
  const client = new Client();
  const timeout = c.spec.connectTimeoutMs ?? 10_000;
  const config: ConnectConfig = {
    host,
    port,
    username: user,
    readyTimeout: timeout,
    keepaliveInterval: c.opts.keepaliveIntervalMs ?? 5000,
    keepaliveCountMax: 3,
    algorithms: { kex: KEX as never, serverHostKey: hostKeyOrder(knownKeyTypes(file, host, port)) as never },
    authHandler: makeAuthHandler(user, attempts, tried, c.log) as never,
    hostVerifier: ((key: Buffer, verify: (ok: boolean) => void) => {
      presented = Buffer.from(key);
      const keyType = keyTypeOf(key);
      // Both the target's and the jump host's keys are pinned at the first connection.
      const pinned = isTarget ? c.pinned.target : c.pinned.jump;
      if (pinned && !pinned.equals(key)) {
        keyProblem = {
          message: `the ${keyType} host key of ${isTarget ? '' : 'jump host '}${label} changed since this run connected: was ${fingerprint(pinned)}, now ${fingerprint(key)}; refusing to reconnect`,
          hint: `if the host was reinstalled on purpose, check the new key on the host, run \`ssh-keygen -R '${port === 22 ? host : `[${host}]:${port}`}' -f ${file}\`, and run again`,
        };
        return verify(false);
      }
      let check;
      try {
        check = checkHostKey(file, host, port, keyType, key, mode, { record: c.opts.recordHostKeys !== false });
      } catch (e) {
        keyProblem = { message: `cannot check the host key against ${file}: ${(e as Error).message}` };
        return verify(false);
      }
      if (check.recorded) c.log(`recorded new ${keyType} host key ${check.fingerprint} in ${file}`);
      if (check.wouldRecord) c.log(`check mode: accepted new ${keyType} host key ${check.fingerprint} for this run, not recorded in ${file}`);
      if (mode === 'off' && check.message) (c.opts.log ?? console.warn)(`WARNING: ${c.name}: ${check.message}`);
      if (!check.accept) {
        keyProblem = { message: check.message ?? `host key refused`, hint: check.hint };
        return verify(false);
      }
      c.log(`host key ${keyType} ${check.fingerprint} ${check.status}`);
      verify(true);
    }) as never,
  };
  if (sock) config.sock = sock as never;
  c.log(`connecting to ${label}`);
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (err: Error & { level?: string; code?: string }) => {
      if (done) return;
      done = true;
      client.end();
      reject(connectError(c, label, err, keyProblem, tried, timeout));
    };
    client.on('ready', () => {
      if (done) return;
      done = true;
      client.removeListener('error', fail);
      client.removeListener('close', onClose);
      c.log(`connected to ${label}`);
      resolve({ client, hostKey: presented! });
    });
    const onClose = () => fail(new Error('connection closed during the handshake'));
    client.on('error', fail);
    client.on('close', onClose);
    try {
      client.connect(config);
      ignoreHostKeysNotice(client);
    } catch (e) {
      fail(e as Error);
    }
  });
}

/**
 * After login, OpenSSH's sshd lists all its host keys (the `hostkeys-00@openssh.com` notice, for
 * clients that keep known_hosts up to date with them: OpenSSH's UpdateHostKeys). ssh2 answers
 * every notice by asking the server to prove that it holds each key (`hostkeys-prove-00`): a
 * signature per key on the host, the same number of checks here, on every connection, for a
 * list that passthru never reads (it checks the key of the key exchange against known_hosts).
 * The notice is dropped instead, as OpenSSH's own client does with UpdateHostKeys=no. ssh2 has
 * no option for it: its handler of global requests (made by connect()) is wrapped; an ssh2
 * without that handler is left as it is (the notice then costs its round trip, nothing else).
 */
function ignoreHostKeysNotice(client: SshClient): void {
  type Handler = (proto: { requestSuccess(): void }, name: string, wantReply: boolean, data: unknown) => void;
  const handlers = (client as unknown as { _protocol?: { _handlers?: { GLOBAL_REQUEST?: Handler } } })._protocol?._handlers;
  const handle = handlers?.GLOBAL_REQUEST;
  if (!handlers || typeof handle !== 'function') return;
  handlers.GLOBAL_REQUEST = (proto, name, wantReply, data) => {
    if (name !== 'hostkeys-00@openssh.com') return handle(proto, name, wantReply, data);
    if (wantReply) proto.requestSuccess(); // what ssh2 itself answers (sshd asks for no reply)
  };
}

function connectError(
  c: HandshakeContext,
  label: string,
  err: Error & { level?: string; code?: string },
  keyProblem: { message: string; hint?: string } | undefined,
  tried: string[],
  timeoutMs: number,
): UnreachableError {
  const h = c.name;
  if (keyProblem) return new UnreachableError(`${h}: ${keyProblem.message}`, h, keyProblem.hint);
  if (err.level === 'client-authentication') {
    return new UnreachableError(
      `${h}: authentication failed for ${label} (tried: ${tried.join(', ') || 'nothing the server accepts'})`,
      h,
      `put the public key in ~${label.split('@')[0]}/.ssh/authorized_keys on the host, or set identity_file / SSH_AUTH_SOCK`,
    );
  }
  if (/Timed out while waiting for handshake/.test(err.message)) {
    return new UnreachableError(
      `${h}: no SSH handshake with ${label} within ${timeoutMs} ms`,
      h,
      'check that the host is up and that sshd listens on that address and port (connect_timeout raises the limit)',
    );
  }
  const code = err.code ? ` (${err.code})` : '';
  return new UnreachableError(
    `${h}: cannot connect to ${label}: ${err.message}${code}`,
    h,
    err.code === 'ECONNREFUSED'
      ? 'nothing listens on that port: is sshd running, is the port right?'
      : 'check the address, the port and the network path to the host',
  );
}
