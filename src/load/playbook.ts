/**
 * Playbooks and roles: YAML → validated, typed model (src/model/types.ts), with every error
 * at its `file:line:col` and a hint. All errors of a load are collected and thrown together
 * (ConfigErrors), so a user fixes a playbook in one pass.
 *
 * Playbook: a list of stages (keys below in STAGE_KEYS). Role: a folder `roles/<name>/` with
 * `tasks.yaml` (required, may be empty), and optional `defaults.yaml`, `handlers.yaml`,
 * `gates.yaml` (`.yml` works too, as does Ansible's `tasks/main.yaml` layout). Roles are looked
 * up in `opts.roleDirs`, then `<playbook dir>/roles`, then `<playbook dir>/../roles`.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isMap, isScalar, isSeq, parse as parseYamlValue } from 'yaml';
import type { GuestPolicy, Playbook, Pos, RebootPolicy, Role, RoleRef, Stage, Task, Vars } from '../model/types.ts';
import type { ArgSchema, ArgSpec, ArgType, Module } from '../modules/contract.ts';
import { copyPositions, positionsOf, setPositions } from './positions.ts';
import { loadRoleArgSpec } from './argspec.ts';
import { ConfigError } from '../model/errors.ts';
import { checkExprSyntax, checkTemplateSyntax, containsTemplate } from '../template/index.ts';
import {
  describeNode,
  Errors,
  getBool,
  getChoice,
  getInt,
  getString,
  getStringList,
  getVars,
  isNull,
  loadYamlFile,
  mapEntries,
  parseYaml,
  readTextBounded,
  suggest,
  toJS,
  type Entry,
  type YamlFile,
  type YNode,
} from './yaml.ts';

export interface LoadOptions {
  modules: Map<string, Module>;
  roleDirs?: string[];
}

const STAGE_KEYS = [
  'name',
  'hosts',
  'roles',
  'vars',
  'serial',
  'max_fail_percentage',
  'any_errors_fatal',
  'reboot',
  'reboot_timeout',
  'guests',
  'ha_maintenance',
  'max_down_per_cluster',
  'tags',
] as const;
const ROLE_REF_KEYS = ['role', 'vars', 'tags'] as const;
const TASK_KEYWORDS = ['name', 'when', 'tags', 'notify', 'listen', 'register'] as const;
/** Ansible task keywords passthru does not implement: a clear message instead of "unknown module". */
const UNSUPPORTED_KEYWORDS: Record<string, string> = {
  loop: 'repeat the task, or pass a list argument (most modules take lists)',
  with_items: 'repeat the task, or pass a list argument (most modules take lists)',
  become: 'set `become` per host in the inventory; tasks always run as root',
  become_user: 'tasks always run as root',
  ignore_errors: 'a failing task fails its host; use a `when:` condition or a guard (`creates`, `unless`)',
  changed_when: 'modules decide changes by comparing state; use `creates`/`unless` guards on commands',
  failed_when: 'use an `assert` task after a task with `register:`',
  delegate_to: 'tasks run on the stage hosts only',
  vars: 'put variables in the role defaults, the stage vars or the role reference vars',
  block: 'use several tasks with the same `when:`',
  include_tasks: 'list the tasks in tasks.yaml, or split the work into roles',
  import_tasks: 'list the tasks in tasks.yaml, or split the work into roles',
};
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

// ---------------------------------------------------------------- argument checking

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v)}`;
  return `the ${typeof v} ${String(v)}`;
}

const TYPE_WORD: Record<ArgType, string> = {
  string: 'a string',
  int: 'an integer',
  bool: 'true or false',
  list: 'a list',
  map: 'a map',
  any: 'a value',
};

/**
 * Coerce a value to an argument type; undefined when it does not fit. `source` is the text as
 * written in YAML, so that `mode: 0644` given to a string argument stays "0644".
 */
function coerce(type: ArgType, v: unknown, source?: string): { ok: true; v: unknown } | { ok: false } {
  switch (type) {
    case 'any':
      return { ok: true, v };
    case 'string':
      if (typeof v === 'string') return { ok: true, v };
      if (typeof v === 'number') return { ok: true, v: source ?? String(v) };
      return { ok: false };
    case 'int':
      if (typeof v === 'number' && Number.isInteger(v)) return { ok: true, v };
      if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) return { ok: true, v: Number(v) };
      return { ok: false };
    case 'bool':
      if (typeof v === 'boolean') return { ok: true, v };
      if (typeof v === 'string' && /^(yes|true|on)$/i.test(v)) return { ok: true, v: true };
      if (typeof v === 'string' && /^(no|false|off)$/i.test(v)) return { ok: true, v: false };
      return { ok: false };
    case 'list':
      if (Array.isArray(v)) return { ok: true, v };
      // a single scalar stands for a one-item list (not split at commas: kernel args hold commas)
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return { ok: true, v: [v] };
      return { ok: false };
    case 'map':
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) return { ok: true, v };
      return { ok: false };
  }
}

interface ArgWhere {
  module: string;
  /** Position of the module key (missing args, cross-argument validation). */
  pos: Pos;
  keyPos?(name: string): Pos | undefined;
  valuePos?(name: string): Pos | undefined;
  /** YAML source text of a scalar value (keeps `0644` as written). */
  source?(name: string): string | undefined;
  /** At load, values holding templates are only syntax-checked; their type is checked after templating. */
  atLoad?: boolean;
}

function checkArgsInto(schema: ArgSchema, args: Record<string, unknown>, w: ArgWhere, errs: Errors): Record<string, unknown> {
  const canon = new Map<string, string>();
  for (const [name, spec] of Object.entries(schema)) {
    canon.set(name, name);
    for (const a of spec.aliases ?? []) canon.set(a, name);
  }
  const out: Record<string, unknown> = {};
  const given = new Map<string, string>(); // canonical → name as written
  for (const [written, value] of Object.entries(args)) {
    const name = canon.get(written);
    const kpos = w.keyPos?.(written) ?? w.pos;
    const vpos = w.valuePos?.(written) ?? kpos;
    if (!name) {
      const near = suggest(written, canon.keys());
      errs.add(
        `module '${w.module}' has no argument '${written}'`,
        kpos,
        near ? `did you mean '${near}'?` : `arguments: ${Object.keys(schema).join(', ') || 'none'}`,
      );
      continue;
    }
    if (given.has(name)) {
      errs.add(`module '${w.module}': argument '${name}' is given twice (as '${given.get(name)}' and '${written}')`, kpos, 'keep one of them');
      continue;
    }
    given.set(name, written);
    const spec = schema[name]!;
    if (w.atLoad && containsTemplate(value)) {
      try {
        checkTemplateSyntaxDeep(value, vpos);
      } catch (e) {
        errs.push(e);
      }
      out[name] = value;
      continue;
    }
    out[name] = checkValue(spec, name, value, w, vpos, errs);
  }
  for (const [name, spec] of Object.entries(schema)) {
    if (name in out) continue;
    if (spec.required) {
      errs.add(`module '${w.module}' needs argument '${name}'`, w.pos, `${name}: ${spec.doc}`);
    } else if (spec.default !== undefined) {
      out[name] = structuredClone(spec.default);
    }
  }
  return out;
}

function checkValue(spec: ArgSpec, name: string, value: unknown, w: ArgWhere, vpos: Pos, errs: Errors): unknown {
  if (value === null || value === undefined) {
    if (spec.required) errs.add(`module '${w.module}': argument '${name}' needs a value`, vpos, spec.doc);
    return spec.default !== undefined ? structuredClone(spec.default) : undefined;
  }
  const c = coerce(spec.type, value, w.source?.(name));
  if (!c.ok) {
    errs.add(`module '${w.module}': argument '${name}' must be ${TYPE_WORD[spec.type]}, found ${describeValue(value)}`, vpos, spec.doc);
    return value;
  }
  let v = c.v;
  if (spec.type === 'list' && spec.items && spec.items !== 'any') {
    v = (v as unknown[]).map((item, i) => {
      if (w.atLoad && containsTemplate(item)) return item;
      const ci = coerce(spec.items!, item);
      if (!ci.ok) {
        errs.add(`module '${w.module}': item ${i + 1} of '${name}' must be ${TYPE_WORD[spec.items!]}, found ${describeValue(item)}`, vpos);
        return item;
      }
      return ci.v;
    });
  }
  if (spec.choices && typeof v === 'string' && !spec.choices.includes(v)) {
    const near = suggest(v, spec.choices);
    errs.add(
      `module '${w.module}': argument '${name}' must be one of ${spec.choices.join(', ')}; found ${JSON.stringify(v)}`,
      vpos,
      near ? `did you mean '${near}'?` : undefined,
    );
  }
  return v;
}

function checkTemplateSyntaxDeep(v: unknown, pos: Pos): void {
  if (typeof v === 'string') checkTemplateSyntax(v, pos);
  else if (Array.isArray(v)) v.forEach((x) => checkTemplateSyntaxDeep(x, pos));
  else if (v && typeof v === 'object') Object.values(v).forEach((x) => checkTemplateSyntaxDeep(x, pos));
}

/**
 * Check arguments against a module's schema: unknown names (with a hint), aliases normalised
 * to the canonical name, missing required arguments, types (with light coercion: '5' → 5 for
 * int, 'yes' → true for bool, a scalar → a one-item list), choices. Returns the normalised
 * arguments with defaults applied. Throws ConfigError (or ConfigErrors) at `where.pos`.
 */
export function checkArgs(schema: ArgSchema, args: Record<string, unknown>, where: { pos: Pos; module: string }): Record<string, unknown> {
  const errs = new Errors();
  const out = checkArgsInto(schema, args ?? {}, { module: where.module, pos: where.pos }, errs);
  errs.throwIfAny();
  return out;
}

// ---------------------------------------------------------------- tasks

type TaskKind = 'task' | 'handler' | 'gate';

interface TaskBuild {
  task: Task;
  /** Each notify target with its position, checked once the role's handlers are known. */
  notifyAt: Array<{ name: string; pos: Pos }>;
}

function parseTask(yf: YamlFile, node: YNode, role: string, kind: TaskKind, modules: Map<string, Module>, errs: Errors): TaskBuild | undefined {
  const what = kind === 'task' ? 'a task' : kind === 'handler' ? 'a handler' : 'a gate';
  if (!isMap(node)) {
    errs.add(`${what} must be a map (\`- name: ...\` with a module key), found ${describeNode(node)}`, yf.pos(node));
    return undefined;
  }
  const pos = yf.pos(node);
  const entries = mapEntries(yf, node, errs, what) ?? [];
  const moduleKeys: Entry[] = [];
  const kw = new Map<string, Entry>();
  for (const e of entries) {
    if ((TASK_KEYWORDS as readonly string[]).includes(e.key)) kw.set(e.key, e);
    else if (modules.has(e.key)) moduleKeys.push(e);
    else if (e.key in UNSUPPORTED_KEYWORDS) {
      errs.add(`task keyword '${e.key}' is not supported`, e.keyPos, UNSUPPORTED_KEYWORDS[e.key]);
    } else {
      const near = suggest(e.key, [...modules.keys(), ...TASK_KEYWORDS]);
      errs.add(
        `unknown module or task keyword '${e.key}'`,
        e.keyPos,
        near ? `did you mean '${near}'?` : `modules: ${[...modules.keys()].sort().join(', ')}; task keywords: ${TASK_KEYWORDS.join(', ')}`,
      );
    }
  }
  const nameEntry = kw.get('name');
  const name = nameEntry ? getString(yf, nameEntry, errs) : undefined;
  if (moduleKeys.length === 0) {
    // "no module" only when no unknown key was reported above (that error explains it better)
    const unknown = entries.some((e) => !(TASK_KEYWORDS as readonly string[]).includes(e.key));
    if (!unknown) errs.add(`${what}${name ? ` '${name}'` : ''} has no module`, pos, `add one module key, e.g. ${[...modules.keys()].slice(0, 4).join(', ')}`);
    return undefined;
  }
  if (moduleKeys.length > 1) {
    errs.add(
      `${what}${name ? ` '${name}'` : ''} has ${moduleKeys.length} module keys (${moduleKeys.map((m) => m.key).join(', ')}); a task runs one module`,
      moduleKeys[1]!.keyPos,
      'split it into one task per module',
    );
    return undefined;
  }
  const me = moduleKeys[0]!;
  const mod = modules.get(me.key)!;
  if (kind === 'gate' && !mod.readOnly) {
    const ro = [...modules.values()].filter((m) => m.readOnly).map((m) => m.name);
    errs.add(
      `gate uses module '${mod.name}', which changes the host; gates may only use read-only modules`,
      me.keyPos,
      ro.length ? `read-only modules: ${ro.join(', ')}` : 'use assert',
    );
  }
  const task: Task = { name: name ?? me.key, module: me.key, args: {}, tags: [], notify: [], role, pos };
  const build: TaskBuild = { task, notifyAt: [] };

  // arguments
  let rawArgs: Record<string, unknown> = {};
  const argEntries = new Map<string, Entry>();
  if (isNull(me.node)) rawArgs = {};
  else if (isMap(me.node)) {
    for (const a of mapEntries(yf, me.node, errs, `arguments of '${me.key}'`) ?? []) {
      rawArgs[a.key] = toJS(a.node);
      argEntries.set(a.key, a);
    }
  } else if (isScalar(me.node)) {
    // free form (`command: echo hi`): the module's argument aliased `_raw_params`
    const free = Object.entries(mod.schema).find(([, s]) => s.aliases?.includes('_raw_params'));
    if (free) {
      rawArgs = { [free[0]]: toJS(me.node) };
      argEntries.set(free[0], { key: free[0], keyPos: me.keyPos, node: me.node, pos: me.pos });
    } else {
      errs.add(`arguments of module '${me.key}' must be a map, found ${describeNode(me.node)}`, me.pos, `write them as \`key: value\` lines under \`${me.key}:\``);
    }
  } else {
    errs.add(`arguments of module '${me.key}' must be a map, found ${describeNode(me.node)}`, me.pos, `write them as \`key: value\` lines under \`${me.key}:\``);
  }
  const before = errs.list.length;
  task.args = checkArgsInto(
    mod.schema,
    rawArgs,
    {
      module: me.key,
      pos: me.keyPos,
      atLoad: true,
      keyPos: (k) => argEntries.get(k)?.keyPos,
      valuePos: (k) => argEntries.get(k)?.pos,
      source: (k) => {
        const n = argEntries.get(k)?.node;
        return isScalar(n) && typeof n.value === 'number' ? n.source : undefined;
      },
    },
    errs,
  );
  if (errs.list.length === before && mod.validate && !containsTemplate(task.args)) {
    let msg: string | undefined;
    try {
      msg = mod.validate(task.args);
    } catch (e) {
      msg = (e as Error).message;
    }
    if (msg) errs.add(`module '${me.key}': ${msg}`, me.keyPos, mod.doc.split(/(?<=\.)\s/)[0]);
  }

  // keywords
  const when = kw.get('when');
  if (when && !isNull(when.node)) {
    let expr: string | undefined;
    if (isSeq(when.node)) {
      const parts = getStringList(yf, when, errs);
      if (parts) expr = parts.map((p) => `(${p})`).join(' and ');
    } else if (isScalar(when.node) && typeof when.node.value === 'boolean') expr = String(when.node.value);
    else expr = getString(yf, when, errs);
    if (expr !== undefined) {
      try {
        checkExprSyntax(expr, when.pos);
        task.when = expr;
      } catch (e) {
        errs.push(e);
      }
    }
  }
  const tags = kw.get('tags');
  if (tags) task.tags = getStringList(yf, tags, errs) ?? [];
  const notify = kw.get('notify');
  if (notify) {
    if (kind === 'gate') errs.add('a gate cannot notify handlers', notify.keyPos, 'gates only check; remove notify');
    else {
      const items: Array<{ node: YNode; pos: Pos }> = isSeq(notify.node)
        ? (notify.node.items as YNode[]).map((n) => ({ node: n, pos: yf.pos(n, notify.pos) }))
        : [{ node: notify.node, pos: notify.pos }];
      for (const it of items) {
        if (isScalar(it.node) && typeof it.node.value === 'string' && it.node.value.trim()) {
          task.notify.push(it.node.value);
          build.notifyAt.push({ name: it.node.value, pos: it.pos });
        } else errs.add(`'notify' must name handlers (a string or a list of strings), found ${describeNode(it.node)}`, it.pos);
      }
    }
  }
  const listen = kw.get('listen');
  if (listen && kind !== 'handler') errs.add(`only a handler can listen`, listen.keyPos, 'move it to handlers.yaml, or remove listen');
  else if (listen) task.listen = getStringList(yf, listen, errs) ?? [];
  const reg = kw.get('register');
  if (reg) {
    const r = getString(yf, reg, errs);
    if (r !== undefined && !VAR_NAME.test(r)) {
      errs.add(`'register' must be a variable name, found ${JSON.stringify(r)}`, reg.pos, 'letters, digits and _, not starting with a digit');
    } else if (r !== undefined) task.register = r;
  }
  return build;
}

function parseTaskList(
  yf: YamlFile,
  role: string,
  kind: TaskKind,
  modules: Map<string, Module>,
  errs: Errors,
): TaskBuild[] {
  const root = yf.root;
  if (isNull(root)) return [];
  if (!isSeq(root)) {
    errs.add(`${yf.file} must hold a list of ${kind}s, found ${describeNode(root)}`, yf.pos(root), 'start each one with `- name: ...`');
    return [];
  }
  const out: TaskBuild[] = [];
  for (const item of root.items as YNode[]) {
    const b = parseTask(yf, item, role, kind, modules, errs);
    if (b) out.push(b);
  }
  return out;
}

// ---------------------------------------------------------------- roles

function findFile(dir: string, base: string): string | undefined {
  for (const f of [`${base}.yaml`, `${base}.yml`, `${base}/main.yaml`, `${base}/main.yml`]) {
    const p = join(dir, f);
    if (existsSync(p) && statSync(p).isFile()) return p;
  }
  return undefined;
}

function listRoles(dirs: string[]): string[] {
  const out = new Set<string>();
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (statSync(join(d, f)).isDirectory()) out.add(f);
  }
  return [...out].sort();
}

async function loadFile(path: string, errs: Errors): Promise<YamlFile | undefined> {
  try {
    return await loadYamlFile(path);
  } catch (e) {
    errs.push(e);
    return undefined;
  }
}

async function loadRole(name: string, dir: string, refPos: Pos, modules: Map<string, Module>, errs: Errors): Promise<Role> {
  const role: Role = { name, dir, defaults: {}, tasks: [], handlers: [], gates: [] };
  const defaultsFile = findFile(dir, 'defaults');
  if (defaultsFile) {
    const yf = await loadFile(defaultsFile, errs);
    if (yf) role.defaults = getVars(yf, yf.root, errs, `defaults of role '${name}'`) ?? {};
  }
  const spec = loadRoleArgSpec(name, dir, errs);
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

// ---------------------------------------------------------------- stages

function parseSerial(yf: YamlFile, e: Entry, errs: Errors): Array<number | string> | undefined {
  const one = (node: YNode, pos: Pos): number | string | undefined => {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v === 'number' && Number.isInteger(v) && v >= 1) return v;
    if (typeof v === 'string' && /^\d+(\.\d+)?%$/.test(v.trim()) && parseFloat(v) > 0 && parseFloat(v) <= 100) return v.trim();
    if (typeof v === 'string' && /^\d+$/.test(v.trim()) && Number(v) >= 1) return Number(v);
    errs.add(`'serial' must be a number of hosts (1 or more), a percentage like "30%", or a list of them; found ${describeNode(node)}`, pos);
    return undefined;
  };
  if (isSeq(e.node)) {
    const out = (e.node.items as YNode[]).map((n) => one(n, yf.pos(n, e.pos)));
    if (!out.length) errs.add("'serial' must not be an empty list", e.pos);
    return out.every((x) => x !== undefined) && out.length ? (out as Array<number | string>) : undefined;
  }
  const v = one(e.node, e.pos);
  return v === undefined ? undefined : [v];
}

function parseRoleRef(yf: YamlFile, node: YNode, errs: Errors, stageTags: string[]): RoleRef | undefined {
  const pos = yf.pos(node);
  if (isScalar(node) && typeof node.value === 'string' && node.value.trim()) {
    return { name: node.value.trim(), vars: {}, tags: [...stageTags], pos };
  }
  if (!isMap(node)) {
    errs.add(`a role reference must be a role name or a map with 'role:', found ${describeNode(node)}`, pos);
    return undefined;
  }
  const entries = mapEntries(yf, node, errs, 'a role reference', {
    allowed: ROLE_REF_KEYS,
    allowedHint: 'a role reference holds role:, vars: and tags: (role variables go under vars:)',
  });
  if (!entries) return undefined;
  const ref: RoleRef = { name: '', vars: {}, tags: [], pos };
  for (const e of entries) {
    if (e.key === 'role') {
      const s = getString(yf, e, errs);
      if (s !== undefined) {
        ref.name = s.trim();
        ref.pos = e.pos;
      }
    } else if (e.key === 'vars') ref.vars = getVars(yf, e.node, errs, 'role reference vars', e.pos) ?? {};
    else if (e.key === 'tags') ref.tags = getStringList(yf, e, errs) ?? [];
  }
  if (!entries.some((e) => e.key === 'role')) {
    errs.add("a role reference needs 'role:'", pos, 'e.g. `- role: vfio`');
    return undefined;
  }
  if (!ref.name) return undefined;
  ref.tags = [...new Set([...ref.tags, ...stageTags])];
  return ref;
}

function parseStage(yf: YamlFile, node: YNode, index: number, errs: Errors): Stage | undefined {
  const pos = yf.pos(node);
  if (!isMap(node)) {
    errs.add(`stage ${index + 1} must be a map (name:, hosts:, roles:), found ${describeNode(node)}`, pos);
    return undefined;
  }
  const entries = mapEntries(yf, node, errs, 'a stage', { allowed: STAGE_KEYS });
  if (!entries) return undefined;
  const stage: Stage = {
    name: '',
    hosts: '',
    roles: [],
    vars: {},
    anyErrorsFatal: false,
    reboot: 'if-needed',
    rebootTimeoutS: 600,
    guestPolicy: 'refuse',
    haMaintenance: false,
    maxDownPerCluster: 1,
    pos,
  };
  const by = new Map(entries.map((e) => [e.key, e]));
  const stageTags = by.has('tags') ? (getStringList(yf, by.get('tags')!, errs) ?? []) : [];
  for (const e of entries) {
    switch (e.key) {
      case 'name':
        stage.name = getString(yf, e, errs) ?? '';
        break;
      case 'hosts':
        if (isSeq(e.node)) stage.hosts = (getStringList(yf, e, errs) ?? []).join(',');
        else stage.hosts = getString(yf, e, errs) ?? '';
        if (!stage.hosts.trim() && !errs.list.some((x) => x.pos === e.pos)) errs.add("'hosts' must not be empty", e.pos, "use a group, a host, or 'all'");
        break;
      case 'roles':
        if (isNull(e.node)) break;
        if (!isSeq(e.node)) {
          errs.add(`'roles' must be a list, found ${describeNode(e.node)}`, e.pos, 'write each role as `- name` on its own line');
          break;
        }
        for (const r of e.node.items as YNode[]) {
          const ref = parseRoleRef(yf, r, errs, stageTags);
          if (ref) stage.roles.push(ref);
        }
        break;
      case 'vars':
        stage.vars = getVars(yf, e.node, errs, 'stage vars', e.pos) ?? {};
        break;
      case 'serial': {
        const s = parseSerial(yf, e, errs);
        if (s) stage.serial = s;
        break;
      }
      case 'max_fail_percentage': {
        const v = isScalar(e.node) ? e.node.value : undefined;
        if (typeof v === 'number' && v >= 0 && v <= 100) stage.maxFailPercentage = v;
        else errs.add(`'max_fail_percentage' must be a number from 0 to 100, found ${describeNode(e.node)}`, e.pos);
        break;
      }
      case 'any_errors_fatal':
        stage.anyErrorsFatal = getBool(yf, e, errs) ?? false;
        break;
      case 'reboot':
        stage.reboot = getChoice<RebootPolicy>(yf, e, errs, ['never', 'if-needed', 'always']) ?? stage.reboot;
        break;
      case 'reboot_timeout':
        stage.rebootTimeoutS = getInt(yf, e, errs, { min: 1 }) ?? stage.rebootTimeoutS;
        break;
      case 'guests':
        stage.guestPolicy = getChoice<GuestPolicy>(yf, e, errs, ['refuse', 'shutdown', 'ignore']) ?? stage.guestPolicy;
        break;
      case 'ha_maintenance':
        stage.haMaintenance = getBool(yf, e, errs) ?? false;
        break;
      case 'max_down_per_cluster':
        stage.maxDownPerCluster = getInt(yf, e, errs, { min: 1 }) ?? stage.maxDownPerCluster;
        break;
      case 'tags':
        break; // read above, applied to each role reference
    }
  }
  if (!by.has('hosts')) errs.add(`stage ${stage.name ? `'${stage.name}'` : index + 1} has no 'hosts'`, pos, "add `hosts: <pattern>` (a group, a host, or 'all')");
  if (!by.has('roles')) errs.add(`stage ${stage.name ? `'${stage.name}'` : index + 1} has no 'roles'`, pos, 'add `roles:` with the roles to apply');
  if (!stage.name) stage.name = stage.hosts ? `stage ${index + 1} (${stage.hosts})` : `stage ${index + 1}`;
  return stage;
}

// ---------------------------------------------------------------- playbook

export async function loadPlaybook(path: string, opts: LoadOptions): Promise<Playbook> {
  const errs = new Errors();
  const yf = await loadFile(path, errs);
  errs.throwIfAny();
  const pbDir = dirname(resolve(path));
  const roleDirs = [...(opts.roleDirs ?? []).map((d) => resolve(d)), join(pbDir, 'roles'), resolve(pbDir, '..', 'roles')];
  const pb: Playbook = { file: path, stages: [], roles: new Map() };
  const root = yf!.root;
  if (isNull(root)) {
    errs.add('the playbook is empty', { file: path, line: 1, col: 1 }, 'a playbook is a list of stages: `- name: ...` with hosts: and roles:');
  } else if (!isSeq(root)) {
    errs.add(`a playbook must be a list of stages, found ${describeNode(root)}`, yf!.pos(root), 'start each stage with `- name: ...`');
  } else {
    (root.items as YNode[]).forEach((item, i) => {
      const s = parseStage(yf!, item, i, errs);
      if (s) pb.stages.push(s);
    });
  }
  let available: string[] | undefined;
  for (const stage of pb.stages) {
    for (const ref of stage.roles) {
      if (pb.roles.has(ref.name)) continue;
      const dir = roleDirs.map((d) => join(d, ref.name)).find((d) => existsSync(d) && statSync(d).isDirectory());
      if (!dir) {
        available ??= listRoles(roleDirs);
        const near = suggest(ref.name, available);
        errs.add(
          `unknown role '${ref.name}'`,
          ref.pos,
          near ? `did you mean '${near}'?` : available.length ? `roles: ${available.join(', ')}` : `no roles found in ${roleDirs.join(', ')}`,
        );
        continue;
      }
      pb.roles.set(ref.name, await loadRole(ref.name, dir, ref.pos, opts.modules, errs));
    }
  }
  errs.throwIfAny();
  return pb;
}

// ---------------------------------------------------------------- extra vars

/** Split `a=1 b='two words'` at unquoted whitespace, removing the quotes. */
function shellWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote = '';
  let any = false;
  for (const c of s) {
    if (quote) {
      if (c === quote) quote = '';
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      any = true;
    } else if (/\s/.test(c)) {
      if (cur || any) out.push(cur);
      cur = '';
      any = false;
    } else cur += c;
  }
  if (cur || any) out.push(cur);
  return out;
}

function scalar(text: string): unknown {
  if (text === '') return '';
  try {
    const v: unknown = parseYamlValue(text);
    return v === null || typeof v === 'number' || typeof v === 'boolean' ? v : text;
  } catch {
    return text;
  }
}

/**
 * Extra variables (`-e`): `key=value` (the value read as a YAML scalar: numbers, booleans;
 * several pairs may share one item, shell-quoted), `@file.yaml` (a map), or an inline map
 * `{"a": 1}`. Later items win.
 */
export function loadExtraVars(items: string[], cwd: string): Vars {
  const out: Vars = {};
  const positions = new Map<string, Pos>();
  const take = (vars: Vars | undefined, item?: number): void => {
    if (!vars) return;
    let from = positionsOf(vars);
    // an inline map's positions: `-e:N:C`, the Nth -e option, column C
    if (item !== undefined) from = new Map([...from].map(([k, p]) => [k, { file: '-e', line: item + 1, col: p.col }]));
    for (const [k, v] of Object.entries(vars)) {
      out[k] = v;
      copyPositions(from, positions, k);
    }
  };
  const errs = new Errors();
  for (const [n, item] of items.entries()) {
    const t = item.trim();
    if (t.startsWith('@')) {
      const file = resolve(cwd, t.slice(1));
      let text: string;
      try {
        text = readTextBounded(file);
      } catch (e) {
        if (e instanceof ConfigError) {
          errs.push(e);
          continue;
        }
        errs.add(`cannot read extra vars file ${t.slice(1)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, undefined, 'the path is relative to the current directory');
        continue;
      }
      try {
        const yf = parseYaml(text, t.slice(1));
        take(getVars(yf, yf.root, errs, `extra vars file ${t.slice(1)}`));
      } catch (e) {
        errs.push(e);
      }
    } else if (t.startsWith('{')) {
      try {
        const yf = parseYaml(t, '-e');
        take(getVars(yf, yf.root, errs, 'extra vars'), n);
      } catch (e) {
        errs.push(e);
      }
    } else {
      for (const word of shellWords(t)) {
        const eq = word.indexOf('=');
        const key = eq > 0 ? word.slice(0, eq) : '';
        if (!VAR_NAME.test(key)) {
          errs.add(`extra var '${word}' is not key=value`, undefined, 'use -e name=value, -e @vars.yaml or -e \'{"name": "value"}\'');
          continue;
        }
        out[key] = scalar(word.slice(eq + 1));
        // `-e:N:C`: the Nth -e option, column C
        copyPositions(new Map(), positions, key);
        positions.set(key, { file: '-e', line: n + 1, col: Math.max(1, t.indexOf(word) + 1) });
      }
    }
  }
  errs.throwIfAny();
  setPositions(out, positions);
  return out;
}

