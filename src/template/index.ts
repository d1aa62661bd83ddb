/**
 * # Templates and expressions
 *
 * Strings in tasks, handlers, gates and vars may hold `{{ expr }}`. A string that is exactly
 * one `{{ expr }}` keeps the expression's type (a list stays a list, a number a number); in
 * any other string each `{{ expr }}` is replaced by its text (null → empty, true/false, lists
 * and maps as JSON). `when:` takes a bare expression, without braces.
 *
 * ## Expressions
 * - Literals: `42`, `1.5`, `0x1f`, `'text'`, `"text"` (with `\n`, `\t`, `\\` escapes),
 *   `true`/`false` (also `True`/`False`), `null` (also `none`/`None`), lists `[1, 'a']`,
 *   maps `{'key': value}` (a bare name before `:` is taken as the key itself).
 * - Variables: `name`, attributes `facts.cpuVendor`, indexing `gpus[0]`, `gpus[-1]`, `m['key']`.
 *   An undefined variable or attribute is an error that names it and suggests the closest
 *   defined name, except under `| default(...)` and `is defined` / `is not defined`.
 * - Operators, lowest to highest precedence:
 *   `a if cond else b` · `or` · `and` · `not` · `== != < <= > >= in, not in` · `~` (text
 *   concatenation) · `+ -` · `* / // %` · `**` · unary `-` · `| filter` and `is test` ·
 *   `.attr [index] (call)`. `and`/`or` short-circuit and return an operand, as in Python.
 *   `+` adds numbers, joins strings, concatenates lists. Truthiness: false, null, 0, '', [],
 *   {} are false; everything else is true.
 * - Filters (`x | name` or `x | name(args, key=value)`): default (alias d; `default(v, true)`
 *   also replaces falsy values), mandatory, join(sep), length (count), lower, upper,
 *   capitalize, trim, int, float, string, bool, abs, round, unique, sort(reverse,
 *   attribute=), reverse, first, last, list, flatten, keys, values, dict2items, items2dict,
 *   combine, min, max, sum, map(attribute='a') / map('filter'), select('test', arg) / reject,
 *   selectattr('a') / selectattr('a', 'equalto', v) / rejectattr, replace(a, b), split(sep),
 *   regex_search(re) (the match or null), regex_findall, regex_replace(re, repl), union,
 *   difference, intersect, symmetric_difference, ternary(a, b), basename, dirname, quote,
 *   to_json, from_json.
 * - Tests (`x is name`, `x is not name`, `x is name(arg)`): defined, undefined, none, string,
 *   number, integer, float, boolean, mapping, sequence, iterable, list, truthy, falsy, empty,
 *   equalto/eq, ne, lt, le, gt, ge, sameas, in, contains, match(re) (anchored), search(re),
 *   regex, startswith, endswith, divisibleby, even, odd, lower, upper,
 *   version('6.1', '>=').
 * - Functions: `range(n)`, `range(a, b, step)`. Methods: `s.startswith(p)`, `s.endswith(p)`,
 *   `s.strip()`, `s.lstrip()`, `s.rstrip()`, `s.lower()`, `s.upper()`, `s.split(sep)`,
 *   `s.replace(a, b)`, `sep.join(list)`, `m.keys()`, `m.values()`, `m.items()`,
 *   `m.get(k, default)`, `l.index(x)`, `l.count(x)`.
 *
 * Nothing here evaluates JavaScript: expressions are tokenized and parsed by hand, and
 * regular expressions given to `regex_*` filters are the only user-supplied patterns compiled.
 */
import { closest } from '../model/errors.ts';
import type { Pos, Vars } from '../model/types.ts';
import { contains, FILTERS, FUNCTIONS, LENIENT_FILTERS, METHODS, TESTS } from './filters.ts';
import { parseExpr, TemplateError, type Ast, type ParseNames } from './parse.ts';
import { compare, equal, isMapValue, stringify, truthy as truthyValue, typeName, UNDEF, ValueError } from './values.ts';

export { TemplateError } from './parse.ts';
export { FILTERS, TESTS, FUNCTIONS, METHODS } from './filters.ts';
export { stringify } from './values.ts';

const NAMES: ParseNames = {
  filters: new Set(Object.keys(FILTERS)),
  tests: new Set(Object.keys(TESTS)),
  functions: new Set(Object.keys(FUNCTIONS)),
  closestName(name, kind) {
    return closest(name, kind === 'filter' ? this.filters : kind === 'test' ? this.tests : this.functions);
  },
};

// ---------------------------------------------------------------- parsing (cached)

const exprCache = new Map<string, Ast>();

function parse(src: string, pos: Pos | undefined, shown = src): Ast {
  const hit = exprCache.get(src);
  if (hit) return hit;
  const ast = parseExpr(src, NAMES, (msg, at, hint) => {
    throw new TemplateError(`template syntax error: ${msg} at column ${at + 1} of \`${shown}\``, pos, hint);
  });
  if (exprCache.size > 5000) exprCache.clear();
  exprCache.set(src, ast);
  return ast;
}

type Segment = string | { src: string; ast: Ast };
const tmplCache = new Map<string, Segment[]>();

/** Split a string into text and `{{ expr }}` parts, parsing each expression. */
function parseTemplate(s: string, pos: Pos | undefined): Segment[] {
  const hit = tmplCache.get(s);
  if (hit) return hit;
  const out: Segment[] = [];
  let i = 0;
  while (i < s.length) {
    const start = s.indexOf('{{', i);
    if (start < 0) {
      out.push(s.slice(i));
      break;
    }
    if (start > i) out.push(s.slice(i, start));
    // find the closing }} outside strings and brackets
    let j = start + 2;
    let depth = 0;
    let quote = '';
    let end = -1;
    for (; j < s.length; j++) {
      const c = s[j]!;
      if (quote) {
        if (c === '\\') j++;
        else if (c === quote) quote = '';
        continue;
      }
      if (c === "'" || c === '"') quote = c;
      else if (c === '{' || c === '[' || c === '(') depth++;
      else if (depth > 0 && (c === '}' || c === ']' || c === ')')) depth--;
      else if (c === '}' && s[j + 1] === '}') {
        end = j;
        break;
      }
    }
    if (end < 0) {
      throw new TemplateError(
        `template syntax error: '{{' at column ${start + 1} is not closed by '}}' in ${JSON.stringify(s)}`,
        pos,
        quote ? 'a quote inside the expression is not closed' : 'add the closing }}',
      );
    }
    const src = s.slice(start + 2, end).trim();
    out.push({ src, ast: parse(src, pos, `{{ ${src} }}`) });
    i = end + 2;
  }
  if (tmplCache.size > 5000) tmplCache.clear();
  tmplCache.set(s, out);
  return out;
}

// ---------------------------------------------------------------- evaluation

/** A readable name for the place an Ast reads: `facts.gpus[0].vendor`. */
function pathOf(n: Ast): string {
  switch (n.t) {
    case 'var':
      return n.name;
    case 'attr':
      return `${pathOf(n.obj)}.${n.name}`;
    case 'index':
      return `${pathOf(n.obj)}[${n.index.t === 'lit' ? JSON.stringify(n.index.v) : '…'}]`;
    default:
      return '(…)';
  }
}

class Evaluator {
  constructor(readonly vars: Vars) {}

  defined(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.vars, name) && this.vars[name] !== undefined;
  }

  ev(n: Ast, lenient = false): unknown {
    switch (n.t) {
      case 'lit':
        return n.v;
      case 'var': {
        if (this.defined(n.name)) return this.vars[n.name];
        if (lenient) return UNDEF;
        const near = closest(n.name, Object.keys(this.vars));
        throw new ValueError(
          `undefined variable '${n.name}'`,
          near ? `did you mean '${near}'?` : `define it (role defaults, vars, inventory or -e), or use \`${n.name} | default(...)\``,
        );
      }
      case 'attr':
      case 'index': {
        if (!lenient) {
          // an undefined variable at the root of a chain: name the whole path
          let root: Ast = n;
          while (root.t === 'attr' || root.t === 'index') root = root.obj;
          if (root.t === 'var' && !this.defined(root.name)) {
            const near = closest(root.name, Object.keys(this.vars));
            throw new ValueError(
              `'${pathOf(n)}' is undefined: undefined variable '${root.name}'`,
              near ? `did you mean '${near}'?` : `define '${root.name}' (role defaults, vars, inventory or -e), or use \`${pathOf(n)} | default(...)\``,
            );
          }
        }
        const obj = this.ev(n.obj, lenient);
        if (obj === UNDEF) return UNDEF;
        const key = n.t === 'attr' ? n.name : this.ev(n.index);
        return this.member(obj, key, n, lenient);
      }
      case 'list':
        return n.items.map((x) => this.ev(x));
      case 'map': {
        const out: Record<string, unknown> = {};
        for (const [k, v] of n.entries) out[stringify(this.ev(k))] = this.ev(v);
        return out;
      }
      case 'not':
        return !truthyValue(this.ev(n.e));
      case 'neg': {
        const v = this.ev(n.e);
        if (typeof v !== 'number') throw new ValueError(`cannot negate ${typeName(v)}`);
        return -v;
      }
      case 'cond':
        return truthyValue(this.ev(n.cond)) ? this.ev(n.then) : n.else ? this.ev(n.else) : null;
      case 'bin':
        return this.binary(n.op, n.l, n.r);
      case 'filter': {
        const v = this.ev(n.e, LENIENT_FILTERS.has(n.name));
        const args = n.args.map((a) => this.ev(a));
        const kw: Record<string, unknown> = {};
        for (const [k, a] of Object.entries(n.kwargs)) kw[k] = this.ev(a);
        return bounded(FILTERS[n.name]!(v, args, kw));
      }
      case 'test': {
        const v = this.ev(n.e, n.name === 'defined' || n.name === 'undefined');
        const r = TESTS[n.name]!(v, n.args.map((a) => this.ev(a)));
        return n.neg ? !r : r;
      }
      case 'call': {
        const args = n.args.map((a) => this.ev(a));
        const kw: Record<string, unknown> = {};
        for (const [k, a] of Object.entries(n.kwargs)) kw[k] = this.ev(a);
        if (n.fn.t === 'var') return bounded(FUNCTIONS[n.fn.name]!(args, kw));
        if (n.fn.t === 'attr') {
          const m = Object.prototype.hasOwnProperty.call(METHODS, n.fn.name) ? METHODS[n.fn.name] : undefined;
          if (!m) {
            const near = closest(n.fn.name, Object.keys(METHODS));
            throw new ValueError(`unknown method '${n.fn.name}' in ${pathOf(n.fn)}()`, near ? `did you mean '${near}'?` : undefined);
          }
          return bounded(m(this.ev(n.fn.obj), args));
        }
        throw new ValueError('only functions and methods can be called');
      }
    }
  }

  member(obj: unknown, key: unknown, n: Ast & { obj: Ast }, lenient: boolean): unknown {
    const path = pathOf(n);
    const parent = pathOf(n.obj);
    if (obj === null || obj === undefined) {
      if (lenient) return UNDEF;
      throw new ValueError(`'${path}' is undefined: '${parent}' is null`, `check that '${parent}' is set, or use \`${path} | default(...)\``);
    }
    if (Array.isArray(obj) || typeof obj === 'string') {
      if (typeof key === 'number' && Number.isInteger(key)) {
        const i = key < 0 ? obj.length + key : key;
        if (i >= 0 && i < obj.length) return obj[i];
        if (lenient) return UNDEF;
        throw new ValueError(`'${path}': index ${key} is out of range ('${parent}' has ${obj.length} items)`, `use \`${path} | default(...)\` or check the length first`);
      }
      if (lenient) return UNDEF;
      throw new ValueError(`'${path}' is undefined: '${parent}' is a ${typeName(obj)}, index it with a number`);
    }
    if (isMapValue(obj)) {
      const k = stringify(key);
      if (Object.prototype.hasOwnProperty.call(obj, k) && obj[k] !== undefined) return obj[k];
      if (lenient) return UNDEF;
      const near = closest(k, Object.keys(obj));
      throw new ValueError(
        `'${path}' is undefined: '${parent}' has no attribute '${k}'`,
        near ? `did you mean '${parent}.${near}'?` : `'${parent}' has: ${Object.keys(obj).slice(0, 12).join(', ') || 'nothing'}`,
      );
    }
    if (lenient) return UNDEF;
    throw new ValueError(`'${path}' is undefined: '${parent}' is a ${typeName(obj)}, not a map`);
  }

  binary(op: string, ln: Ast, rn: Ast): unknown {
    if (op === 'and') {
      const l = this.ev(ln);
      return truthyValue(l) ? this.ev(rn) : l;
    }
    if (op === 'or') {
      const l = this.ev(ln);
      return truthyValue(l) ? l : this.ev(rn);
    }
    const l = this.ev(ln);
    const r = this.ev(rn);
    switch (op) {
      case '==':
        return equal(l, r);
      case '!=':
        return !equal(l, r);
      case '<':
        return compare(l, r) < 0;
      case '<=':
        return compare(l, r) <= 0;
      case '>':
        return compare(l, r) > 0;
      case '>=':
        return compare(l, r) >= 0;
      case 'in':
        return contains(r, l);
      case 'not in':
        return !contains(r, l);
      case '~':
        return sized(stringify(l) + stringify(r));
      case '+':
        if (typeof l === 'number' && typeof r === 'number') return l + r;
        if (typeof l === 'string' && typeof r === 'string') return sized(l + r);
        if (Array.isArray(l) && Array.isArray(r)) return sized([...l, ...r]);
        throw new ValueError(`cannot add ${typeName(l)} and ${typeName(r)}`, 'use ~ to join text, or convert with | int');
      case '*':
        if (typeof l === 'string' && typeof r === 'number') {
          const times = repeatCount(r, l.length, MAX_STRING, 'text');
          return l.repeat(times);
        }
        if (Array.isArray(l) && typeof r === 'number') {
          const times = repeatCount(r, l.length, MAX_LIST, 'list');
          return Array.from({ length: times }, () => l).flat();
        }
        break;
    }
    if (typeof l !== 'number' || typeof r !== 'number') {
      throw new ValueError(`cannot apply '${op}' to ${typeName(l)} and ${typeName(r)}`, 'convert with | int or | float');
    }
    switch (op) {
      case '-':
        return l - r;
      case '*':
        return l * r;
      case '**':
        return l ** r;
    }
    if (r === 0) throw new ValueError(`division by zero in '${op}'`);
    switch (op) {
      case '/':
        return l / r;
      case '//':
        return Math.floor(l / r);
      case '%':
        return ((l % r) + r) % r;
    }
    throw new ValueError(`unknown operator '${op}'`);
  }
}

/** Largest text and list a template may build (the values it is given are bounded by their loaders). */
export const MAX_STRING = 1 << 20;
export const MAX_LIST = 100_000;

function bounded(v: unknown): unknown {
  return typeof v === 'string' || Array.isArray(v) ? sized(v) : v;
}

function repeatCount(r: number, len: number, max: number, what: string): number {
  if (!Number.isInteger(r)) throw new ValueError(`cannot repeat a ${what} ${r} times`, 'use a whole number');
  const times = Math.max(0, r);
  if (times * len > max) throw new ValueError(`a ${what} of ${len} repeated ${r} times is longer than the ${max} ${what === 'text' ? 'characters' : 'items'} a template may build`);
  return times;
}

/** A text or list built by a template, refused beyond MAX_STRING / MAX_LIST. */
export function sized<T extends string | unknown[]>(v: T): T {
  if (typeof v === 'string' ? v.length > MAX_STRING : v.length > MAX_LIST) {
    throw new ValueError(`${typeof v === 'string' ? `text of ${v.length} characters` : `a list of ${v.length} items`} is longer than the ${typeof v === 'string' ? `${MAX_STRING} characters` : `${MAX_LIST} items`} a template may build`);
  }
  return v;
}

function run(ast: Ast, src: string, vars: Vars, pos: Pos | undefined): unknown {
  try {
    const v = new Evaluator(vars).ev(ast);
    return v === UNDEF ? null : v;
  } catch (e) {
    if (e instanceof ValueError) throw new TemplateError(`${e.message} in \`${clip(src)}\``, pos, e.hint);
    if (e instanceof TemplateError) throw e;
    if (e instanceof RangeError) throw new TemplateError(`${/call stack/i.test(e.message) ? 'too deeply nested' : e.message} in \`${clip(src)}\``, pos);
    if (e instanceof TypeError) throw new TemplateError(`cannot evaluate \`${clip(src)}\`: ${e.message}`, pos);
    throw e;
  }
}

/** An expression as shown in a message: at most 200 characters. */
function clip(src: string): string {
  return src.length > 200 ? `${src.slice(0, 197)}...` : src;
}

/** The single expression of a string that is exactly `{{ expr }}`, else undefined. */
function soleExpr(s: string, pos: Pos | undefined): { src: string; ast: Ast } | undefined {
  if (!s.startsWith('{{') || !s.endsWith('}}')) return undefined;
  const segs = parseTemplate(s, pos);
  return segs.length === 1 && typeof segs[0] !== 'string' ? segs[0] : undefined;
}

// ---------------------------------------------------------------- public API

/**
 * Evaluate a bare expression (as written in `when:`). A string wrapped in a single `{{ }}` is
 * accepted too. Errors (syntax, undefined variables, bad filter input) are TemplateErrors at `pos`.
 */
export function evaluate(expr: string, vars: Vars, pos?: Pos): unknown {
  const trimmed = expr.trim();
  const sole = soleExpr(trimmed, pos);
  if (sole) return run(sole.ast, `{{ ${sole.src} }}`, vars, pos);
  return run(parse(trimmed, pos), trimmed, vars, pos);
}

/**
 * Render templates deep inside a value. A string that is exactly one `{{ expr }}` becomes the
 * expression's value with its type; other strings get each `{{ expr }}` replaced by its text.
 */
export function render(value: unknown, vars: Vars, pos?: Pos): unknown {
  if (typeof value === 'string') {
    if (!value.includes('{{')) return value;
    const sole = soleExpr(value, pos);
    if (sole) return run(sole.ast, `{{ ${sole.src} }}`, vars, pos);
    let total = 0;
    return parseTemplate(value, pos)
      .map((seg) => {
        const out = typeof seg === 'string' ? seg : stringify(run(seg.ast, `{{ ${seg.src} }}`, vars, pos));
        total += out.length;
        if (total > MAX_STRING) throw new TemplateError(`the rendered text is longer than the ${MAX_STRING} characters a template may build`, pos);
        return out;
      })
      .join('');
  }
  if (Array.isArray(value)) return value.map((v) => render(v, vars, pos));
  if (isMapValue(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = render(v, vars, pos);
    return out;
  }
  return value;
}

/** Python-like truthiness (false, null, 0, '', [], {} are false), as `when:` uses it. */
export function truthy(v: unknown): boolean {
  return truthyValue(v);
}

/** Names of variables whose values are secrets: never shown in a message. */
export function isSecretName(name: string): boolean {
  return /(^|_)(pass|password|passwd|passphrase|secret|token|ssh_pass|become_pass)(_|$)/i.test(name);
}

/** Does the string hold a `{{ template }}`? */
export function hasTemplate(s: string): boolean {
  return s.includes('{{');
}

/** Does any string inside the value (deep) hold a template? */
export function containsTemplate(v: unknown): boolean {
  if (typeof v === 'string') return hasTemplate(v);
  if (Array.isArray(v)) return v.some(containsTemplate);
  if (isMapValue(v)) return Object.values(v).some(containsTemplate);
  return false;
}

/** Parse every `{{ expr }}` of a string without evaluating; throws TemplateError on a syntax error. */
export function checkTemplateSyntax(s: string, pos: Pos): void {
  if (hasTemplate(s)) parseTemplate(s, pos);
}

/** Parse a bare expression (`when:`) without evaluating; throws TemplateError on a syntax error. */
export function checkExprSyntax(expr: string, pos: Pos): void {
  const trimmed = expr.trim();
  if (soleExpr(trimmed, pos)) return;
  parse(trimmed, pos);
}
