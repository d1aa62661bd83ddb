/**
 * The text side of kernel_cmdline, pure: a kernel command line edited by key with everything
 * else kept byte for byte (tokenizer, editCmdline), the GRUB defaults file's assignment found and
 * rewritten in its own quoting (editGrubDefault, grubValue), the undo record of what an edit
 * added or replaced (recordEdit, undoEdit), and the shell syntax check of a GRUB file.
 */
import type { UndoRecord } from './undo-record.ts';

export interface CmdlineEdit {
  add?: string[];
  remove?: string[];
}

/** The key of a parameter: what is left of the first `=`. */
export const paramKey = (p: string): string => {
  const i = p.indexOf('=');
  return i < 0 ? p : p.slice(0, i);
};

interface Tok {
  text: string;
  /** Whitespace before it. */
  sep: string;
}

function tokenize(line: string): { toks: Tok[]; tail: string } {
  const toks: Tok[] = [];
  const re = /(\s*)((?:[^\s"]+|"[^"]*")+)/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(line))) {
    toks.push({ sep: m[1], text: m[2] });
    last = re.lastIndex;
  }
  return { toks, tail: line.slice(last) };
}

/**
 * Edit one kernel command line. Idempotent: applying the result again changes nothing, and a
 * line that already holds every wanted parameter comes back identical (same spacing).
 */
export function editCmdline(line: string, edit: CmdlineEdit): string {
  const { toks, tail } = tokenize(line);
  let list = toks.slice();
  for (const r of edit.remove ?? []) {
    const exact = r.includes('=');
    list = list.filter((t) => (exact ? t.text !== r : paramKey(t.text) !== r));
  }
  for (const a of edit.add ?? []) {
    if (list.some((t) => t.text === a)) continue;
    const key = paramKey(a);
    let idx = -1;
    list.forEach((t, i) => {
      if (paramKey(t.text) === key) idx = i;
    });
    if (idx >= 0) list[idx] = { ...list[idx], text: a };
    else list.push({ sep: list.length === 0 ? '' : ' ', text: a });
  }
  if (list.length === toks.length && list.every((t, i) => t === toks[i])) return line;
  // The first parameter keeps the line's leading whitespace; removed ones take theirs along.
  const lead = toks[0]?.sep ?? '';
  return list.map((t, i) => (i === 0 ? lead : t.sep || ' ') + t.text).join('') + tail;
}

const ASSIGN = (name: string) => new RegExp(`^([ \\t]*(?:export[ \\t]+)?${name}=)`, 'gm');

/** Does this shell text assign the variable (at the start of a line)? */
export function setsVar(text: string, name = 'GRUB_CMDLINE_LINUX_DEFAULT'): boolean {
  return ASSIGN(name).test(text);
}

/**
 * Edit the value of `GRUB_CMDLINE_LINUX_DEFAULT` (the last assignment, which wins) inside a
 * GRUB defaults file, keeping its quoting style (`"…"`, `'…'` or bare) and the rest of the file
 * byte for byte. A file without the assignment gets one appended.
 */
export function editGrubDefault(text: string, edit: CmdlineEdit, name = 'GRUB_CMDLINE_LINUX_DEFAULT'): string {
  const v = locateGrubValue(text, name);
  if (!v) {
    const value = editCmdline('', edit);
    if (value === '') return text;
    const sep = text === '' || text.endsWith('\n') ? '' : '\n';
    return `${text}${sep}${name}="${value}"\n`;
  }
  let { open, close } = v;
  const edited = editCmdline(v.inner, edit);
  if (edited === v.inner) return text;
  if (open === '' && /\s/.test(edited)) open = close = '"';
  return text.slice(0, v.start) + open + edited + close + text.slice(v.end);
}

/** The value of the last assignment of `name` (without its quotes), or null when none. Throws on an unterminated quote. */
export function grubValue(text: string, name = 'GRUB_CMDLINE_LINUX_DEFAULT'): string | null {
  return locateGrubValue(text, name)?.inner ?? null;
}

function locateGrubValue(text: string, name: string): { start: number; end: number; inner: string; open: string; close: string } | null {
  const matches = [...text.matchAll(ASSIGN(name))];
  if (matches.length === 0) return null;
  const m = matches[matches.length - 1];
  const start = (m.index ?? 0) + m[1].length;
  const q = text[start];
  if (q === '"' || q === "'") {
    let i = start + 1;
    while (i < text.length && text[i] !== q) i += q === '"' && text[i] === '\\' ? 2 : 1;
    if (i >= text.length) throw new Error(`${name}: unterminated ${q === '"' ? 'double' : 'single'} quote`);
    return { start, end: i + 1, inner: text.slice(start + 1, i), open: q, close: q };
  }
  const rest = /^[^\s;#]*/.exec(text.slice(start))![0];
  return { start, end: start + rest.length, inner: rest, open: '', close: '' };
}

// ---------------------------------------------------------------- the undo record

/** What the record keeps per parameter key: the value this module set, and the user's token it replaced (null: it added one). */
export interface CmdlineRecordEntry {
  value: string;
  orig: string | null;
}
/** Per edited file: key → entry. */
export type CmdlineRecord = UndoRecord<Record<string, CmdlineRecordEntry>>;

/**
 * The record after adding `add` and removing `remove` on a line: a key already recorded keeps
 * its original; a parameter already on the line exactly is the user's and is not recorded; a key
 * on the line with another value is recorded with that token as the original; a new one with
 * none. Removed keys (or exact values) leave the record.
 */
export function recordEdit(line: string, edit: CmdlineEdit, prior: Record<string, CmdlineRecordEntry>): Record<string, CmdlineRecordEntry> {
  const toks = tokenize(line).toks.map((t) => t.text);
  const out: Record<string, CmdlineRecordEntry> = { ...prior };
  for (const r of edit.remove ?? []) {
    for (const [k, e] of Object.entries(out)) if (r.includes('=') ? e.value === r : k === r) delete out[k];
  }
  for (const a of edit.add ?? []) {
    const k = paramKey(a);
    if (out[k]) out[k] = { ...out[k], value: a };
    else if (toks.includes(a)) continue;
    else {
      const same = toks.filter((t) => paramKey(t) === k);
      out[k] = { value: a, orig: same.length ? same[same.length - 1] : null };
    }
  }
  return out;
}

/**
 * The edit that undoes the recorded entries on a line: a parameter it added is removed, a value
 * it replaced is put back. An entry whose value is no longer on the line (changed or removed by
 * hand since) is left alone.
 */
export function undoEdit(line: string, entries: Record<string, CmdlineRecordEntry>): CmdlineEdit {
  const toks = tokenize(line).toks.map((t) => t.text);
  const edit: Required<CmdlineEdit> = { add: [], remove: [] };
  for (const e of Object.values(entries)) {
    if (!toks.includes(e.value)) continue;
    if (e.orig === null) edit.remove.push(e.value);
    else edit.add.push(e.orig);
  }
  return edit;
}

/**
 * A cheap POSIX sh lexer: are quotes, `$(…)`, `${…}` and backquotes balanced? Returns an error
 * message or null. Not a parser: `sh -n` on the host has the last word.
 */
export function checkShellSyntax(text: string): string | null {
  let state: 'none' | 'single' | 'double' | 'back' = 'none';
  const stack: string[] = [];
  let line = 1;
  let openLine = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (state === 'single') {
      if (c === "'") state = 'none';
      continue;
    }
    if (c === '\\') {
      i++;
      if (text[i] === '\n') line++;
      continue;
    }
    if (state === 'double') {
      if (c === '"') state = 'none';
      else if (c === '$' && (text[i + 1] === '(' || text[i + 1] === '{')) {
        stack.push(text[i + 1] === '(' ? ')' : '}');
        i++;
      } else if (stack.length > 0 && c === stack[stack.length - 1]) stack.pop();
      continue;
    }
    if (c === '#' && (i === 0 || /[\s;&|()]/.test(text[i - 1]))) {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
      continue;
    }
    if (c === "'") {
      state = 'single';
      openLine = line;
    } else if (c === '"') {
      state = 'double';
      openLine = line;
    } else if (c === '`') {
      if (state === 'back') state = 'none';
      else {
        state = 'back';
        openLine = line;
      }
    } else if (c === '$' && (text[i + 1] === '(' || text[i + 1] === '{')) {
      stack.push(text[i + 1] === '(' ? ')' : '}');
      i++;
    } else if (stack.length > 0 && c === stack[stack.length - 1]) stack.pop();
  }
  if (state === 'single') return `unterminated single quote opened on line ${openLine}`;
  if (state === 'double') return `unterminated double quote opened on line ${openLine}`;
  if (state === 'back') return `unterminated backquote opened on line ${openLine}`;
  if (stack.length > 0) return `unbalanced '$${stack[stack.length - 1] === ')' ? '(' : '{'}'`;
  return null;
}
