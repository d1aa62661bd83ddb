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
 * This module parses (with a cache) and renders; evaluate.ts holds the evaluator, filters.ts
 * the filters, tests, functions and methods, parse.ts the parser.
 *
 * Nothing here evaluates JavaScript: expressions are tokenized and parsed by hand, and
 * regular expressions given to `regex_*` filters are the only user-supplied patterns compiled.
 */
import { closest } from '../model/errors.ts';
import type { Pos, Vars } from '../model/types.ts';
import { FILTERS, FUNCTIONS, TESTS } from './filters.ts';
import { Evaluator, MAX_STRING } from './evaluate.ts';
import { parseExpr, TemplateError, type Ast, type ParseNames } from './parse.ts';
import { isMapValue, stringify, truthy as truthyValue, UNDEF, ValueError } from './values.ts';

export { TemplateError } from './parse.ts';
export { FILTERS, TESTS, FUNCTIONS, METHODS } from './filters.ts';
export { stringify } from './values.ts';
export { MAX_LIST, MAX_STRING, sized } from './evaluate.ts';

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
