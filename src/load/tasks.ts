/**
 * Task files (a role's tasks, handlers and gates): YAML → typed tasks, every error at its
 * `file:line:col`. A task is one module key plus keywords (TASK_KEYWORDS); its arguments are
 * checked against the module's spec by the shared checker (src/spec/check.ts), values holding
 * templates only for their template syntax (they are checked again, rendered, at run time).
 */
import { isMap, isScalar, isSeq } from 'yaml';
import type { Pos, Task } from '../model/types.ts';
import type { Module } from '../modules/contract.ts';
import type { OptionSpec } from '../spec/types.ts';
import { checkModuleArgs, holdsTemplate } from '../spec/check.ts';
import { checkExprSyntax, checkTemplateSyntax } from '../template/index.ts';
import { describeNode, Errors, getString, getStringList, isNull, mapEntries, suggest, toJS, type Entry, type YamlFile, type YNode } from './yaml.ts';

export const TASK_KEYWORDS = ['name', 'when', 'tags', 'notify', 'listen', 'register'] as const;
export const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What each task keyword holds (the editor schema, schemas/tasks.json, is made from this). */
export const TASK_OPTIONS: Record<(typeof TASK_KEYWORDS)[number], OptionSpec> = {
  name: { type: 'str', description: 'What the task does (shown in the report; handlers are notified by it).' },
  when: { type: 'list', elements: 'str', description: 'A condition (an expression without braces), or a list of them that must all hold.' },
  tags: { type: 'list', elements: 'str', description: 'Tags, for --tags and --skip-tags.' },
  notify: { type: 'list', elements: 'str', description: 'Handlers of the role, or listen topics, to run (once, at the end of the stage) when this task changes something.' },
  listen: { type: 'list', elements: 'str', description: 'Handlers only: topics this handler also answers to; a notify of the topic from any role of the stage runs it (handlers of one name run once).' },
  register: { type: 'str', pattern: VAR_NAME.source, description: 'A variable that holds the result for later tasks.' },
};
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
/** Template syntax of every string in an argument value, at the argument's position. */
function checkTemplates(args: Record<string, unknown>, pos: (k: string) => Pos, errs: Errors): void {
  const walk = (v: unknown, p: Pos): void => {
    if (typeof v === 'string') {
      if (holdsTemplate(v)) errs.catch(() => checkTemplateSyntax(v, p));
    } else if (Array.isArray(v)) v.forEach((x) => walk(x, p));
    else if (v && typeof v === 'object') Object.values(v).forEach((x) => walk(x, p));
  };
  for (const [k, v] of Object.entries(args)) walk(v, pos(k));
}

export type TaskKind = 'task' | 'handler' | 'gate';

export interface TaskBuild {
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
    const free = Object.entries(mod.spec.options).find(([, s]) => s.aliases?.includes('_raw_params'));
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
  checkTemplates(rawArgs, (k) => argEntries.get(k)?.pos ?? me.keyPos, errs);
  const checked = checkModuleArgs(me.key, mod.spec, rawArgs, {
    deferTemplates: true,
    source: (k) => {
      const n = argEntries.get(k)?.node;
      return isScalar(n) && typeof n.value === 'number' ? n.source : undefined;
    },
  });
  for (const p of checked.problems) {
    const e = p.arg !== undefined ? argEntries.get(p.arg) : undefined;
    errs.add(p.msg, (p.atKey ? e?.keyPos : e?.pos) ?? e?.keyPos ?? me.keyPos, p.hint);
  }
  task.args = checked.args;
  if (errs.list.length === before && mod.validate && !holdsTemplate(task.args)) {
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

export function parseTaskList(
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
