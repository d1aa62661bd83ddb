import { fileDiff, type Module, type Plan, type ArgumentSpec, type InferArgs } from './contract.ts';
import { attrChanges, defined, fmtMode, parseMode } from './file.ts';
import type { ObservedFile } from './observer.ts';

const lineSpec = {
  options: {
    path: { type: 'str', required: true, aliases: ['dest', 'destfile', 'name'], description: 'Absolute path of the file.' },
    line: { type: 'str', aliases: ['value'], description: 'The line (one line, without newline). Required with state: present.' },
    regexp: { type: 'str', aliases: ['regex'], description: 'Regular expression selecting the line(s) to replace or remove.' },
    state: { type: 'str', default: 'present', choices: ['present', 'absent'], description: 'present or absent.' },
    insertafter: { type: 'str', description: 'Regexp after whose last match a new line goes, or EOF (default).' },
    insertbefore: { type: 'str', description: 'Regexp before whose last match a new line goes, or BOF.' },
    firstmatch: { type: 'bool', default: false, description: 'Use the first match (of regexp / insertafter / insertbefore) instead of the last.' },
    create: { type: 'bool', default: false, description: 'Create the file when missing (state: present).' },
    backup: { type: 'bool', default: false, description: 'Keep a timestamped copy of the old file.' },
    mode: { type: 'str', description: "Octal mode ('0644') for a created file, or to enforce." },
  },
  mutually_exclusive: [['insertafter', 'insertbefore']],
  required_if: [
    ['state', 'present', ['line']],
    ['state', 'absent', ['line', 'regexp'], true],
  ],
} as const satisfies ArgumentSpec;
export type LineArgs = InferArgs<typeof lineSpec>;

/** A text cut into lines, remembering whether it ended with a newline and its line ending. */
export interface SplitText {
  lines: string[];
  /** The text ended with a newline (or was empty: new lines then get one). */
  trailing: boolean;
  /** `\r\n` when the first line ends so, else `\n`. */
  eol: '\n' | '\r\n';
}

export function splitLines(text: string): SplitText {
  if (text === '') return { lines: [], trailing: true, eol: '\n' };
  const raw = text.split('\n');
  const trailing = raw[raw.length - 1] === '';
  if (trailing) raw.pop();
  const eol = raw.length && raw[0]!.endsWith('\r') ? '\r\n' : '\n';
  // Lines are kept without their '\r' only for comparison; the '\r' stays in the stored line.
  return { lines: raw, trailing, eol };
}

export function joinLines(t: SplitText): string {
  if (t.lines.length === 0) return '';
  return t.lines.join('\n') + (t.trailing ? '\n' : '');
}

const bare = (l: string) => (l.endsWith('\r') ? l.slice(0, -1) : l);

export interface LineEdit {
  state: 'present' | 'absent';
  line?: string;
  regexp?: RegExp;
  insertafter?: RegExp | 'EOF';
  insertbefore?: RegExp | 'BOF';
  firstmatch?: boolean;
}

/** The result of editing: new text, or why nothing changes. */
export type LineEditResult = { changed: false; reason: string } | { changed: true; text: string; msg: string };

/**
 * Ansible's lineinfile on a text, pure. present+regexp: replace the last matching line (first
 * with firstmatch); no match: the exact line, if already there, is enough, else insert it
 * (after the last match of insertafter, before the last match of insertbefore, BOF, or EOF).
 * absent: remove every line matching regexp (or equal to line). Every other byte is kept.
 */
export function editLines(text: string, e: LineEdit): LineEditResult {
  const t = splitLines(text);
  const pick = (idx: number[]) => (idx.length === 0 ? -1 : e.firstmatch ? idx[0]! : idx[idx.length - 1]!);
  const matching = (re: RegExp) => t.lines.flatMap((l, i) => (re.test(bare(l)) ? [i] : []));
  const withEol = (l: string) => (t.eol === '\r\n' ? `${l}\r` : l);

  if (e.state === 'absent') {
    const gone = t.lines.flatMap((l, i) =>
      (e.regexp ? e.regexp.test(bare(l)) : bare(l) === e.line) ? [i] : [],
    );
    if (gone.length === 0) {
      return { changed: false, reason: e.regexp ? `no line matches /${e.regexp.source}/` : 'line already absent' };
    }
    const drop = new Set(gone);
    const out = { ...t, lines: t.lines.filter((_, i) => !drop.has(i)) };
    const where = gone.map((i) => i + 1).join(', ');
    return { changed: true, text: joinLines(out), msg: `remove ${gone.length === 1 ? 'line' : 'lines'} ${where}` };
  }

  const line = e.line ?? '';
  if (e.regexp) {
    const idx = pick(matching(e.regexp));
    if (idx >= 0) {
      if (bare(t.lines[idx]!) === line) return { changed: false, reason: `line ${idx + 1} already as wanted` };
      const lines = t.lines.slice();
      lines[idx] = t.lines[idx]!.endsWith('\r') ? `${line}\r` : line;
      return { changed: true, text: joinLines({ ...t, lines }), msg: `replace line ${idx + 1}` };
    }
  }
  const exact = t.lines.findIndex((l) => bare(l) === line);
  if (exact >= 0) return { changed: false, reason: `line already present (line ${exact + 1})` };

  let at = t.lines.length;
  if (e.insertbefore === 'BOF') at = 0;
  else if (e.insertbefore instanceof RegExp) {
    const i = pick(matching(e.insertbefore));
    if (i >= 0) at = i;
  } else if (e.insertafter instanceof RegExp) {
    const i = pick(matching(e.insertafter));
    if (i >= 0) at = i + 1;
  }
  const lines = t.lines.slice();
  lines.splice(at, 0, withEol(line));
  const where = at === t.lines.length ? 'at the end' : at === 0 ? 'at the top' : `as line ${at + 1}`;
  return { changed: true, text: joinLines({ ...t, lines }), msg: `insert line ${where}` };
}

function compile(src: string, what: string): RegExp {
  try {
    return new RegExp(src);
  } catch (e) {
    throw new Error(`${what} is not a valid regular expression: ${(e as Error).message}`);
  }
}

function toEdit(args: LineArgs): LineEdit {
  return {
    state: args.state ?? 'present',
    line: args.line,
    regexp: args.regexp !== undefined ? compile(args.regexp, 'regexp') : undefined,
    insertafter:
      args.insertafter === undefined || args.insertafter === 'EOF' ? 'EOF' : compile(args.insertafter, 'insertafter'),
    insertbefore:
      args.insertbefore === undefined
        ? undefined
        : args.insertbefore === 'BOF'
          ? 'BOF'
          : compile(args.insertbefore, 'insertbefore'),
    firstmatch: args.firstmatch,
  };
}

/**
 * `line`: one line present in (or absent from) a file, with Ansible's lineinfile semantics.
 * With `regexp`, the last matching line is replaced (present) or every matching line removed
 * (absent); without it, the exact line is what counts. New lines go after `insertafter`,
 * before `insertbefore`, or at the end. Every other byte of the file is kept, including
 * whether it ends with a newline. A missing file is an error unless `create: true`.
 */
export const lineModule: Module<LineArgs> = {
  name: 'line',
  doc:
    'Ensure a line is present in or absent from a file (Ansible lineinfile): replace the last line ' +
    'matching regexp, or insert after/before a match; the rest of the file is kept byte for byte.',
  spec: lineSpec,
  validate(args) {
    for (const k of ['regexp', 'insertafter', 'insertbefore'] as const) {
      const v = args[k];
      if (v !== undefined && v !== 'EOF' && v !== 'BOF') {
        try {
          compile(v, k);
        } catch (e) {
          return (e as Error).message;
        }
      }
    }
    return undefined;
  },
  reads(args) {
    return [{ kind: 'file', path: args.path }];
  },
  async plan(args, ctx): Promise<Plan> {
    const path = args.path;
    let edit: LineEdit;
    let mode: number | undefined;
    try {
      edit = toEdit(args);
      mode = parseMode(args.mode);
    } catch (e) {
      return { kind: 'fail', msg: (e as Error).message, hint: 'JavaScript regular expression syntax (close to Python re)' };
    }
    const cur = (await ctx.observe.file(path)) as ObservedFile;
    if (cur.isDir) return { kind: 'fail', msg: `${path} is a directory`, hint: 'give the path of a file' };
    if (!cur.exists) {
      if (edit.state === 'absent') return { kind: 'noop', reason: `${path} does not exist` };
      if (!args.create) {
        return {
          kind: 'fail',
          msg: `${path} does not exist`,
          hint: 'check the path, or set `create: true` to create the file',
        };
      }
      const content = `${args.line}\n`;
      return {
        kind: 'change',
        msg: `create ${path} with the line${mode !== undefined ? ` (mode ${fmtMode(mode)})` : ''}`,
        diff: [fileDiff(path, '', content)],
        actions: [{ kind: 'write', path, content, ...defined({ mode }) }],
      };
    }
    const r = editLines(cur.content, edit);
    const attrs = attrChanges(cur, { mode });
    if (!r.changed && attrs.notes.length === 0) return { kind: 'noop', reason: r.reason };
    if (!r.changed) {
      return {
        kind: 'change',
        msg: `${path}: ${attrs.notes.join(', ')}`,
        diff: [],
        actions: [{ kind: 'chmod', path, ...attrs.set }],
      };
    }
    return {
      kind: 'change',
      msg: `${path}: ${[r.msg, ...attrs.notes].join(', ')}`,
      diff: [fileDiff(path, cur.content, r.text)],
      actions: [{ kind: 'write', path, content: r.text, ...defined({ mode }), ...(args.backup ? { backup: true } : {}) }],
    };
  },
};
