/**
 * Applies the actions a plan announced, in order, through the Connection, and nothing else.
 * A reboot request is collected for the stage's reboot coordinator, never executed here.
 */
import type { Action } from './contract.ts';
import { cmd, type Connection } from '../transport/connection.ts';

export interface ApplyResult {
  /** Reasons of the `request-reboot` actions, in order. */
  rebootReasons: string[];
  /** Paths of the backups the writes kept. */
  backups: string[];
  /** The commands run (`exec` actions) with their output, for the task's message. */
  execs: Array<{ command: string; stdout: string; stderr: string }>;
}

/** `0o644` → `0644` (what chmod takes). */
export function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/**
 * Run the actions one after the other; the first failure throws (a CommandError for a
 * command that exited non-zero) and the remaining actions are not run.
 */
export async function applyActions(
  conn: Connection,
  actions: Action[],
  opts: { timeoutMs?: number } = {},
): Promise<ApplyResult> {
  const result: ApplyResult = { rebootReasons: [], backups: [], execs: [] };
  for (const a of actions) {
    switch (a.kind) {
      case 'write': {
        const w = await conn.write(a.path, a.content, {
          mode: a.mode,
          owner: a.owner,
          group: a.group,
          backup: a.backup,
          keepBackups: a.keepBackups,
          expectSha256: a.expectSha256,
          lockFile: a.lockFile,
        });
        if (w.backupPath) result.backups.push(w.backupPath);
        break;
      }
      case 'delete':
        await conn.exec(cmd('rm', '-f', '--', a.path), { timeoutMs: opts.timeoutMs });
        break;
      case 'chmod':
        if (a.owner !== undefined || a.group !== undefined) {
          const spec = `${a.owner ?? ''}${a.group !== undefined ? `:${a.group}` : ''}`;
          await conn.exec(cmd('chown', spec, '--', a.path), { timeoutMs: opts.timeoutMs });
        }
        // After chown: chown may clear setuid/setgid bits, the mode must be the last word.
        if (a.mode !== undefined) {
          await conn.exec(cmd('chmod', octal(a.mode), '--', a.path), { timeoutMs: opts.timeoutMs });
        }
        break;
      case 'exec': {
        const r = await conn.exec(a.command, { timeoutMs: a.timeoutMs ?? opts.timeoutMs, stdin: a.stdin });
        result.execs.push({ command: a.command, stdout: r?.stdout ?? '', stderr: r?.stderr ?? '' });
        break;
      }
      case 'request-reboot':
        result.rebootReasons.push(a.reason);
        break;
      default: {
        const never: never = a;
        throw new Error(`unknown action ${JSON.stringify(never)}`);
      }
    }
  }
  return result;
}
