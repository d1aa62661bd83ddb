/**
 * Roles: a folder `roles/<name>/` with `tasks.yaml` (required, may be empty), and optional
 * `defaults.yaml`, `handlers.yaml`, `gates.yaml` and `argument_specs.yaml` (`.yml` works too,
 * as does Ansible's `tasks/main.yaml` layout). Notify targets are checked against the role's
 * handlers here, once all of its files are read.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Pos, Role } from '../model/types.ts';
import type { Module } from '../modules/contract.ts';
import { loadRoleArgSpec } from './argspec.ts';
import { parseTaskList, type TaskBuild } from './tasks.ts';
import { Errors, getVars, loadYamlFile, suggest, type YamlFile } from './yaml.ts';

/** The files of a role, each under the names it may have, in the order they are looked for. */
export const ROLE_FILE_BASES = ['defaults', 'tasks', 'handlers', 'gates'] as const;
export const roleFileNames = (base: string): string[] => [`${base}.yaml`, `${base}.yml`, `${base}/main.yaml`, `${base}/main.yml`];

function findFile(dir: string, base: (typeof ROLE_FILE_BASES)[number]): string | undefined {
  for (const f of roleFileNames(base)) {
    const p = join(dir, f);
    if (existsSync(p) && statSync(p).isFile()) return p;
  }
  return undefined;
}

export function listRoles(dirs: string[]): string[] {
  const out = new Set<string>();
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (statSync(join(d, f)).isDirectory()) out.add(f);
  }
  return [...out].sort();
}

export async function loadFile(path: string, errs: Errors): Promise<YamlFile | undefined> {
  try {
    return await loadYamlFile(path);
  } catch (e) {
    errs.push(e);
    return undefined;
  }
}

export async function loadRole(name: string, dir: string, refPos: Pos, modules: Map<string, Module>, errs: Errors): Promise<Role> {
  const role: Role = { name, dir, defaults: {}, tasks: [], handlers: [], gates: [] };
  const defaultsFile = findFile(dir, 'defaults');
  if (defaultsFile) {
    const yf = await loadFile(defaultsFile, errs);
    if (yf) role.defaults = getVars(yf, yf.root, errs, `defaults of role '${name}'`) ?? {};
  }
  const spec = await loadRoleArgSpec(name, dir, errs);
  if (spec) role.argSpec = spec;
  const tasksFile = findFile(dir, 'tasks');
  let tasks: TaskBuild[] = [];
  if (!tasksFile) errs.add(`role '${name}' has no tasks.yaml (in ${dir})`, refPos, 'create tasks.yaml (it may be an empty list: [])');
  else {
    const yf = await loadFile(tasksFile, errs);
    if (yf) tasks = parseTaskList(yf, name, 'task', modules, errs);
  }
  let handlers: TaskBuild[] = [];
  const handlersFile = findFile(dir, 'handlers');
  if (handlersFile) {
    const yf = await loadFile(handlersFile, errs);
    if (yf) handlers = parseTaskList(yf, name, 'handler', modules, errs);
  }
  const gatesFile = findFile(dir, 'gates');
  if (gatesFile) {
    const yf = await loadFile(gatesFile, errs);
    if (yf) role.gates = parseTaskList(yf, name, 'gate', modules, errs).map((b) => b.task);
  }
  const handlerNames = new Map<string, Pos>();
  for (const h of handlers) {
    if (handlerNames.has(h.task.name)) {
      const first = handlerNames.get(h.task.name)!;
      errs.add(`two handlers of role '${name}' are named '${h.task.name}'`, h.task.pos, `the first is at line ${first.line}; notify targets must be unique`);
    } else handlerNames.set(h.task.name, h.task.pos);
  }
  const topics = new Set(handlers.flatMap((h) => h.task.listen ?? []));
  for (const b of [...tasks, ...handlers]) {
    for (const n of b.notifyAt) {
      if (handlerNames.has(n.name) || topics.has(n.name)) continue;
      const near = suggest(n.name, handlerNames.keys());
      errs.add(
        `notify target '${n.name}' is not a handler of role '${name}'`,
        n.pos,
        near
          ? `did you mean '${near}'?`
          : handlerNames.size
            ? `handlers of '${name}': ${[...handlerNames.keys()].join(', ')}`
            : `role '${name}' has no handlers.yaml; add one with a handler named '${n.name}'`,
      );
    }
  }
  role.tasks = tasks.map((b) => b.task);
  role.handlers = handlers.map((b) => b.task);
  return role;
}
