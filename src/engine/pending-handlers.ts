/**
 * Notified handlers survive an interrupted run. When a task notifies a handler, the host
 * records it in a small state file before anything else happens; when the stage's handlers have
 * run, the record is removed. A run that was stopped in between (Ctrl-C, a dropped connection,
 * a crash of the controller) leaves the record behind, and the next run of a stage holding that
 * role runs the handler even though its task now reports no change. Without this, a file written
 * before the stop would stay written but never applied (update-grub, update-initramfs, reboot).
 *
 * The file lives in `passthru_state_dir` (a host variable; default /var/lib/passthru), one
 * `role<TAB>handler` per line. Check mode reads it (a pending handler is drift) and writes nothing.
 */
import path from 'node:path';
import { DEFAULT_STATE_DIR, type Host } from '../model/types.ts';
import { cmd, type Connection } from '../transport/connection.ts';
import { handlerKey } from './handlers.ts';

export { DEFAULT_STATE_DIR };

/** The host's state directory (`passthru_state_dir`, default /var/lib/passthru). */
export function stateDir(host: Host): string {
  return typeof host.vars.passthru_state_dir === 'string' ? host.vars.passthru_state_dir : DEFAULT_STATE_DIR;
}

export function pendingHandlersPath(host: Host): string {
  return path.posix.join(stateDir(host), 'pending-handlers');
}

/** `role<TAB>handler` lines → handler keys (`role\0handler`); anything else is ignored. */
export function parsePendingHandlers(text: string): string[] {
  const keys: string[] = [];
  for (const line of text.split('\n')) {
    const [role, name, ...rest] = line.split('\t');
    if (role && name && rest.length === 0) keys.push(handlerKey(role, name));
  }
  return keys;
}

export function formatPendingHandlers(keys: Iterable<string>): string {
  const lines = [...new Set(keys)].map((k) => k.replace('\0', '\t'));
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Record the pending handler keys on the host (atomic write), or remove the record when none. */
export async function savePendingHandlers(conn: Connection, file: string, keys: Iterable<string>): Promise<void> {
  const text = formatPendingHandlers(keys);
  if (!text) {
    await conn.exec(cmd('rm', '-f', file));
    return;
  }
  await conn.exec(cmd('mkdir', '-p', path.posix.dirname(file)));
  await conn.write(file, text, { mode: 0o600 });
}
