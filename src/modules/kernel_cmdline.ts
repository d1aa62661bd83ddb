/**
 * kernel_cmdline: add, replace or remove kernel parameters by key, in the file the host's
 * bootloader actually reads: `GRUB_CMDLINE_LINUX_DEFAULT` in /etc/default/grub (or in the last
 * drop-in of /etc/default/grub.d that sets it, since drop-ins are sourced after it and win), or
 * the single line of /etc/kernel/cmdline for systemd-boot (proxmox-boot-tool).
 *
 * Everything else in the file stays byte for byte: other parameters, their order, the quoting
 * style, comments. Replacing is by key (`hugepages=8` replaces `hugepages=4`); removing takes a
 * key (all its occurrences) or an exact `key=value`. A GRUB defaults file is sourced by
 * update-grub as shell, so the edited text is checked twice before it is written: here (quotes
 * and command substitutions balanced, so check mode already refuses a broken result) and on
 * the host with `sh -n` fed the new text on stdin, as the action right before the atomic write
 * (no temp file on the host; a failure stops the write). The old file is kept as a backup.
 * Pair it with a handler running `update-grub` or `proxmox-boot-tool refresh`.
 */
import type { Facts } from '../facts/types.ts';
import { fileDiff, type Action, type Module, type Plan, type Read, type ArgumentSpec, type InferArgs } from './contract.ts';
import { parseRecord, recordActions, UNDO_DIR, type UndoRecord } from './undo-record.ts';

/** The default record of the parameters kernel_cmdline added. */
export const CMDLINE_RECORD = `${UNDO_DIR}/kernel_cmdline.json`;

const kernelCmdlineSpec = {
  options: {
    add: { type: 'list', elements: 'str', default: [], description: 'Parameters to have: `key=value` or a bare flag. An existing parameter with the same key is replaced.' },
    remove: { type: 'list', elements: 'str', default: [], description: 'Parameters to drop: a key (every occurrence) or an exact `key=value`.' },
    bootloader: {
      type: 'str',
      default: 'auto',
      choices: ['auto', 'grub', 'grub-bios', 'grub-uefi', 'systemd-boot'],
      description: 'Which file to edit; auto = the bootloader detected by the facts probe.',
    },
    grub_file: { type: 'str', default: '/etc/default/grub', description: 'The GRUB defaults file; its drop-ins are in `<grub_file>.d/*.cfg`.' },
    cmdline_file: { type: 'str', default: '/etc/kernel/cmdline', description: 'The systemd-boot command line file (proxmox-boot-tool).' },
    state: {
      type: 'str',
      default: 'present',
      choices: ['present', 'absent'],
      description: 'present: apply add/remove. absent: undo, remove exactly the parameters the record says this module added (and put back a value it replaced); never one that was there before.',
    },
    record: {
      type: 'str',
      default: CMDLINE_RECORD,
      description: 'JSON file on the host where the parameters this module added are recorded (written after the edit, check mode writes nothing); "" = no record (what is added then can never be undone).',
    },
  },
} as const satisfies ArgumentSpec;
export type KernelCmdlineArgs = InferArgs<typeof kernelCmdlineSpec>;

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
/**
 * Backups of the boot configuration kept per file: enough to step back a few runs, few enough
 * that /etc/default (or the ESP-side /etc/kernel) does not fill with copies.
 */
export const KEEP_BACKUPS = 5;

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

const SAFE_PARAM = /^[A-Za-z0-9_.,:\/+@=-]+$/;

export function resolveBootloader(arg: KernelCmdlineArgs['bootloader'], facts: Facts): 'grub' | 'systemd-boot' | 'unknown' {
  const b = arg === 'auto' ? facts.bootloader : arg;
  if (b === 'systemd-boot') return 'systemd-boot';
  if (b === 'grub' || b === 'grub-bios' || b === 'grub-uefi') return 'grub';
  return 'unknown';
}

/**
 * The read that lists the GRUB drop-ins that set GRUB_CMDLINE_LINUX_DEFAULT (one path a line, in
 * the order the shell sources them), so that only the one that wins has to be read.
 */
export function dropInListCommand(grubFile: string): string {
  const dir = `${grubFile}.d`;
  const sets = `grep -qE '^[[:space:]]*(export[[:space:]]+)?GRUB_CMDLINE_LINUX_DEFAULT=' "$f"`;
  return `for f in ${dir.replace(/[^A-Za-z0-9_./-]/g, '')}/*.cfg; do [ -f "$f" ] && ${sets} && printf '%s\\n' "$f"; done; true`;
}

export const kernelCmdlineModule: Module<KernelCmdlineArgs> = {
  name: 'kernel_cmdline',
  doc:
    'Add, replace (by key) or remove kernel parameters in the file the bootloader in use reads: GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub ' +
    '(or the last /etc/default/grub.d/*.cfg drop-in that sets it) for GRUB, /etc/kernel/cmdline for systemd-boot. Keeps every other parameter, ' +
    'the quoting and the rest of the file; checks the GRUB file as shell (here and with `sh -n` on the host) before the atomic write; keeps the last 5 backups (taken only when the content changes).',
  spec: kernelCmdlineSpec,
  validate(args) {
    for (const p of [...args.add, ...args.remove]) {
      if (!SAFE_PARAM.test(p)) return `kernel_cmdline: '${p}' is not a plain kernel parameter (letters, digits and _ . , : / + @ = - only)`;
    }
    const keys = args.add.map(paramKey);
    const dup = keys.find((k, i) => keys.indexOf(k) !== i);
    if (dup) return `kernel_cmdline: add lists the key '${dup}' twice`;
    const clash = args.remove.find((r) => keys.includes(paramKey(r)) && !r.includes('='));
    if (clash) return `kernel_cmdline: '${clash}' is both added and removed`;
    if (args.state === 'absent' && (args.add.length > 0 || args.remove.length > 0)) {
      return 'kernel_cmdline: state: absent removes what the record lists; add and remove make no sense with it';
    }
    if (args.state === 'absent' && !args.record) return 'kernel_cmdline: state: absent needs a record (the parameters this module added)';
    if (args.record && !args.record.startsWith('/')) return `kernel_cmdline: record must be an absolute path, found '${args.record}'`;
    return undefined;
  },
  reads(args, facts) {
    const reads: Read[] = [];
    const b = resolveBootloader(args.bootloader, facts);
    if (b === 'systemd-boot') reads.push({ kind: 'file', path: args.cmdline_file });
    if (b === 'grub') reads.push({ kind: 'file', path: args.grub_file }, { kind: 'cmd', command: dropInListCommand(args.grub_file) });
    if (args.record) reads.push({ kind: 'file', path: args.record });
    return reads;
  },
  async plan(args, ctx): Promise<Plan> {
    const b = resolveBootloader(args.bootloader, ctx.facts);
    const undo = args.state === 'absent';
    if (b === 'unknown') {
      return {
        kind: 'fail',
        msg: `expected a known bootloader (grub or systemd-boot), found '${ctx.facts.bootloader}'`,
        hint: `evidence: ${ctx.facts.bootloaderEvidence.join('; ') || 'none'}. Check \`proxmox-boot-tool status\` / \`efibootmgr -v\`, then set the host variable bootloader: grub | systemd-boot`,
      };
    }
    // The file that holds the command line, its text, its current line, and how to edit it.
    let path: string;
    let before: string;
    let line: string;
    let apply: (edit: CmdlineEdit) => string;
    if (b === 'systemd-boot') {
      path = args.cmdline_file;
      const f = await ctx.observe.file(path);
      if (!f.exists) {
        if (undo) return { kind: 'noop', reason: `${path} does not exist: nothing to undo` };
        return {
          kind: 'fail',
          msg: `expected ${path} (systemd-boot reads the kernel command line from it), found no such file`,
          hint: 'on a proxmox-boot-tool host it holds e.g. `root=ZFS=rpool/ROOT/pve-1 boot=zfs`; if the host boots GRUB, set bootloader: grub',
        };
      }
      const text = f.content;
      before = text;
      const nl = text.indexOf('\n');
      line = nl < 0 ? text : text.slice(0, nl);
      apply = (edit) => {
        const edited = editCmdline(line, edit);
        return edited === line ? text : edited + (nl < 0 ? '\n' : text.slice(nl));
      };
    } else {
      const main = await ctx.observe.file(args.grub_file);
      const list = await ctx.observe.cmd(dropInListCommand(args.grub_file));
      const setting = list.stdout.split('\n').map((l) => l.trim()).filter(Boolean).sort();
      path = args.grub_file;
      before = main.content;
      const last = setting[setting.length - 1]; // sourced last, so its value wins
      if (last) {
        const f = await ctx.observe.file(last);
        if (f.exists && setsVar(f.content)) {
          path = last;
          before = f.content;
        }
      }
      if (path === args.grub_file && !main.exists) {
        if (undo) return { kind: 'noop', reason: `${path} does not exist: nothing to undo` };
        return { kind: 'fail', msg: `expected ${path} (GRUB reads GRUB_CMDLINE_LINUX_DEFAULT from it), found no such file`, hint: 'install grub, or set bootloader: systemd-boot if the host boots systemd-boot' };
      }
      const text = before;
      try {
        line = grubValue(text) ?? '';
      } catch (e) {
        return { kind: 'fail', msg: `expected ${path} to be valid shell, found: ${(e as Error).message}`, hint: `fix ${path} by hand (it is sourced by update-grub)` };
      }
      apply = (edit) => editGrubDefault(text, edit);
    }

    let record: CmdlineRecord | undefined;
    if (args.record) {
      try {
        record = parseRecord(await ctx.observe.file(args.record));
      } catch (e) {
        return { kind: 'fail', msg: `${args.record}: ${(e as Error).message}`, hint: `it records the kernel parameters passthru added; move it aside to start a new record (an undo then removes none of the earlier ones)` };
      }
    }
    const recorded = record?.files[path] ?? {};
    const edit: CmdlineEdit = undo ? undoEdit(line, recorded) : { add: args.add, remove: args.remove };
    const summary = undo
      ? [...(edit.remove ?? []).map((r) => `-${r}`), ...(edit.add ?? []).map((a) => `${a} (back)`)].join(' ')
      : [...args.add.map((a) => `+${a}`), ...args.remove.map((r) => `-${r}`)].join(' ');
    const after = apply(edit);
    if (after !== before && b === 'grub') {
      const bad = checkShellSyntax(after);
      if (bad) return { kind: 'fail', msg: `expected the edited ${path} to parse as shell, found ${bad}`, hint: `nothing was written; check ${path} by hand` };
    }
    const data = { file: path, bootloader: b, running: ctx.facts.cmdlineRunning, params: args.add, ...(undo ? { undone: edit } : {}) };

    // The record after this edit (undo: the file's entries go; add: what this edit added).
    let recordSteps: Action[] = [];
    if (record && args.record) {
      const files = { ...record.files };
      if (undo) delete files[path];
      else if (after !== before) {
        const next = recordEdit(line, edit, recorded);
        if (Object.keys(next).length) files[path] = next;
        else delete files[path];
      }
      recordSteps = recordActions(args.record, await ctx.observe.file(args.record), { version: 1, files });
    }
    if (after === before && recordSteps.length === 0) {
      return { kind: 'noop', reason: undo ? `${path}: no parameter recorded as added by passthru` : `${path} already has ${summary || 'nothing to change'}`, data };
    }
    if (after === before) {
      // Undo of entries the user already took off by hand: only the record goes.
      return { kind: 'change', msg: `${path}: the recorded parameters are gone already; ${args.record} forgets them`, diff: [], actions: recordSteps, data };
    }
    const actions: Action[] = [
      ...(b === 'grub' ? [{ kind: 'exec' as const, command: 'sh -n', stdin: after }] : []),
      { kind: 'write' as const, path, content: after, backup: true, keepBackups: KEEP_BACKUPS },
      ...recordSteps,
    ];
    return { kind: 'change', msg: `${path}: ${summary}`, diff: [fileDiff(path, before, after)], actions, data };
  },
};
