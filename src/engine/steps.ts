/**
 * The steps of a stage: its roles' tasks (or gates) that the --tags/--skip-tags selection runs,
 * in order. The host runner, the reads predicted before the facts and `passthru list` use it.
 */
import type { Playbook, Role, RoleRef, Stage, Task, TaskResult } from '../model/types.ts';
import { taskSelected } from '../load/tags.ts';

export interface Step {
  task: Task;
  role?: Role;
  ref?: RoleRef;
  kind: TaskResult['kind'];
}

/** The tasks of a stage that a selection runs, in order (also used by `passthru list`). */
export function selectedSteps(
  pb: Playbook,
  stage: Stage,
  part: 'tasks' | 'gates',
  sel: { tags?: string[]; skipTags?: string[] },
): Step[] {
  const steps: Step[] = [];
  for (const ref of stage.roles) {
    const role = pb.roles.get(ref.name);
    if (!role) continue;
    for (const task of role[part]) {
      const tags = [...new Set([...task.tags, ...ref.tags])];
      if (taskSelected(tags, sel)) steps.push({ task, role, ref, kind: part === 'gates' ? 'gate' : 'task' });
    }
  }
  return steps;
}

/**
 * `make` once per role reference (a reference names its role): where nothing a task registers can
 * change them yet, the variables of every task of a reference are the same.
 */
export function perReference<T>(make: (step: Step) => T): (step: Step) => T {
  const made = new Map<object | undefined, T>();
  return (step) => {
    const key = step.ref ?? step.role;
    if (!made.has(key)) made.set(key, make(step));
    return made.get(key)!;
  };
}
