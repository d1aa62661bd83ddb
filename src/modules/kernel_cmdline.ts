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
import { loadRecord, recordUpdate, recordArgsProblem, UNDO_DIR } from './undo-record.ts';
import { checkShellSyntax, editCmdline, editGrubDefault, grubValue, paramKey, recordEdit, setsVar, undoEdit, type CmdlineEdit, type CmdlineRecord } from './cmdline-text.ts';

export * from './cmdline-text.ts';

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

/**
 * Backups of the boot configuration kept per file: enough to step back a few runs, few enough
 * that /etc/default (or the ESP-side /etc/kernel) does not fill with copies.
 */
export const KEEP_BACKUPS = 5;

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
    return recordArgsProblem('kernel_cmdline', args, { given: args.add.length > 0 || args.remove.length > 0, names: 'add and remove' }, 'the parameters this module added');
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

    const loaded = await loadRecord<CmdlineRecord['files'][string]>(ctx.observe, args.record, 'the kernel parameters passthru added');
    if (loaded.fail) return loaded.fail;
    const record = loaded.record;
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
      let entry = undo ? undefined : record.files[path];
      if (!undo && after !== before) {
        const next = recordEdit(line, edit, recorded);
        entry = Object.keys(next).length ? next : undefined;
      }
      recordSteps = await recordUpdate(ctx.observe, args.record, record, path, entry);
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
