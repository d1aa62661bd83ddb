import { fileDiff, type Action, type Module, type Plan, type ArgumentSpec, type InferArgs } from './contract.ts';
import type { FileDiff } from '../model/types.ts';
import type { ObservedFile } from './observer.ts';
import { loadRecord, recordUpdate, UNDO_DIR, type UndoRecord } from './undo-record.ts';

/** The record of the files passthru's roles wrote whole (what each path held before). */
export const FILES_RECORD = `${UNDO_DIR}/files.json`;

/** What a path held before the first recorded write: nothing, or this content and mode. */
export type FileRecordEntry = { existed: false } | { existed: true; content: string; mode?: number };
export type FilesRecord = UndoRecord<FileRecordEntry>;

const fileSpec = {
  options: {
    path: { type: 'str', required: true, aliases: ['dest', 'name'], description: 'Absolute path of the file.' },
    content: { type: 'str', multiline: true, description: 'Wanted content of the file (whole file); when omitted, only mode/owner/group of an existing file are managed.' },
    state: { type: 'str', default: 'present', choices: ['present', 'absent'], description: 'present or absent.' },
    mode: { type: 'str', description: "Octal mode: '0644', or 644 (digits read as octal, as YAML turns 0644 into 644)." },
    owner: { type: 'str', description: 'User name owning the file.' },
    group: { type: 'str', description: 'Group name of the file.' },
    backup: { type: 'bool', default: false, description: 'Keep a timestamped copy of the old file before replacing it.' },
    record: {
      type: 'str',
      default: '',
      description:
        'Undo record (a JSON file on the host, e.g. /var/lib/passthru/undo/files.json): the first write records what the path held before ' +
        '(its content and mode, or nothing); `state: absent` then puts that back, or removes the file only when it did not exist before. A path ' +
        'the record does not know is left alone. "" = no record (`state: absent` removes the file).',
    },
  },
} as const satisfies ArgumentSpec;
export type FileArgs = InferArgs<typeof fileSpec>;

/**
 * Parse a file mode. Strings are octal (`'0644'`, `'644'`, `'0o644'`); numbers are read digit
 * by digit as octal too, because YAML 1.2 reads `mode: 0644` as the decimal 644 and nobody
 * means 644 decimal. Returns undefined for no mode; throws on a malformed one.
 */
export function parseMode(mode: string | number | undefined): number | undefined {
  if (mode === undefined || mode === null || mode === '') return undefined;
  const text = typeof mode === 'number' ? String(mode) : mode.trim().replace(/^0o/i, '');
  if (!/^[0-7]{1,4}$/.test(text)) {
    throw new Error(`mode ${JSON.stringify(mode)} is not an octal mode like '0644'`);
  }
  return Number.parseInt(text, 8);
}

/** `0o644` → `0644` */
export function fmtMode(mode: number | undefined): string {
  return mode === undefined ? '?' : mode.toString(8).padStart(4, '0');
}

/**
 * Compare mode/owner/group of an existing file with the wanted ones: the differences as
 * text (`mode 0600 → 0644`) and the fields to set.
 */
export function attrChanges(
  observed: ObservedFile,
  want: { mode?: number; owner?: string; group?: string },
): { notes: string[]; set: { mode?: number; owner?: string; group?: string } } {
  const notes: string[] = [];
  const set: { mode?: number; owner?: string; group?: string } = {};
  if (want.mode !== undefined && observed.mode !== want.mode) {
    notes.push(`mode ${fmtMode(observed.mode)} → ${fmtMode(want.mode)}`);
    set.mode = want.mode;
  }
  if (want.owner !== undefined && observed.owner !== want.owner) {
    notes.push(`owner ${observed.owner ?? '?'} → ${want.owner}`);
    set.owner = want.owner;
  }
  if (want.group !== undefined && observed.group !== want.group) {
    notes.push(`group ${observed.group ?? '?'} → ${want.group}`);
    set.group = want.group;
  }
  return { notes, set };
}

/** "content and mode" / "content, mode and owner" */
export function listWords(words: string[]): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

/**
 * `file`: a whole file with the given content (atomic write: temp file, fsync, rename), mode,
 * owner and group; or its absence (`state: absent`). The diff shows the content change; a
 * mode/owner-only change is a chmod/chown without rewriting the file. `backup: true` keeps the
 * old file as `<path>.passthru-<UTC time>.bak`.
 */
export const fileModule: Module<FileArgs> = {
  name: 'file',
  doc:
    'Ensure a file has the given content, mode, owner and group (atomic write, optional backup), ' +
    'or that it is absent. Without content only the attributes of an existing file are managed.',
  spec: fileSpec,
  validate(args) {
    if (!args.path.startsWith('/')) {
      return `path must be absolute: ${args.path}`;
    }
    if (args.mode !== undefined) {
      try {
        parseMode(args.mode);
      } catch (e) {
        return (e as Error).message;
      }
    }
    if (args.state === 'absent' && args.content !== undefined) {
      return 'content makes no sense with state: absent';
    }
    if (args.record && !args.record.startsWith('/')) return `record must be an absolute path: ${args.record}`;
    return undefined;
  },
  reads(args) {
    return [{ kind: 'file', path: args.path }, ...(args.record ? [{ kind: 'file' as const, path: args.record }] : [])];
  },
  async plan(args, ctx): Promise<Plan> {
    const path = args.path;
    let mode: number | undefined;
    try {
      mode = parseMode(args.mode);
    } catch (e) {
      return { kind: 'fail', msg: (e as Error).message, hint: "write the mode as a quoted string, e.g. '0644'" };
    }
    const cur = (await ctx.observe.file(path)) as ObservedFile;
    const loaded = await loadRecord<FilesRecord['files'][string]>(ctx.observe, args.record, 'what the files passthru wrote held before');
    if (loaded.fail) return loaded.fail;
    const record = loaded.record;
    /** The record actions after this path's entry becomes `entry` (undefined: forgotten). */
    const recordSteps = async (entry: FileRecordEntry | undefined): Promise<Action[]> =>
      record && args.record ? recordUpdate(ctx.observe, args.record, record, path, entry) : [];

    if (args.state === 'absent' && record) {
      const entry = record.files[path];
      if (!entry) return { kind: 'noop', reason: `${path}: not written by passthru (not in ${args.record}), left alone` };
      const steps = await recordSteps(undefined);
      if (entry.existed) {
        const same = cur.exists && cur.content === entry.content && (entry.mode === undefined || cur.mode === entry.mode);
        if (same) return { kind: 'change', msg: `${path}: holds what it held before passthru already; ${args.record} forgets it`, diff: [], actions: steps };
        return {
          kind: 'change',
          msg: `${path}: put back what it held before passthru wrote it`,
          diff: [fileDiff(path, cur.exists ? cur.content : '', entry.content)],
          actions: [{ kind: 'write', path, content: entry.content, ...(entry.mode !== undefined ? { mode: entry.mode } : {}) }, ...steps],
        };
      }
      if (!cur.exists) return { kind: 'change', msg: `${path} is gone already; ${args.record} forgets it`, diff: [], actions: steps };
      if (cur.isDir) return { kind: 'fail', msg: `${path} is a directory`, hint: 'the file module removes files, not directories' };
      return { kind: 'change', msg: `remove ${path} (passthru created it)`, diff: [fileDiff(path, cur.content, '')], actions: [{ kind: 'delete', path }, ...steps] };
    }

    if (args.state === 'absent') {
      if (!cur.exists) return { kind: 'noop', reason: `${path} already absent` };
      if (cur.isDir) {
        return { kind: 'fail', msg: `${path} is a directory`, hint: 'the file module removes files, not directories' };
      }
      return {
        kind: 'change',
        msg: `remove ${path}`,
        diff: [fileDiff(path, cur.content, '')],
        actions: [{ kind: 'delete', path }],
      };
    }

    if (cur.isDir) {
      return { kind: 'fail', msg: `${path} is a directory`, hint: 'give the path of a file inside it' };
    }
    const want = { mode, owner: args.owner, group: args.group };

    if (!cur.exists) {
      if (args.content === undefined) {
        return {
          kind: 'fail',
          msg: `${path} does not exist and no content was given`,
          hint: "add `content:` (e.g. content: '') to create it",
        };
      }
      return {
        kind: 'change',
        msg: `create ${path}${mode !== undefined ? ` (mode ${fmtMode(mode)})` : ''}`,
        diff: [fileDiff(path, '', args.content)],
        actions: [{ kind: 'write', path, content: args.content, ...defined(want) }, ...(record && !record.files[path] ? await recordSteps({ existed: false }) : [])],
      };
    }

    const contentDiffers = args.content !== undefined && args.content !== cur.content;
    const attrs = attrChanges(cur, want);
    const managed = [
      ...(args.content !== undefined ? ['content'] : []),
      ...(mode !== undefined ? ['mode'] : []),
      ...(args.owner !== undefined ? ['owner'] : []),
      ...(args.group !== undefined ? ['group'] : []),
    ];
    if (!contentDiffers && attrs.notes.length === 0) {
      return { kind: 'noop', reason: `${listWords(managed) || 'file'} already as wanted` };
    }
    const diff: FileDiff[] = [];
    const actions: Action[] = [];
    if (contentDiffers) {
      diff.push(fileDiff(path, cur.content, args.content!));
      actions.push({ kind: 'write', path, content: args.content!, ...defined(want), ...(args.backup ? { backup: true } : {}) });
      if (record && !record.files[path]) actions.push(...(await recordSteps({ existed: true, content: cur.content, ...(cur.mode !== undefined ? { mode: cur.mode } : {}) })));
    } else {
      actions.push({ kind: 'chmod', path, ...attrs.set });
    }
    const what = [...(contentDiffers ? ['content'] : []), ...attrs.notes];
    return { kind: 'change', msg: `${path}: ${what.join(', ')}`, diff, actions };
  },
};

/** Drop undefined fields (keeps actions and their JSON small). */
export function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
