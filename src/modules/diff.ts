/**
 * Display of planned file changes: unified diffs (`--diff`, the JSON report), a short
 * `+n -m` summary (colour is the reporters', src/report/colour.ts).
 */
import { createTwoFilesPatch } from 'diff';
import type { FileDiff } from '../model/types.ts';

/**
 * A unified diff labelled like git's (`a/etc/default/grub`, `b/etc/default/grub`: the
 * absolute path without its leading slash); '' when before and after are equal.
 */
export function unifiedDiff(d: FileDiff, context = 3): string {
  if (d.before === d.after) return '';
  const rel = d.path.replace(/^\/+/, '');
  const patch = createTwoFilesPatch(`a/${rel}`, `b/${rel}`, d.before, d.after, undefined, undefined, {
    context,
  });
  // jsdiff starts with a line of '=' (its Index: header without the Index); drop it.
  return patch.replace(/^=+\n/, '');
}

export interface DiffStat {
  added: number;
  removed: number;
  /** `+3 -1` */
  text: string;
}

/** Lines added and removed. */
export function diffStat(d: FileDiff): DiffStat {
  let added = 0;
  let removed = 0;
  for (const line of unifiedDiff(d, 0).split('\n')) {
    if (line.startsWith('+++') || line.startsWith('---')) continue;
    if (line.startsWith('+')) added++;
    else if (line.startsWith('-')) removed++;
  }
  return { added, removed, text: `+${added} -${removed}` };
}
