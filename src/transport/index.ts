/**
 * Entry point of the transport layer: `openConnection(host)` gives a Connection for an inventory
 * host, over SSH (ssh2) or, for `transport: local`, on the control machine itself.
 */
import { UnreachableError } from '../model/errors.ts';
import type { Host } from '../model/types.ts';
import type { ConnectOptions, Connection } from './connection.ts';
import { Limiter } from './limiter.ts';
import { LocalConnection } from './local.ts';

export { Limiter } from './limiter.ts';

/** The run's connection options; `handshakes` defaults to one shared Limiter(16) per process (defaultHandshakes). */
export interface TransportOptions extends ConnectOptions {
  /** Check mode: `accept-new` does not write known_hosts (the key is accepted for the run only). */
  check?: boolean;
}

/** Handshakes in flight across the whole process when the caller does not bring its own limiter. */
export const defaultHandshakes = new Limiter(16);

/**
 * Open the connection to a host. Failures to connect, authenticate, verify the host key or
 * become root throw UnreachableError naming the host, with a hint.
 */
export async function openConnection(host: Host, opts: TransportOptions = {}): Promise<Connection> {
  if (host.conn.transport === 'local') return new LocalConnection(host.name);
  // ssh2 (and its crypto) loads on the first SSH connection, not at every start of the CLI.
  const { connectSsh } = await import('./ssh.ts');
  try {
    return await connectSsh(host.name, host.conn, {
      handshakes: opts.handshakes ?? defaultHandshakes,
      log: opts.log,
      commandTimeoutMs: opts.commandTimeoutMs,
      prompt: opts.prompt,
      recordHostKeys: !opts.check,
    });
  } catch (e) {
    if (e instanceof UnreachableError) throw e;
    throw new UnreachableError(
      `${host.name}: cannot connect: ${(e as Error).message}`,
      host.name,
      'check the connection settings of this host in the inventory',
    );
  }
}
