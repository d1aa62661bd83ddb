/**
 * The one checker of the argument-spec language (./types.ts). Used for module arguments by the
 * loader (at load, where a value holding a template is only checked once rendered) and by the
 * engine (at run time, after templating), and for role variables by the load-time host-variable
 * check (src/load/hostvars.ts) and the engine.
 *
 * Two modes, because the values come from different places:
 * - `args` (module arguments, written in a task's YAML): a scalar given for a list is a one-item
 *   list (kernel parameters hold commas), `null` means "not given" (the default applies), and the
 *   checker returns the arguments normalised (aliases resolved, values coerced, defaults applied).
 * - `vars` (host variables, which INI inventories and `-e key=value` give as strings): a string
 *   given for a list is split at commas, and `null` is a value the role would see, so it is an
 *   error unless the option's default is null or it is a list, dict or raw value.
 */
import { ConfigError, ConfigErrors, suggest } from '../model/errors.ts';
import type { ArgumentSpec, OptionSpec } from './types.ts';
import { DEFAULT_MAX_LIST, DEFAULT_MAX_STRING } from './types.ts';

export interface Violation {
  /** Dotted path of the value: `hugepages.count`, `vfio_ids.1`. */
  path: string;
  msg: string;
  hint?: string;
}

type Mode = 'args' | 'vars';
type Path = ReadonlyArray<string | number>;

// ---------------------------------------------------------------- showing values

/** A value as shown in a message: short, escaped (newlines and control bytes visible), or hidden. */
export function show(v: unknown, secret = false): string {
  if (secret) return '(hidden)';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (v === null || v === undefined) return 'nothing (null)';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'a map';
  return String(v);
}

/** What a value is, for "must be X, found Y". */
function describe(v: unknown, secret = false): string {
  if (secret) return '(hidden)';
  if (v === null || v === undefined) return 'nothing (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v)}`;
  return `the ${typeof v} ${String(v)}`;
}

export function typeWord(o: Pick<OptionSpec, 'type'>): string {
  switch (o.type) {
    case 'str':
      return 'a string';
    case 'path':
      return 'an absolute path';
    case 'int':
      return 'a whole number';
    case 'float':
      return 'a number';
    case 'bool':
      return 'true or false';
    case 'list':
      return 'a list';
    case 'dict':
      return 'a map';
    default:
      return 'a value';
  }
}

/** Does the value hold a template (`{{`/`{%`) anywhere? Those are checked once rendered. */
export function holdsTemplate(v: unknown, depth = 0): boolean {
  if (depth > 64) return false;
  if (typeof v === 'string') return v.includes('{{') || v.includes('{%');
  if (Array.isArray(v)) return v.some((x) => holdsTemplate(x, depth + 1));
  if (v && typeof v === 'object') return Object.values(v).some((x) => holdsTemplate(x, depth + 1));
  return false;
}

/** Control characters, U+FFFD (bytes that were not UTF-8) and lone surrogates: never in a one-line value. */
// eslint-disable-next-line no-control-regex
const UNSAFE_CHAR_RAW = /[\u0000-\u001f\u007f\u0085\u2028\u2029\ufffd]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function describeUnsafe(s: string): string {
  const m = UNSAFE_CHAR_RAW.exec(s)!;
  const c = m[0].charCodeAt(0);
  const name = c === 0 ? 'a NUL byte' : c === 10 ? 'a newline' : c === 13 ? 'a carriage return' : c === 0xfffd ? 'bytes that are not UTF-8' : c >= 0xd800 && c <= 0xdfff ? 'a lone surrogate' : `the control character U+${c.toString(16).padStart(4, '0')}`;
  return `${name} at character ${m.index + 1}`;
}

const compiled = new Map<string, RegExp>();
function re(p: string): RegExp {
  let r = compiled.get(p);
  if (!r) compiled.set(p, (r = new RegExp(p)));
  return r;
}

function same(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'string' && typeof b !== 'string' && b !== null && String(b) === a);
}

// ---------------------------------------------------------------- one value

interface Ctx {
  mode: Mode;
  /** How a value is named in messages. */
  subject(path: Path): string;
  /** Values holding templates are left for later (checked once rendered). */
  deferTemplates?: boolean;
  /** YAML source text of a top-level scalar (keeps `0644` given to a string as written). */
  source?(name: string): string | undefined;
}

const varSubject = (path: Path) => `'${path.join('.')}'`;
const argSubject = (path: Path) =>
  path.length === 2 && typeof path[1] === 'number' ? `item ${path[1] + 1} of '${path[0]}'` : `argument '${path.join('.')}'`;

/** Check (and in `args` mode normalise) one value; violations are appended to `out`. */
function checkOne(o: OptionSpec, v: unknown, path: Path, c: Ctx, out: Violation[]): unknown {
  const subj = c.subject(path);
  const fail = (msg: string, hint?: string) => void out.push({ path: path.join('.'), msg: `${subj} ${msg}`, hint });
  if (c.deferTemplates && holdsTemplate(v)) return v;
  if (v === null || v === undefined) {
    if (o.required) fail('is required, found nothing', o.description);
    else if (c.mode === 'args') return o.default !== undefined ? structuredClone(o.default) : undefined;
    else if (!(o.default === null || o.type === 'list' || o.type === 'dict' || o.type === 'raw')) {
      fail(`must be ${typeWord(o)}, found nothing (null)`, o.default !== undefined ? `remove it to get the default ${show(o.default)}` : undefined);
    }
    return v;
  }
  const wrong = () => (fail(`must be ${typeWord(o)}, found ${describe(v, o.secret)}`, o.description), v);
  let value: unknown = v;
  switch (o.type) {
    case 'str':
    case 'path': {
      if (typeof v !== 'string' && typeof v !== 'number') return wrong();
      const s = typeof v === 'string' ? v : (path.length === 1 ? c.source?.(String(path[0])) : undefined) ?? String(v);
      value = s;
      if (!o.multiline && UNSAFE_CHAR_RAW.test(s)) return (fail(`must be one line of printable text, found ${describeUnsafe(s)}${o.secret ? '' : ` in ${show(s)}`}`), s);
      const max = o.max ?? (o.multiline ? Infinity : DEFAULT_MAX_STRING);
      if (s.length > max) return (fail(`is ${s.length} characters long, at most ${max} are accepted`), s);
      if (o.min !== undefined && s.length < o.min) return (fail(`must be at least ${o.min} characters long, found ${show(s, o.secret)}`), s);
      if (o.type === 'path' && (!s.startsWith('/') || s.split('/').includes('..') || !/^[A-Za-z0-9._+@/-]+$/.test(s))) {
        return (fail(`must be an absolute path of letters, digits and ._+@/- without '..', found ${show(s, o.secret)}`, 'e.g. /etc/modprobe.d/vfio.conf'), s);
      }
      if (o.pattern && !re(o.pattern).test(s)) return (fail(`must match ${o.pattern}, found ${show(s, o.secret)}`, o.description || undefined), s);
      break;
    }
    case 'int':
    case 'float': {
      const n = typeof v === 'string' && (o.type === 'int' ? /^-?\d{1,15}$/ : /^-?\d+(\.\d+)?$/).test(v.trim()) ? Number(v) : v;
      if (typeof n !== 'number' || !(o.type === 'int' ? Number.isInteger(n) : Number.isFinite(n))) return wrong();
      if ((o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) {
        fail(`must be between ${o.min ?? '-∞'} and ${o.max ?? '∞'}, found ${o.secret ? '(hidden)' : n}`);
      } else if (o.pattern && !re(o.pattern).test(String(n))) {
        fail(`must match ${o.pattern}, found ${o.secret ? '(hidden)' : n}`, o.description || undefined);
      }
      value = n;
      break;
    }
    case 'bool': {
      if (typeof v === 'boolean') break;
      if (typeof v === 'string' && /^(yes|true|on)$/i.test(v)) value = true;
      else if (typeof v === 'string' && /^(no|false|off)$/i.test(v)) value = false;
      else return wrong();
      break;
    }
    case 'list': {
      let items: unknown;
      if (Array.isArray(v)) items = v;
      else if (c.mode === 'vars') items = typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v;
      // a single scalar stands for a one-item list (not split at commas: kernel args hold commas)
      else items = typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? [v] : v;
      if (!Array.isArray(items)) return wrong();
      const max = o.max ?? DEFAULT_MAX_LIST;
      if (items.length > max) return (fail(`has ${items.length} items, at most ${max} are accepted`), v);
      if (o.min !== undefined && items.length < o.min) fail(`needs at least ${o.min} item(s)`);
      if (o.elements && o.elements !== 'raw') {
        const el: OptionSpec = { type: o.elements, description: o.description, pattern: o.pattern, secret: o.secret, multiline: o.multiline, required: true, options: o.options };
        items = items.map((x, i) => checkOne(el, x, [...path, i], c, out));
      }
      value = items;
      break;
    }
    case 'dict': {
      if (typeof v !== 'object' || Array.isArray(v)) return wrong();
      if (o.options) {
        const rec = v as Record<string, unknown>;
        const norm: Record<string, unknown> = { ...rec };
        for (const k of Object.keys(rec)) {
          if (!(k in o.options)) fail(`has an unknown key '${k}'`, `known keys: ${Object.keys(o.options).join(', ')}`);
        }
        for (const [k, sub] of Object.entries(o.options)) {
          if (rec[k] === undefined && !sub.required) continue;
          norm[k] = checkOne(sub, rec[k], [...path, k], c, out);
        }
        value = norm;
      }
      break;
    }
    case 'raw':
      break;
  }
  if (o.choices && o.choices.length && !o.choices.some((ch) => same(String(ch), value) || ch === value)) {
    const near = typeof value === 'string' ? suggest(value, o.choices.map(String)) : undefined;
    fail(`must be one of ${o.choices.map((ch) => String(ch)).join(', ')}; found ${show(value, o.secret)}`, near ? `did you mean '${near}'?` : undefined);
  }
  return value;
}

// ---------------------------------------------------------------- role variables

/** Check one variable's value against its option; returns every violation (empty = valid). */
export function checkValue(o: OptionSpec, v: unknown, path: string): Violation[] {
  const out: Violation[] = [];
  checkOne(o, v, path.split('.'), { mode: 'vars', subject: varSubject }, out);
  return out;
}

/**
 * Check the variables a role reads, as the host will see them (templates rendered). Throws a
 * ConfigError naming the variable and what is wrong (the engine reports it at the task).
 */
export function checkRoleVars(spec: { role: string; options: Readonly<Record<string, OptionSpec>> }, vars: Record<string, unknown>): void {
  for (const [name, o] of Object.entries(spec.options)) {
    const v = vars[name];
    if (v === undefined) continue;
    const bad = checkValue(o, v, name);
    if (bad.length) {
      throw new ConfigError(`variable ${bad.map((b) => b.msg).join('; ')} (role '${spec.role}')`, undefined, bad[0]!.hint ?? `see the variables of role '${spec.role}' in README.md`);
    }
  }
}

// ---------------------------------------------------------------- module arguments

/** One problem with a module's arguments; `arg` (as written) says where it is, none: at the module key. */
export interface ArgProblem {
  msg: string;
  hint?: string;
  arg?: string;
  /** Whether the problem is with the argument's name (else its value). */
  atKey?: boolean;
}

export interface ArgCheckOptions {
  /** At load: values holding templates are left for the run-time check. */
  deferTemplates?: boolean;
  /** YAML source text of a scalar argument (keeps `mode: 0644` given to a string as "0644"). */
  source?(name: string): string | undefined;
}

const given = (v: unknown) => v !== undefined && v !== null;

/**
 * Check a module's arguments against its spec: unknown names (with a hint), aliases normalised
 * to the canonical name, missing required arguments, types (with light coercion: '5' → 5 for
 * int, 'yes' → true for bool, a scalar → a one-item list), choices, then the cross-argument
 * rules. Returns the normalised arguments (defaults applied) and every problem; messages are
 * prefixed with `module '<name>'`.
 */
export function checkModuleArgs(module: string, spec: ArgumentSpec, args: Record<string, unknown>, opts: ArgCheckOptions = {}): { args: Record<string, unknown>; problems: ArgProblem[] } {
  const problems: ArgProblem[] = [];
  const canon = new Map<string, string>();
  for (const [name, o] of Object.entries(spec.options)) {
    canon.set(name, name);
    for (const a of o.aliases ?? []) canon.set(a, name);
  }
  const out: Record<string, unknown> = {};
  const written = new Map<string, string>(); // canonical → name as written
  for (const [w, value] of Object.entries(args ?? {})) {
    const name = canon.get(w);
    if (!name) {
      const near = suggest(w, canon.keys());
      problems.push({ msg: `module '${module}' has no argument '${w}'`, arg: w, atKey: true, hint: near ? `did you mean '${near}'?` : `arguments: ${Object.keys(spec.options).join(', ') || 'none'}` });
      continue;
    }
    if (written.has(name)) {
      problems.push({ msg: `module '${module}': argument '${name}' is given twice (as '${written.get(name)}' and '${w}')`, arg: w, atKey: true, hint: 'keep one of them' });
      continue;
    }
    written.set(name, w);
    const vs: Violation[] = [];
    const source = opts.source ? (n: string) => opts.source!(written.get(n) ?? n) : undefined;
    out[name] = checkOne(spec.options[name]!, value, [name], { mode: 'args', subject: argSubject, deferTemplates: opts.deferTemplates, source }, vs);
    for (const v of vs) problems.push({ msg: `module '${module}': ${v.msg}`, hint: v.hint, arg: w });
  }
  for (const [name, o] of Object.entries(spec.options)) {
    if (written.has(name)) continue;
    if (o.required) problems.push({ msg: `module '${module}' needs argument '${name}'`, hint: `${name}: ${o.description}` });
    else if (o.default !== undefined) out[name] = structuredClone(o.default);
  }
  if (problems.length === 0) for (const msg of ruleViolations(spec, out, written, opts.deferTemplates)) problems.push({ msg: `module '${module}': ${msg}` });
  return { args: out, problems };
}

/** The cross-argument rules; "given" means written in the task (a default does not count). */
function ruleViolations(spec: ArgumentSpec, args: Record<string, unknown>, written: Map<string, string>, deferTemplates?: boolean): string[] {
  const has = (k: string) => written.has(k) && given(args[k]);
  const out: string[] = [];
  const list = (ks: readonly string[], word: string) => (ks.length <= 2 ? ks.join(` ${word} `) : `${ks.slice(0, -1).join(', ')} ${word} ${ks.at(-1)}`);
  for (const g of spec.mutually_exclusive ?? []) {
    const on = g.filter(has);
    if (on.length > 1) out.push(`${list(on, 'and')} are mutually exclusive`);
  }
  for (const g of spec.required_together ?? []) {
    const on = g.filter(has);
    if (on.length && on.length < g.length) out.push(`${list(g, 'and')} go together: ${list(on, 'and')} given without ${list(g.filter((k) => !has(k)), 'and')}`);
  }
  for (const g of spec.required_one_of ?? []) if (!g.some(has)) out.push(`one of ${list(g, 'or')} is required`);
  for (const [k, v, reqs, anyOf] of spec.required_if ?? []) {
    const cur = args[k];
    if (deferTemplates && holdsTemplate(cur)) continue;
    if (!same(String(v), cur) && cur !== v) continue;
    const missing = reqs.filter((r) => !has(r));
    if (anyOf ? missing.length === reqs.length : missing.length > 0) {
      out.push(anyOf ? `${k}: ${String(v)} needs ${list(reqs, 'or')}` : `${list(missing, 'and')} ${missing.length > 1 ? 'are' : 'is'} required with ${k}: ${String(v)}`);
    }
  }
  return out;
}

/**
 * {@link checkModuleArgs} for run time: the rendered arguments, normalised, or a ConfigError
 * (ConfigErrors when several) at `where.pos`.
 */
export function checkArgs(spec: ArgumentSpec, args: Record<string, unknown>, where: { pos?: ConfigError['pos']; module: string }): Record<string, unknown> {
  const r = checkModuleArgs(where.module, spec, args);
  const errs = r.problems.map((p) => new ConfigError(p.msg, where.pos, p.hint));
  if (errs.length === 1) throw errs[0];
  if (errs.length > 1) throw new ConfigErrors(errs);
  return r.args;
}
