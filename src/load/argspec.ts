/**
 * Argument specs: the typed description of every variable a role reads, in Ansible's
 * `meta/argument_specs.yml` shape (`argument_specs: { main: { options: … } }`, each option with
 * `type`, `elements`, `choices`, `default`, `description`, `required`, `options` for a dict's
 * keys), plus passthru's `pattern` (a regular expression the whole string must match; for a list,
 * each element), `min`/`max` (numbers; for strings and lists, their length) and `secret` (never
 * shown in a message).
 *
 * A role's spec lives in `roles/<name>/argument_specs.yaml`. It is checked at load against the
 * merged variables of every host a stage targets (role defaults < inventory < stage vars < role
 * reference vars < -e), with the file:line:col of the offending value, before any host is
 * contacted; values that are templates are checked when rendered, on the host, by the same code.
 *
 * The spec is plain data (see {@link OptionSpec}); {@link toJsonSchema} turns it into a JSON
 * Schema, so editor schemas can be generated from the same source.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Pos, Vars } from '../model/types.ts';
import { ConfigError } from '../model/errors.ts';
import { Errors, loadYamlFileSync, mapEntries, toJS, type YamlFile, type YNode } from './yaml.ts';

export const TYPES = ['str', 'int', 'float', 'bool', 'list', 'dict', 'path', 'raw'] as const;
export type OptionType = (typeof TYPES)[number];

export interface OptionSpec {
  type: OptionType;
  description: string;
  default?: unknown;
  required?: boolean;
  /** Type of each element of a list. */
  elements?: OptionType;
  choices?: unknown[];
  /** A regular expression the whole string (each string element of a list) must match. */
  pattern?: string;
  /** Numbers: the range. Strings and lists: the length range. */
  min?: number;
  max?: number;
  /** The keys of a dict. */
  options?: Record<string, OptionSpec>;
  /** Never shown in a message. */
  secret?: boolean;
}

export interface RoleArgSpec {
  role: string;
  file: string;
  short_description?: string;
  options: Record<string, OptionSpec>;
  /** Where each option is described (for errors in the spec itself). */
  pos: Map<string, Pos>;
}

/** Longest string any option accepts unless its `max` says otherwise. */
export const DEFAULT_MAX_STRING = 4096;
/** Longest list any option accepts unless its `max` says otherwise. */
export const DEFAULT_MAX_LIST = 1024;

const OPTION_KEYS = ['type', 'description', 'default', 'required', 'elements', 'choices', 'pattern', 'min', 'max', 'options', 'secret', 'version_added', 'aliases'] as const;

// ---------------------------------------------------------------- loading

/** `roles/<name>/argument_specs.yaml` (or `.yml`, or Ansible's `meta/argument_specs.yml`), if any. */
export function argSpecFile(roleDir: string): string | undefined {
  for (const f of ['argument_specs.yaml', 'argument_specs.yml', 'meta/argument_specs.yaml', 'meta/argument_specs.yml']) {
    const p = join(roleDir, f);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export function loadArgSpec(role: string, file: string, errs: Errors): RoleArgSpec | undefined {
  let yf: YamlFile;
  try {
    yf = loadYamlFileSync(file);
  } catch (e) {
    errs.push(e);
    return undefined;
  }
  const top = mapEntries(yf, yf.root, errs, `argument specs of role '${role}'`, { allowed: ['argument_specs'] });
  const specs = top?.find((e) => e.key === 'argument_specs');
  if (!specs) {
    if (top) errs.add(`argument specs of role '${role}' need a top-level 'argument_specs:' map`, yf.pos(yf.root));
    return undefined;
  }
  const entry = mapEntries(yf, specs.node, errs, 'argument_specs', { allowed: ['main'] })?.find((e) => e.key === 'main');
  if (!entry) {
    errs.add(`argument specs of role '${role}' need an entry point 'main'`, specs.pos);
    return undefined;
  }
  const spec: RoleArgSpec = { role, file, options: {}, pos: new Map() };
  for (const e of mapEntries(yf, entry.node, errs, 'argument_specs.main', { allowed: ['short_description', 'description', 'author', 'options'] }) ?? []) {
    if (e.key === 'short_description') spec.short_description = String(toJS(e.node) ?? '');
    if (e.key === 'options') spec.options = readOptions(yf, e.node, errs, '', spec.pos);
  }
  return spec;
}

function readOptions(yf: YamlFile, node: YNode, errs: Errors, prefix: string, posMap: Map<string, Pos>): Record<string, OptionSpec> {
  const out: Record<string, OptionSpec> = {};
  for (const e of mapEntries(yf, node, errs, `options${prefix ? ` of ${prefix}` : ''}`) ?? []) {
    const name = prefix ? `${prefix}.${e.key}` : e.key;
    posMap.set(name, e.keyPos);
    const opt: Partial<OptionSpec> = {};
    for (const k of mapEntries(yf, e.node, errs, `option '${name}'`, { allowed: OPTION_KEYS }) ?? []) {
      if (k.key === 'options') opt.options = readOptions(yf, k.node, errs, name, posMap);
      else (opt as Record<string, unknown>)[k.key] = toJS(k.node);
    }
    const bad = (msg: string) => errs.add(`option '${name}': ${msg}`, e.keyPos);
    if (!TYPES.includes(opt.type as OptionType)) bad(`type must be one of ${TYPES.join(', ')}`);
    if (opt.elements !== undefined && !TYPES.includes(opt.elements)) bad(`elements must be one of ${TYPES.join(', ')}`);
    if (typeof opt.description !== 'string' || !opt.description.trim()) bad('needs a description');
    if (opt.pattern !== undefined) {
      try {
        new RegExp(opt.pattern);
      } catch (x) {
        bad(`pattern is not a regular expression: ${(x as Error).message}`);
      }
    }
    if (opt.choices !== undefined && !Array.isArray(opt.choices)) bad('choices must be a list');
    out[e.key] = opt as OptionSpec;
  }
  // a default must pass its own spec
  for (const [k, o] of Object.entries(out)) {
    if (o.default === undefined || !TYPES.includes(o.type)) continue;
    const p = prefix ? `${prefix}.${k}` : k;
    for (const v of checkValue(o, o.default, p)) errs.add(`option '${p}': its default is invalid: ${v.msg}`, posMap.get(p));
  }
  return out;
}

/** Specs of a role directory; undefined when the role has none. Errors in the spec are ConfigErrors. */
export function loadRoleArgSpec(role: string, roleDir: string, errs: Errors): RoleArgSpec | undefined {
  const f = argSpecFile(roleDir);
  return f ? loadArgSpec(role, f, errs) : undefined;
}

// ---------------------------------------------------------------- checking values

export interface Violation {
  /** Dotted path of the value: `hugepages.count`, `vfio_ids.1`. */
  path: string;
  msg: string;
  hint?: string;
}

/** A value as shown in a message: short, escaped (newlines and control bytes visible), or hidden. */
export function show(v: unknown, secret = false): string {
  if (secret) return '(hidden)';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (v === null || v === undefined) return 'nothing (null)';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'a map';
  return String(v);
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

/** Check one value against its option; returns every violation (empty = valid). */
export function checkValue(o: OptionSpec, v: unknown, path: string): Violation[] {
  const out: Violation[] = [];
  const shown = show(v, o.secret);
  const fail = (msg: string, hint?: string) => out.push({ path, msg, hint });
  if (v === null || v === undefined) {
    if (o.required) fail(`'${path}' is required, found nothing`);
    else if (!(o.default === null || o.type === 'list' || o.type === 'dict' || o.type === 'raw')) fail(`'${path}' must be ${typeWord(o)}, found nothing (null)`, o.default !== undefined ? `remove it to get the default ${show(o.default)}` : undefined);
    return out;
  }
  if (o.choices && o.choices.length) {
    if (!o.choices.some((c) => same(String(c), v) || c === v)) fail(`'${path}' must be one of ${o.choices.map((c) => String(c)).join(', ')}, found ${shown}`);
    return out;
  }
  switch (o.type) {
    case 'str':
    case 'path': {
      if (typeof v !== 'string' && typeof v !== 'number') return (fail(`'${path}' must be ${typeWord(o)}, found ${typeof v === 'boolean' ? `the boolean ${v}` : shown}`), out);
      const s = String(v);
      if (UNSAFE_CHAR_RAW.test(s)) return (fail(`'${path}' must be one line of printable text, found ${describeUnsafe(s)}${o.secret ? '' : ` in ${shown}`}`), out);
      const max = o.max ?? DEFAULT_MAX_STRING;
      if (s.length > max) return (fail(`'${path}' is ${s.length} characters long, at most ${max} are accepted`), out);
      if (o.min !== undefined && s.length < o.min) return (fail(`'${path}' must be at least ${o.min} characters long, found ${shown}`), out);
      if (o.type === 'path' && (!s.startsWith('/') || s.split('/').includes('..') || !/^[A-Za-z0-9._+@/-]+$/.test(s))) {
        return (fail(`'${path}' must be an absolute path of letters, digits and ._+@/- without '..', found ${shown}`, 'e.g. /etc/modprobe.d/vfio.conf'), out);
      }
      if (o.pattern && !re(o.pattern).test(s)) fail(`'${path}' must match ${o.pattern}, found ${shown}`, o.description || undefined);
      return out;
    }
    case 'int': {
      const n = typeof v === 'string' && /^-?\d{1,15}$/.test(v.trim()) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n)) return (fail(`'${path}' must be a whole number, found ${typeof v === 'boolean' ? `the boolean ${v}` : shown}`), out);
      range(n);
      return out;
    }
    case 'float': {
      const n = typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isFinite(n)) return (fail(`'${path}' must be a number, found ${typeof v === 'boolean' ? `the boolean ${v}` : shown}`), out);
      range(n);
      return out;
    }
    case 'bool': {
      if (typeof v === 'boolean') return out;
      if (typeof v === 'string' && /^(yes|no|true|false|on|off)$/i.test(v)) return out;
      fail(`'${path}' must be true or false, found ${shown}`);
      return out;
    }
    case 'list': {
      const items = typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v;
      if (!Array.isArray(items)) return (fail(`'${path}' must be a list, found ${shown}`), out);
      const max = o.max ?? DEFAULT_MAX_LIST;
      if (items.length > max) return (fail(`'${path}' has ${items.length} items, at most ${max} are accepted`), out);
      if (o.min !== undefined && items.length < o.min) fail(`'${path}' needs at least ${o.min} item(s)`);
      if (o.elements) {
        const el: OptionSpec = { type: o.elements, description: o.description, pattern: o.pattern, secret: o.secret, required: true, options: o.options };
        items.forEach((x, i) => out.push(...checkValue(el, x, `${path}.${i}`)));
      }
      return out;
    }
    case 'dict': {
      if (typeof v !== 'object' || Array.isArray(v)) return (fail(`'${path}' must be a map, found ${shown}`), out);
      if (o.options) {
        const rec = v as Record<string, unknown>;
        for (const k of Object.keys(rec)) {
          if (!(k in o.options)) fail(`unknown key '${k}' in '${path}'`, `known keys: ${Object.keys(o.options).join(', ')}`);
        }
        for (const [k, sub] of Object.entries(o.options)) {
          if (rec[k] === undefined && !sub.required) continue;
          out.push(...checkValue(sub, rec[k], `${path}.${k}`));
        }
      }
      return out;
    }
    case 'raw':
      return out;
  }
  function range(n: number): void {
    if ((o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) {
      fail(`'${path}' must be between ${o.min ?? '-∞'} and ${o.max ?? '∞'}, found ${o.secret ? '(hidden)' : n}`);
    }
  }
}

function typeWord(o: OptionSpec): string {
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

/** Does the value hold a template (`{{`/`{%`) anywhere? Those are checked when rendered, on the host. */
export function holdsTemplate(v: unknown, depth = 0): boolean {
  if (depth > 64) return false;
  if (typeof v === 'string') return v.includes('{{') || v.includes('{%');
  if (Array.isArray(v)) return v.some((x) => holdsTemplate(x, depth + 1));
  if (v && typeof v === 'object') return Object.values(v).some((x) => holdsTemplate(x, depth + 1));
  return false;
}

/**
 * Check the variables a role reads, as the host will see them, on the host (templates rendered).
 * Throws a ConfigError naming the variable and what is wrong (the engine reports it at the task).
 */
export function checkRoleVars(spec: RoleArgSpec, vars: Vars): void {
  for (const [name, o] of Object.entries(spec.options)) {
    const v = vars[name];
    if (v === undefined) continue;
    const bad = checkValue(o, v, name);
    if (bad.length) {
      throw new ConfigError(`variable ${bad.map((b) => b.msg).join('; ')} (role '${spec.role}')`, undefined, bad[0]!.hint ?? `see the variables of role '${spec.role}' in README.md`);
    }
  }
}

// ---------------------------------------------------------------- JSON Schema

/** A JSON Schema (draft 2020-12) for one option. */
export function optionSchema(o: OptionSpec): Record<string, unknown> {
  const s: Record<string, unknown> = { description: o.description };
  if (o.default !== undefined) s.default = o.default;
  if (o.choices) return { ...s, enum: o.choices };
  const strish = (p?: string) => ({ type: 'string', maxLength: o.max ?? DEFAULT_MAX_STRING, ...(o.min !== undefined ? { minLength: o.min } : {}), ...(p ? { pattern: p } : {}) });
  const nullable = (x: Record<string, unknown>) => (o.default === null && !o.required ? { ...s, anyOf: [x, { type: 'null' }] } : { ...s, ...x });
  switch (o.type) {
    case 'str':
      return nullable(strish(o.pattern));
    case 'path':
      return nullable(strish(o.pattern ?? '^/[A-Za-z0-9._+@/-]+$'));
    case 'int':
      return nullable({ type: 'integer', ...(o.min !== undefined ? { minimum: o.min } : {}), ...(o.max !== undefined ? { maximum: o.max } : {}) });
    case 'float':
      return nullable({ type: 'number', ...(o.min !== undefined ? { minimum: o.min } : {}), ...(o.max !== undefined ? { maximum: o.max } : {}) });
    case 'bool':
      return nullable({ type: 'boolean' });
    case 'list': {
      const el = o.elements ? optionSchema({ type: o.elements, description: o.description, pattern: o.pattern, options: o.options }) : {};
      delete el.description;
      return { ...s, anyOf: [{ type: 'array', maxItems: o.max ?? DEFAULT_MAX_LIST, items: el }, { type: 'null' }] };
    }
    case 'dict': {
      const props: Record<string, unknown> = {};
      for (const [k, sub] of Object.entries(o.options ?? {})) props[k] = optionSchema(sub);
      return { ...s, anyOf: [{ type: 'object', properties: props, additionalProperties: !o.options }, { type: 'null' }] };
    }
    default:
      return s;
  }
}

/** JSON Schema of a set of variables (e.g. every role's options merged). */
export function toJsonSchema(options: Record<string, OptionSpec>, title = 'passthru host variables'): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const [k, o] of Object.entries(options)) properties[k] = optionSchema(o);
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', title, type: 'object', properties };
}
