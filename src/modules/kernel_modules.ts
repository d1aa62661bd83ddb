/**
 * kernel_modules: modules loaded at boot from a modules-load list (`/etc/modules` by default,
 * or a file in /etc/modules-load.d). Keeps comments, blank lines and order; appends missing
 * modules at the end; removes the lines of modules that must not be listed (e.g. `vfio_virqfd`
 * on kernels >= 6.2, where it makes systemd-modules-load fail). `-` and `_` in names are the
 * same module, as for modprobe. Pair it with an `update-initramfs -u -k all` handler.
 */
import { joinLines, splitLines } from './line.ts';
import { fileDiff, type Action, type Module, type Plan, type ArgumentSpec, type InferArgs } from './contract.ts';
import { loadRecord, recordUpdate, recordArgsProblem, UNDO_DIR, type UndoRecord } from './undo-record.ts';

/** The default record of the module lines kernel_modules added. */
export const MODULES_RECORD = `${UNDO_DIR}/kernel_modules.json`;

const kernelModulesSpec = {
  options: {
    path: { type: 'str', default: '/etc/modules', description: 'The modules-load list.' },
    present: { type: 'list', elements: 'str', default: [], description: 'Modules that must be listed.' },
    absent: { type: 'list', elements: 'str', default: [], description: 'Modules that must not be listed.' },
    state: {
      type: 'str',
      default: 'present',
      choices: ['present', 'absent'],
      description: 'present: apply present/absent. absent: undo, remove exactly the lines the record says this module appended (a module the file listed before is never removed).',
    },
    record: {
      type: 'str',
      default: MODULES_RECORD,
      description: 'JSON file on the host where the modules this module appended are recorded (written after the edit); "" = no record.',
    },
  },
} as const satisfies ArgumentSpec;
export type KernelModulesArgs = InferArgs<typeof kernelModulesSpec>;

const norm = (m: string) => m.trim().replace(/-/g, '_');

/** The module named on a line, or null for comments and blank lines. */
export function moduleOfLine(line: string): string | null {
  const t = line.trim();
  if (t === '' || t.startsWith('#') || t.startsWith(';')) return null;
  return t.split(/\s+/)[0];
}

/** The modules a list names, normalised (`-` = `_`). */
function listedModules(lines: string[]): Set<string> {
  return new Set(lines.map(moduleOfLine).filter((m): m is string => m !== null).map(norm));
}

/** Pure edit of a modules list. Idempotent. */
export function editModulesList(text: string, present: string[], absent: string[]): string {
  const split = splitLines(text);
  const drop = new Set(absent.map(norm));
  const lines = split.lines.filter((l) => {
    const m = moduleOfLine(l);
    return m === null || !drop.has(norm(m));
  });
  const listed = listedModules(lines);
  for (const m of present) {
    if (!listed.has(norm(m))) {
      lines.push(m);
      listed.add(norm(m));
    }
  }
  // Unchanged content keeps its exact bytes (a missing final newline stays missing).
  const same = lines.length === split.lines.length && lines.every((l, i) => l === split.lines[i]);
  return same ? text : joinLines({ ...split, lines, trailing: true });
}

/** What the record keeps per list: the modules appended, whether the file was created, whether it lacked a final newline. */
export interface ModulesRecordEntry {
  added: string[];
  created?: boolean;
  noFinalNewline?: boolean;
}
export type ModulesRecord = UndoRecord<ModulesRecordEntry>;

/**
 * Undo of a record on a modules list: the lines of the recorded modules go (comments, order and
 * everything else stay); a file it created and that holds nothing else is deleted (null); a final
 * newline it added comes off again.
 */
export function undoModulesList(text: string, e: ModulesRecordEntry): string | null {
  let after = editModulesList(text, [], e.added);
  if (after === text) return text;
  if (e.created && after.trim() === '') return null;
  if (e.noFinalNewline && after.endsWith('\n')) after = after.slice(0, -1);
  return after;
}

export const kernelModulesModule: Module<KernelModulesArgs> = {
  name: 'kernel_modules',
  doc:
    'Modules to load at boot, listed one a line in /etc/modules (or a modules-load.d file): appends the missing ones, removes the ones ' +
    'that must not be listed, keeps comments and order. `-` and `_` are the same name.',
  spec: kernelModulesSpec,
  validate(args) {
    for (const m of [...args.present, ...args.absent]) {
      if (!/^[A-Za-z0-9_-]+$/.test(m)) return `kernel_modules: '${m}' is not a module name`;
    }
    const both = args.present.find((m) => args.absent.map(norm).includes(norm(m)));
    if (both) return `kernel_modules: '${both}' is both present and absent`;
    return recordArgsProblem('kernel_modules', args, { given: args.present.length > 0 || args.absent.length > 0, names: 'present and absent' }, 'the modules this module appended');
  },
  reads: (args) => [{ kind: 'file', path: args.path }, ...(args.record ? [{ kind: 'file' as const, path: args.record }] : [])],
  async plan(args, ctx): Promise<Plan> {
    const f = await ctx.observe.file(args.path);
    const before = f.exists ? f.content : '';
    const loaded = await loadRecord<ModulesRecord['files'][string]>(ctx.observe, args.record, 'the modules passthru listed');
    if (loaded.fail) return loaded.fail;
    const record = loaded.record;
    const recorded = record?.files[args.path];

    if (args.state === 'absent') {
      if (!record || !recorded) return { kind: 'noop', reason: `${args.path}: no module recorded as listed by passthru` };
      const steps = await recordUpdate(ctx.observe, args.record, record, args.path, undefined);
      const after = f.exists ? undoModulesList(before, recorded) : before;
      if (after === before) {
        return { kind: 'change', msg: `${args.path}: the recorded modules are gone already; ${args.record} forgets them`, diff: [], actions: steps };
      }
      const gone = recorded.added.join(', ');
      return {
        kind: 'change',
        msg: `${args.path}: ${recorded.added.map((m) => `-${m}`).join(' ')}${after === null ? ' (the file passthru created is removed)' : ''}`,
        diff: [fileDiff(args.path, before, after ?? '')],
        actions: [after === null ? { kind: 'delete', path: args.path } : { kind: 'write', path: args.path, content: after }, ...steps],
        data: { removed: gone },
      };
    }

    const after = editModulesList(before, args.present, args.absent);
    if (after === before && (f.exists || args.present.length === 0)) {
      return { kind: 'noop', reason: `${args.path} already lists ${args.present.join(', ') || 'what it should'}${args.absent.length ? ` and not ${args.absent.join(', ')}` : ''}` };
    }
    const had = listedModules(splitLines(before).lines);
    const added = args.present.filter((m) => !had.has(norm(m)));
    const removed = args.absent.filter((m) => had.has(norm(m)));
    let steps: Action[] = [];
    if (record) {
      const prior = recorded ?? { added: [], ...(f.exists ? {} : { created: true }), ...(f.exists && before !== '' && !before.endsWith('\n') ? { noFinalNewline: true } : {}) };
      const drop = new Set(removed.map(norm));
      const entry = { ...prior, added: [...prior.added.filter((m) => !drop.has(norm(m))), ...added] };
      steps = await recordUpdate(ctx.observe, args.record, record, args.path, entry.added.length ? entry : undefined);
    }
    return {
      kind: 'change',
      msg: `${args.path}: ${[...added.map((m) => `+${m}`), ...removed.map((m) => `-${m}`)].join(' ')}`,
      diff: [fileDiff(args.path, before, after)],
      actions: [{ kind: 'write', path: args.path, content: after, mode: f.exists ? undefined : 0o644 }, ...steps],
    };
  },
};
