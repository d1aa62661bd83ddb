/**
 * Which handlers a notification reaches, and in what order they run: Ansible's `notify` and
 * `listen`, per host and stage.
 *
 * - `notify: NAME` from a task reaches the handler of the task's own role named NAME (handler
 *   names are the role's: each role's `reboot` handler stays its own).
 * - `notify: TOPIC` also reaches every handler of the stage, of any role, whose `listen:` names
 *   TOPIC.
 * - Handlers that listen are the stage's, not only their role's: listening handlers with the same
 *   name are one handler (Ansible's handler names are play-wide), notified through whichever role
 *   notified it and run once. This is how iommu, acs-override and hugepages share "refresh
 *   bootloader": each role ships it, so each works alone, and the bootloader is refreshed once.
 * - Every notified handler runs once, after the stage's tasks, in definition order (roles in stage
 *   order, handlers in file order).
 */
import type { Playbook, Role, RoleRef, Stage, Task } from '../model/types.ts';

export interface StageHandler {
  handler: Task;
  role: Role;
  ref: RoleRef;
  /** `role\0name`: what is notified, and what the pending-handlers record holds. */
  key: string;
}

export const handlerKey = (role: string, name: string): string => `${role}\0${name}`;

/** The handlers of a stage in definition order (a role listed twice counts once). */
export function stageHandlers(pb: Playbook, stage: Stage): StageHandler[] {
  const out: StageHandler[] = [];
  const seen = new Set<string>();
  for (const ref of stage.roles) {
    const role = pb.roles.get(ref.name);
    if (!role || seen.has(role.name)) continue;
    seen.add(role.name);
    for (const handler of role.handlers) out.push({ handler, role, ref, key: handlerKey(role.name, handler.name) });
  }
  return out;
}

/** The keys of the handlers that `notify: target` from a task of `role` reaches. */
export function notifyTargets(handlers: StageHandler[], role: string, target: string): string[] {
  const keys = new Set<string>();
  const own = handlers.find((h) => h.role.name === role && h.handler.name === target);
  if (own) keys.add(own.key);
  const listeners = handlers.filter((h) => h.handler.listen?.includes(target));
  for (const name of new Set(listeners.map((h) => h.handler.name))) {
    const same = listeners.filter((h) => h.handler.name === name);
    // One handler of that name: the notifying role's own, else the first defined.
    keys.add((same.find((h) => h.role.name === role) ?? same[0]!).key);
  }
  return [...keys];
}

/**
 * The notified handlers in the order they run. `ranFor`: a listening handler whose name already
 * ran for an earlier role in this stage; it does not run again, its result says so.
 */
export function handlerRuns(handlers: StageHandler[], notified: ReadonlySet<string>): Array<StageHandler & { ranFor?: string }> {
  const ran = new Map<string, string>();
  const out: Array<StageHandler & { ranFor?: string }> = [];
  for (const h of handlers) {
    if (!notified.has(h.key)) continue;
    const shared = h.handler.listen?.length ? h.handler.name : null;
    const first = shared === null ? undefined : ran.get(shared);
    if (first !== undefined) out.push({ ...h, ranFor: first });
    else {
      if (shared !== null) ran.set(shared, h.role.name);
      out.push(h);
    }
  }
  return out;
}
