/**
 * The filters (`x | name(args)`), tests (`x is name(args)`), functions and methods of the
 * expression language. Adding one is one line in the matching table.
 */
import { shq } from '../model/shell.ts';
import { runRegex } from './regex.ts';
import { ansibleBool } from '../model/truth.ts';
import { compareVersions } from '../model/version.ts';
import { compare, equal, isMapValue, stringify, truthy, typeName, UNDEF, ValueError } from './values.ts';

type Kw = Record<string, unknown>;
export type Filter = (v: unknown, args: unknown[], kw: Kw) => unknown;
export type Test = (v: unknown, args: unknown[]) => boolean;

// ---------------------------------------------------------------- argument helpers

function list(v: unknown, f: string): unknown[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string') return [...v];
  if (isMapValue(v)) return Object.keys(v);
  throw new ValueError(`${f} expects a list, got ${typeName(v)}`);
}
function str(v: unknown, f: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new ValueError(`${f} expects a string, got ${typeName(v)}`, 'convert it with | string');
}
function map(v: unknown, f: string): Record<string, unknown> {
  if (isMapValue(v)) return v;
  throw new ValueError(`${f} expects a map, got ${typeName(v)}`);
}
function num(v: unknown, f: string): number {
  if (typeof v === 'number') return v;
  throw new ValueError(`${f} expects a number, got ${typeName(v)}`, 'convert it with | int');
}
/** `a.b.c` lookups for `attribute=` arguments. */
function attr(item: unknown, path: unknown): unknown {
  let cur: unknown = item;
  for (const part of String(path).split('.')) {
    if (Array.isArray(cur) && /^\d+$/.test(part)) cur = cur[Number(part)];
    else if (isMapValue(cur) && part in cur) cur = cur[part];
    else return UNDEF;
  }
  return cur;
}
function uniq(xs: unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const x of xs) if (!out.some((y) => equal(x, y))) out.push(x);
  return out;
}
function toInt(v: unknown, dflt = 0, base = 10): number {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.trunc(v) : dflt;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') {
    const s = v.trim();
    const n = base === 10 && /^[-+]?0x[0-9a-f]+$/i.test(s) ? Number.parseInt(s, 16) : Number.parseInt(s, base);
    return /^[-+]?[0-9a-fx.]+$/i.test(s) && !Number.isNaN(n) ? n : dflt;
  }
  return dflt;
}
function pyRepl(r: string): string {
  // Python-style backreferences (\1, \g<name>) to JS ($1, $<name>); a literal $ stays literal
  return r.replace(/\$/g, '$$$$').replace(/\\g<(\w+)>/g, '$$<$1>').replace(/\\(\d+)/g, '$$$1');
}
function minmax(v: unknown, kw: Kw, f: string, sign: 1 | -1): unknown {
  const xs = list(v, f);
  if (!xs.length) return null;
  const key = (x: unknown): unknown => (kw.attribute !== undefined ? attr(x, kw.attribute) : x);
  return xs.reduce((a, b) => (compare(key(b), key(a)) * sign < 0 ? b : a));
}
/** Python's json.dumps defaults (what Ansible's to_json gives): `{"a": 1, "b": [1, 2]}`, non-ASCII as \\uXXXX. */
function pyJsonDumps(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(pyJsonDumps).join(', ')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${pyJsonDumps(k)}: ${pyJsonDumps(x)}`).join(', ')}}`;
  if (v === undefined) return 'null';
  return JSON.stringify(v).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function flatten(xs: unknown[], levels: number, skipNulls = false): unknown[] {
  return xs.flatMap((x) =>
    skipNulls && (x === null || x === 'None' || x === 'null') ? [] : Array.isArray(x) && levels !== 0 ? flatten(x, levels - 1, skipNulls) : [x],
  );
}
function combine(a: Record<string, unknown>, b: Record<string, unknown>, recursive: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = recursive && isMapValue(out[k]) && isMapValue(v) ? combine(out[k] as Kw, v, true) : v;
  return out;
}

// ---------------------------------------------------------------- tests

export const TESTS: Record<string, Test> = {
  defined: (v) => v !== UNDEF,
  undefined: (v) => v === UNDEF,
  none: (v) => v === null,
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number',
  integer: (v) => typeof v === 'number' && Number.isInteger(v),
  float: (v) => typeof v === 'number' && !Number.isInteger(v),
  boolean: (v) => typeof v === 'boolean',
  mapping: (v) => isMapValue(v),
  sequence: (v) => Array.isArray(v) || typeof v === 'string',
  iterable: (v) => Array.isArray(v) || typeof v === 'string' || isMapValue(v),
  list: (v) => Array.isArray(v),
  truthy: (v) => truthy(v),
  falsy: (v) => !truthy(v),
  empty: (v) => !truthy(v) && (Array.isArray(v) || typeof v === 'string' || isMapValue(v)),
  equalto: (v, [x]) => equal(v, x),
  eq: (v, [x]) => equal(v, x),
  '==': (v, [x]) => equal(v, x),
  ne: (v, [x]) => !equal(v, x),
  '!=': (v, [x]) => !equal(v, x),
  lt: (v, [x]) => compare(v, x) < 0,
  '<': (v, [x]) => compare(v, x) < 0,
  le: (v, [x]) => compare(v, x) <= 0,
  '<=': (v, [x]) => compare(v, x) <= 0,
  gt: (v, [x]) => compare(v, x) > 0,
  '>': (v, [x]) => compare(v, x) > 0,
  ge: (v, [x]) => compare(v, x) >= 0,
  '>=': (v, [x]) => compare(v, x) >= 0,
  sameas: (v, [x]) => v === x,
  in: (v, [x]) => contains(x, v),
  contains: (v, [x]) => contains(v, x),
  match: (v, [re]) => typeof v === 'string' && runRegex('match', '^(?:' + str(re, 'match') + ')', '', 'test', v) === true,
  search: (v, [re]) => typeof v === 'string' && runRegex('search', str(re, 'search'), '', 'test', v) === true,
  regex: (v, [re]) => typeof v === 'string' && runRegex('regex', str(re, 'regex'), '', 'test', v) === true,
  startswith: (v, [s]) => typeof v === 'string' && v.startsWith(str(s, 'startswith')),
  endswith: (v, [s]) => typeof v === 'string' && v.endsWith(str(s, 'endswith')),
  divisibleby: (v, [n]) => num(v, 'divisibleby') % num(n, 'divisibleby') === 0,
  even: (v) => num(v, 'even') % 2 === 0,
  odd: (v) => Math.abs(num(v, 'odd') % 2) === 1,
  lower: (v) => typeof v === 'string' && v === v.toLowerCase(),
  upper: (v) => typeof v === 'string' && v === v.toUpperCase(),
  /** `x is version('6.1', '>=')` */
  version: (v, [other, op = '==']) => {
    const c = compareVersions(str(v, 'version'), str(other, 'version'));
    switch (op) {
      case '==': case 'eq': return c === 0;
      case '!=': case 'ne': return c !== 0;
      case '<': case 'lt': return c < 0;
      case '<=': case 'le': return c <= 0;
      case '>': case 'gt': return c > 0;
      case '>=': case 'ge': return c >= 0;
    }
    throw new ValueError(`version: unknown operator '${String(op)}'`, 'use one of == != < <= > >=');
  },
};

export function contains(container: unknown, item: unknown): boolean {
  if (typeof container === 'string') return typeof item === 'string' && container.includes(item);
  if (Array.isArray(container)) return container.some((x) => equal(x, item));
  if (isMapValue(container)) return typeof item === 'string' && Object.prototype.hasOwnProperty.call(container, item);
  if (container === null || container === UNDEF) return false;
  throw new ValueError(`'in' needs a list, map or string on its right, got ${typeName(container)}`);
}

function runTest(name: unknown, v: unknown, args: unknown[]): boolean {
  const t = TESTS[String(name)];
  if (!t) throw new ValueError(`unknown test '${String(name)}'`);
  return t(v, args);
}

// ---------------------------------------------------------------- filters

/** Filters that receive an undefined operand instead of failing on it. */
export const LENIENT_FILTERS = new Set(['default', 'd', 'mandatory']);

export const FILTERS: Record<string, Filter> = {
  default: (v, [d = '', boolean]) => (v === UNDEF || (boolean === true && !truthy(v)) ? d : v),
  d: (v, a, k) => FILTERS.default!(v, a, k),
  mandatory: (v, [msg]) => {
    if (v === UNDEF) throw new ValueError(msg !== undefined ? String(msg) : 'mandatory variable is not defined');
    return v;
  },
  join: (v, [sep = ''], kw) => list(v, 'join').map((x) => stringify(kw.attribute !== undefined ? attr(x, kw.attribute) : x)).join(str(sep, 'join')),
  length: (v) => {
    if (typeof v === 'string' || Array.isArray(v)) return v.length;
    if (isMapValue(v)) return Object.keys(v).length;
    throw new ValueError(`length expects a list, map or string, got ${typeName(v)}`);
  },
  count: (v, a, k) => FILTERS.length!(v, a, k),
  lower: (v) => str(v, 'lower').toLowerCase(),
  upper: (v) => str(v, 'upper').toUpperCase(),
  capitalize: (v) => {
    const s = str(v, 'capitalize');
    return s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
  },
  trim: (v) => str(v, 'trim').trim(),
  int: (v, [d = 0, base = 10]) => toInt(v, num(d, 'int'), num(base, 'int')),
  float: (v, [d = 0]) => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    return Number.isNaN(n) ? d : n;
  },
  string: (v) => stringify(v),
  bool: (v) => ansibleBool(v),
  abs: (v) => Math.abs(num(v, 'abs')),
  round: (v, [precision = 0, method = 'common']) => {
    const f = 10 ** num(precision, 'round');
    // 'common' is Python's round(): halves go to the even neighbour (2.5 → 2, 3.5 → 4)
    const half = (y: number): number => (Math.abs(y % 1) === 0.5 ? 2 * Math.round(y / 2) : Math.round(y));
    const fn = method === 'ceil' ? Math.ceil : method === 'floor' ? Math.floor : half;
    return fn(num(v, 'round') * f) / f;
  },
  unique: (v) => uniq(list(v, 'unique')),
  sort: (v, [reverse = false], kw) => {
    const key = (x: unknown): unknown => (kw.attribute !== undefined ? attr(x, kw.attribute) : x);
    const rev = kw.reverse ?? reverse;
    const out = [...list(v, 'sort')].sort((a, b) => compare(key(a), key(b)));
    return rev === true ? out.reverse() : out;
  },
  reverse: (v) => (typeof v === 'string' ? [...v].reverse().join('') : [...list(v, 'reverse')].reverse()),
  first: (v) => (typeof v === 'string' ? v.charAt(0) : (list(v, 'first')[0] ?? null)),
  last: (v) => (typeof v === 'string' ? v.slice(-1) : (list(v, 'last').at(-1) ?? null)),
  list: (v) => [...list(v, 'list')],
  // as Ansible's flatten: levels (positional or levels=), null items dropped unless skip_nulls=false
  flatten: (v, [levels = -1, skipNulls = true], kw) =>
    flatten(list(v, 'flatten'), num(kw.levels ?? levels ?? -1, 'flatten'), (kw.skip_nulls ?? skipNulls) !== false),
  keys: (v) => Object.keys(map(v, 'keys')),
  values: (v) => Object.values(map(v, 'values')),
  dict2items: (v) => Object.entries(map(v, 'dict2items')).map(([key, value]) => ({ key, value })),
  items2dict: (v, _a, kw) =>
    Object.fromEntries(
      list(v, 'items2dict').map((x) => [stringify(attr(x, kw.key_name ?? 'key')), attr(x, kw.value_name ?? 'value')]),
    ),
  combine: (v, args, kw) => args.reduce<Record<string, unknown>>((acc, m) => combine(acc, map(m, 'combine'), kw.recursive === true), map(v, 'combine')),
  min: (v, _a, kw) => minmax(v, kw, 'min', 1),
  max: (v, _a, kw) => minmax(v, kw, 'max', -1),
  sum: (v, [start = 0], kw) =>
    list(v, 'sum').reduce<number>((acc, x) => acc + num(kw.attribute !== undefined ? attr(x, kw.attribute) : x, 'sum'), num(kw.start ?? start, 'sum')),
  /** `map(attribute='a')` or `map('filter', args...)` */
  map: (v, [name, ...rest], kw) => {
    const xs = list(v, 'map');
    if (kw.attribute !== undefined) return xs.map((x) => {
      const r = attr(x, kw.attribute);
      if (r === UNDEF) {
        if ('default' in kw) return kw.default;
        throw new ValueError(`map: an item has no attribute '${String(kw.attribute)}'`, "add default=... or filter the list first with selectattr");
      }
      return r;
    });
    const f = FILTERS[String(name)];
    if (!f) throw new ValueError(`map: unknown filter '${String(name)}'`, "use map(attribute='name') or map('filter')");
    return xs.map((x) => f(x, rest, {}));
  },
  select: (v, [test, ...rest]) => list(v, 'select').filter((x) => (test === undefined ? truthy(x) : runTest(test, x, rest))),
  reject: (v, [test, ...rest]) => list(v, 'reject').filter((x) => !(test === undefined ? truthy(x) : runTest(test, x, rest))),
  selectattr: (v, [a, test, ...rest]) =>
    list(v, 'selectattr').filter((x) => {
      const y = attr(x, a);
      return test === undefined ? truthy(y) : runTest(test, y, rest);
    }),
  rejectattr: (v, [a, test, ...rest]) =>
    list(v, 'rejectattr').filter((x) => {
      const y = attr(x, a);
      return !(test === undefined ? truthy(y) : runTest(test, y, rest));
    }),
  replace: (v, [a, b = '']) => str(v, 'replace').split(str(a, 'replace')).join(str(b, 'replace')),
  split: (v, [sep, max]) => {
    const s = str(v, 'split');
    if (sep === undefined || sep === null) return s.trim() === '' ? [] : s.trim().split(/\s+/);
    const parts = s.split(str(sep, 'split'));
    if (typeof max === 'number' && max >= 0 && parts.length > max + 1) return [...parts.slice(0, max), parts.slice(max).join(String(sep))];
    return parts;
  },
  /** The first match (or the listed groups: '\\1', '\\g<name>'), or null when nothing matches. */
  regex_search: (v, [re, ...groups], kw) => {
    const r = runRegex('regex_search', str(re, 'regex_search'), kw.ignorecase === true ? 'i' : '', 'exec', str(v, 'regex_search')) as { m: Array<string | null>; groups: Record<string, string | null> | null } | null;
    if (!r) return null;
    const m = Object.assign(r.m, { groups: r.groups ?? undefined });
    if (!groups.length) return m[0];
    return groups.map((g) => {
      const s = String(g);
      const n = /^\\(\d+)$/.exec(s);
      const named = /^\\g<(\w+)>$/.exec(s);
      return n ? (m[Number(n[1])] ?? null) : named ? (m.groups?.[named[1]!] ?? null) : null;
    });
  },
  regex_findall: (v, [re], kw) =>
    (runRegex('regex_findall', str(re, 'regex_findall'), 'g' + (kw.ignorecase === true ? 'i' : ''), 'findall', str(v, 'regex_findall')) as Array<Array<string | null>>).map((m) =>
      m.length > 2 ? m.slice(1) : (m[1] ?? m[0]),
    ),
  regex_replace: (v, [re, repl = ''], kw) =>
    runRegex('regex_replace', str(re, 'regex_replace'), 'g' + (kw.ignorecase === true ? 'i' : '') + (kw.multiline === true ? 'm' : ''), 'replace', str(v, 'regex_replace'), pyRepl(str(repl, 'regex_replace'))),
  union: (v, [o]) => uniq([...list(v, 'union'), ...list(o, 'union')]),
  difference: (v, [o]) => uniq(list(v, 'difference').filter((x) => !list(o, 'difference').some((y) => equal(x, y)))),
  intersect: (v, [o]) => uniq(list(v, 'intersect').filter((x) => list(o, 'intersect').some((y) => equal(x, y)))),
  symmetric_difference: (v, [o]) => {
    const a = list(v, 'symmetric_difference');
    const b = list(o, 'symmetric_difference');
    return uniq([...a.filter((x) => !b.some((y) => equal(x, y))), ...b.filter((x) => !a.some((y) => equal(x, y)))]);
  },
  ternary: (v, [a, b, none]) => (v === null && none !== undefined ? none : truthy(v) ? a : b),
  basename: (v) => str(v, 'basename').replace(/\/+$/, '').split('/').at(-1) ?? '',
  dirname: (v) => {
    const s = str(v, 'dirname');
    const i = s.lastIndexOf('/');
    return i < 0 ? '' : i === 0 ? '/' : s.slice(0, i);
  },
  quote: (v) => {
    const s = stringify(v);
    if (s.includes('\0')) throw new ValueError('quote: the value holds a NUL byte, which no shell argument can carry');
    return shq(s);
  },
  to_json: (v) => pyJsonDumps(v),
  from_json: (v) => {
    try {
      return JSON.parse(str(v, 'from_json'));
    } catch (e) {
      throw new ValueError(`from_json: ${(e as Error).message}`);
    }
  },
};

// ---------------------------------------------------------------- functions and methods

export const FUNCTIONS: Record<string, (args: unknown[], kw: Kw) => unknown> = {
  range: (args) => {
    const [a, b, step = 1] = args.map((x) => num(x, 'range'));
    const [start, stop] = b === undefined ? [0, a ?? 0] : [a!, b];
    if (step === 0) throw new ValueError('range: step must not be 0');
    const out: number[] = [];
    for (let i = start; step > 0 ? i < stop : i > stop; i += step) {
      out.push(i);
      if (out.length > 100000) throw new ValueError('range: too many items');
    }
    return out;
  },
};

/** Methods callable as `value.name(args)`, by value type. */
export const METHODS: Record<string, (self: unknown, args: unknown[]) => unknown> = {
  startswith: (s, [p]) => str(s, 'startswith').startsWith(str(p, 'startswith')),
  endswith: (s, [p]) => str(s, 'endswith').endsWith(str(p, 'endswith')),
  strip: (s, [chars]) => (chars === undefined ? str(s, 'strip').trim() : stripChars(str(s, 'strip'), str(chars, 'strip'))),
  lstrip: (s) => str(s, 'lstrip').trimStart(),
  rstrip: (s) => str(s, 'rstrip').trimEnd(),
  lower: (s) => str(s, 'lower').toLowerCase(),
  upper: (s) => str(s, 'upper').toUpperCase(),
  split: (s, [sep, max]) => FILTERS.split!(s, [sep, max], {}),
  replace: (s, [a, b]) => FILTERS.replace!(s, [a, b], {}),
  join: (sep, [xs]) => list(xs, 'join').map(stringify).join(str(sep, 'join')),
  keys: (m) => Object.keys(map(m, 'keys')),
  values: (m) => Object.values(map(m, 'values')),
  items: (m) => Object.entries(map(m, 'items')),
  get: (m, [k, d = null]) => {
    const o = map(m, 'get');
    return Object.prototype.hasOwnProperty.call(o, String(k)) ? o[String(k)] : d;
  },
  index: (xs, [x]) => {
    const i = list(xs, 'index').findIndex((y) => equal(x, y));
    if (i < 0) throw new ValueError('index: item not in list');
    return i;
  },
  count: (xs, [x]) => list(xs, 'count').filter((y) => equal(x, y)).length,
};

function stripChars(s: string, chars: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && chars.includes(s[a]!)) a++;
  while (b > a && chars.includes(s[b - 1]!)) b--;
  return s.slice(a, b);
}
