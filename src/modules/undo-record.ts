/**
 * Undo records: what passthru's own edits added to a file the user shares with it (a kernel
 * parameter in /etc/default/grub, a module line in /etc/modules, a whole file it wrote over the
 * user's), kept on the host so that an undo removes exactly that and never what the user wrote.
 *
 * A record is one small JSON file under the state directory (/var/lib/passthru/undo/), written
 * by the same plan that makes the edit, as the action after it (a failed edit records nothing;
 * an edit whose record failed is never undone, which leaves it rather than something of the
 * user's). Check mode writes nothing. The engine's observer overlays the planned record, so the
 * later tasks of the run plan against it.
 */
import type { Action, FileState, Observer, Plan } from './contract.ts';
import { cmd } from '../transport/connection.ts';
import { DEFAULT_STATE_DIR } from '../model/types.ts';

/** Where the records live (the host's passthru_state_dir default, /var/lib/passthru). */
export const UNDO_DIR = `${DEFAULT_STATE_DIR}/undo`;

/** A record file: per edited file, the entries one module keeps about it. */
export interface UndoRecord<E> {
  version: 1;
  files: Record<string, E>;
}

/** The record read from the host, or an empty one (missing, or not a record: never trusted). */
export function parseRecord<E>(f: FileState): UndoRecord<E> {
  if (!f.exists || f.content.trim() === '') return { version: 1, files: {} };
  try {
    const o = JSON.parse(f.content) as UndoRecord<E>;
    if (o && o.version === 1 && o.files && typeof o.files === 'object' && !Array.isArray(o.files)) return o;
  } catch {
    // fall through
  }
  throw new Error('expected a passthru undo record (JSON, version 1), found text that is not one');
}

/** The record's text (stable: sorted keys, one trailing newline). */
export function recordText<E>(r: UndoRecord<E>): string {
  const sorted = Object.fromEntries(Object.keys(r.files).sort().map((k) => [k, r.files[k]]));
  return `${JSON.stringify({ version: 1, files: sorted }, null, 2)}\n`;
}

/**
 * The actions that make the record file hold `next` (deleted when it holds no file), or none
 * when that is what it holds already.
 */
export function recordActions<E>(path: string, current: FileState, next: UndoRecord<E>): Action[] {
  const empty = Object.keys(next.files).length === 0;
  if (empty) return current.exists ? [{ kind: 'delete', path }] : [];
  const text = recordText(next);
  if (current.exists && current.content === text) return [];
  const dir = path.slice(0, path.lastIndexOf('/')) || '/';
  return [
    { kind: 'exec', command: cmd('mkdir', '-p', '--', dir) },
    { kind: 'write', path, content: text, mode: 0o600 },
  ];
}

/** The record actions after one file's entry becomes `entry` (undefined: the file is forgotten). */
export async function recordUpdate<E>(observe: Observer, recordPath: string, record: UndoRecord<E>, path: string, entry: E | undefined): Promise<Action[]> {
  const files = { ...record.files };
  if (entry === undefined) delete files[path];
  else files[path] = entry;
  return recordActions(recordPath, await observe.file(recordPath), { version: 1, files });
}

/**
 * The record at `path` (none when no path is given), or the plan that fails the task when the
 * file there is not a record (`what` says what it records, for the hint).
 */
export async function loadRecord<E>(observe: Observer, path: string | undefined, what: string): Promise<{ record?: UndoRecord<E>; fail?: Plan }> {
  if (!path) return {};
  try {
    return { record: parseRecord<E>(await observe.file(path)) };
  } catch (e) {
    return { fail: { kind: 'fail', msg: `${path}: ${(e as Error).message}`, hint: `it records ${what}; move it aside to start a new record (an undo then takes back none of the earlier ones)` } };
  }
}

/**
 * The argument rules of a module that keeps a record and undoes with `state: absent`: the undo
 * takes no edits of its own (`edits` names them), needs a record, and a record path is absolute.
 */
export function recordArgsProblem(module: string, a: { state?: string; record?: string }, edits: { given: boolean; names: string }, what: string): string | undefined {
  if (a.state === 'absent' && edits.given) return `${module}: state: absent removes what the record lists; ${edits.names} make no sense with it`;
  if (a.state === 'absent' && !a.record) return `${module}: state: absent needs a record (${what})`;
  if (a.record && !a.record.startsWith('/')) return `${module}: record must be an absolute path, found '${a.record}'`;
  return undefined;
}
