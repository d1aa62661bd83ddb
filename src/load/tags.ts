/**
 * Tag selection with Ansible's semantics. A task's tags are what is written on the task plus
 * the tags of the role reference (and of its stage) that brought it in; nothing is implied.
 *
 * - No `--tags`: everything runs except tasks tagged `never`.
 * - `--tags a,b`: tasks with tag a or b, plus tasks tagged `always`.
 * - `--tags all`: everything except `never`; `--tags tagged`: tasks with at least one tag
 *   (not `never`); `--tags untagged`: tasks without tags.
 * - `never`: runs only when one of its tags (or `never` itself) is asked for.
 * - `--skip-tags` wins over `--tags`; `always` tasks are skipped only by `--skip-tags always`
 *   (or by one of their other tags); `--skip-tags all` skips all but `always`.
 */
import type { Playbook } from '../model/types.ts';

export const SPECIAL_TAGS = ['all', 'always', 'never', 'tagged', 'untagged'] as const;

export function taskSelected(taskTags: string[], sel: { tags?: string[]; skipTags?: string[] }): boolean {
  const tags = new Set(taskTags);
  const only = sel.tags && sel.tags.length ? sel.tags : ['all'];
  const skip = sel.skipTags ?? [];
  const untagged = tags.size === 0;

  let run: boolean;
  if (tags.has('always')) run = true;
  else if (only.includes('all') && !tags.has('never')) run = true;
  else if (only.some((t) => tags.has(t))) run = true;
  else if (only.includes('tagged') && !untagged && !tags.has('never')) run = true;
  else if (only.includes('untagged') && untagged) run = true;
  else run = false;

  if (run && skip.length) {
    if (skip.includes('all')) {
      if (!tags.has('always') || skip.includes('always')) run = false;
    } else if (skip.some((t) => tags.has(t))) run = false;
    else if (skip.includes('tagged') && !untagged) run = false;
    else if (skip.includes('untagged') && untagged) run = false;
  }
  return run;
}

/** Every tag written in the playbook and its roles (tasks, handlers, gates, role references), sorted. */
export function knownTags(pb: Playbook): string[] {
  const out = new Set<string>();
  for (const stage of pb.stages) for (const ref of stage.roles) for (const t of ref.tags) out.add(t);
  for (const role of pb.roles.values()) {
    for (const task of [...role.tasks, ...role.handlers, ...role.gates]) for (const t of task.tags) out.add(t);
  }
  for (const s of SPECIAL_TAGS) out.delete(s);
  return [...out].sort();
}

/** The requested tags that appear nowhere in the playbook (special tags excluded). */
export function unknownTags(pb: Playbook, requested: string[]): string[] {
  const known = new Set(knownTags(pb));
  return [...new Set(requested)].filter((t) => !known.has(t) && !(SPECIAL_TAGS as readonly string[]).includes(t));
}
