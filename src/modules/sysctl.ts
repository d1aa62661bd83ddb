import { fileDiff, type Action, type Module, type Plan, type ArgumentSpec, type InferArgs } from './contract.ts';
import type { FileDiff } from '../model/types.ts';
import { cmd } from '../transport/connection.ts';
import { joinLines, splitLines } from './line.ts';
import type { ObservedFile } from './observer.ts';

export const DEFAULT_SYSCTL_FILE = '/etc/sysctl.d/99-passthru.conf';

const sysctlSpec = {
  options: {
    name: { type: 'str', required: true, aliases: ['key'], description: 'The key, e.g. vm.nr_hugepages (`/` separators accepted).' },
    value: { type: 'raw', aliases: ['val'], description: 'The value (required with state: present).' },
    file: { type: 'str', default: DEFAULT_SYSCTL_FILE, aliases: ['sysctl_file'], description: 'sysctl.d file holding the setting.' },
    reload: { type: 'bool', default: true, description: 'Apply the file when the running value differs.' },
    state: { type: 'str', default: 'present', choices: ['present', 'absent'], description: 'present or absent (absent removes the line only).' },
  },
  required_if: [['state', 'present', ['value']]],
} as const satisfies ArgumentSpec;
export type SysctlArgs = InferArgs<typeof sysctlSpec>;

/** `net/ipv4/ip_forward` → `net.ipv4.ip_forward` */
export function normKey(k: string): string {
  return k.trim().replace(/\//g, '.');
}

/** Values compare with whitespace runs collapsed (`4096\t87380` = `4096 87380`); booleans as 1/0. */
export function normValue(v: unknown): string {
  if (v === true) return '1';
  if (v === false) return '0';
  return String(v ?? '').trim().replace(/\s+/g, ' ');
}

/** Indexes of the lines setting `key` (comments and other keys ignored). */
function keyLines(lines: string[], key: string): number[] {
  const out: number[] = [];
  lines.forEach((l, i) => {
    const m = /^\s*-?\s*([^=#;\s][^=]*?)\s*=(.*)$/.exec(l);
    if (m && normKey(m[1]!) === key) out.push(i);
  });
  return out;
}

/** The value the file gives the key (last setting wins, as sysctl reads it), or undefined. */
export function fileValue(content: string, key: string): string | undefined {
  const { lines } = splitLines(content);
  const idx = keyLines(lines, key);
  if (!idx.length) return undefined;
  const l = lines[idx[idx.length - 1]!]!;
  return normValue(l.slice(l.indexOf('=') + 1));
}

/**
 * The file's new content with `key = value` (the last setting replaced, or a line appended),
 * or without any setting of the key (absent). Other lines are kept as they are.
 */
export function setKey(content: string, key: string, value: string | undefined): string {
  const t = splitLines(content);
  const idx = keyLines(t.lines, key);
  if (value === undefined) {
    const drop = new Set(idx);
    return joinLines({ ...t, lines: t.lines.filter((_, i) => !drop.has(i)) });
  }
  // Already set to this value by the last setting (however it is spelled): keep the file.
  if (idx.length && fileValue(content, key) === normValue(value)) return content;
  const line = `${key} = ${value}`;
  const lines = t.lines.slice();
  if (idx.length) lines[idx[idx.length - 1]!] = line;
  else lines.push(line);
  // A file we append to keeps its newline convention, but a new or newline-ended file ends with one.
  return joinLines({ ...t, lines, trailing: t.trailing || t.lines.length === 0 });
}

/**
 * `sysctl`: a kernel parameter set persistently (a `name = value` line in a sysctl.d file,
 * other lines kept) and, with `reload` (default), at runtime: when the running value
 * (`sysctl -n`) differs, the file is applied with `sysctl -p <file>`, which loads just this
 * file (not `--system`, which would re-apply every other drop-in as a side effect).
 */
export const sysctlModule: Module<SysctlArgs> = {
  name: 'sysctl',
  doc:
    'Set a kernel parameter persistently (name = value in a sysctl.d file) and, when the running ' +
    'value differs, apply that file with sysctl -p.',
  spec: sysctlSpec,
  validate(args) {
    if (!/^[A-Za-z0-9_.\/*-]+$/.test(args.name)) {
      return `not a sysctl key: ${args.name}`;
    }
    if (args.value !== undefined && /[\r\n]/.test(String(args.value))) return 'value must be on one line';
    return undefined;
  },
  reads(args) {
    return [
      { kind: 'file', path: args.file ?? DEFAULT_SYSCTL_FILE },
      ...((args.reload ?? true) && args.state === 'present'
        ? [{ kind: 'cmd' as const, command: cmd('sysctl', '-n', normKey(args.name)) }]
        : []),
    ];
  },
  async plan(args, ctx): Promise<Plan> {
    const key = normKey(args.name);
    const file = args.file ?? DEFAULT_SYSCTL_FILE;
    const present = args.state === 'present';
    const value = present ? normValue(args.value) : undefined;
    const cur = (await ctx.observe.file(file)) as ObservedFile;
    if (cur.isDir) return { kind: 'fail', msg: `${file} is a directory`, hint: 'file: names the sysctl.d file to write' };

    const diff: FileDiff[] = [];
    const actions: Action[] = [];
    const notes: string[] = [];
    const after = setKey(cur.content, key, value);
    if (after !== cur.content) {
      diff.push(fileDiff(file, cur.content, after));
      actions.push({ kind: 'write', path: file, content: after });
      notes.push(present ? `${file}: ${key} = ${value}` : `${file}: remove ${key}`);
    }

    let running: string | undefined;
    if (present && (args.reload ?? true)) {
      const r = await ctx.observe.cmd(cmd('sysctl', '-n', key));
      if (r.code !== 0) {
        return {
          kind: 'fail',
          msg: `sysctl -n ${key} failed: ${r.stderr.trim() || `exit ${r.code}`}`,
          hint: 'check the key name (`sysctl -a` lists them), or the module that provides it may not be loaded',
        };
      }
      running = normValue(r.stdout);
      if (running !== value) {
        actions.push({ kind: 'exec', command: cmd('sysctl', '-p', file) });
        notes.push(`running ${key}: ${running} → ${value}`);
      }
    }
    const data = { key, value, running, file };
    if (!actions.length) {
      return {
        kind: 'noop',
        reason: present
          ? `${key} = ${value} already in ${file}${running !== undefined ? ' and running' : ''}`
          : `${key} not set in ${file}`,
        data,
      };
    }
    return { kind: 'change', msg: notes.join('; '), diff, actions, data };
  },
};
