/**
 * The evaluator of template expressions: walks a parsed expression (parse.ts) over the
 * variables, with the filters, tests, functions and methods of filters.ts, and the bounds on
 * the text and lists a template may build. The language itself is described in index.ts.
 */
import { closest } from '../model/errors.ts';
import type { Vars } from '../model/types.ts';
import { contains, FILTERS, FUNCTIONS, LENIENT_FILTERS, METHODS, TESTS } from './filters.ts';
import type { Ast } from './parse.ts';
import { compare, equal, isMapValue, stringify, truthy as truthyValue, typeName, UNDEF, ValueError } from './values.ts';

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

/** Evaluates a parsed expression against the variables; errors are ValueErrors (run() places them). */
export class Evaluator {
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
        const vars = this.vars;
        throw new ValueError(`undefined variable '${n.name}'`, () => {
          const near = closest(n.name, Object.keys(vars));
          return near ? `did you mean '${near}'?` : `define it (role defaults, vars, inventory or -e), or use \`${n.name} | default(...)\``;
        });
      }
      case 'attr':
      case 'index': {
        if (!lenient) {
          // an undefined variable at the root of a chain: name the whole path
          let root: Ast = n;
          while (root.t === 'attr' || root.t === 'index') root = root.obj;
          if (root.t === 'var' && !this.defined(root.name)) {
            const name = root.name;
            const vars = this.vars;
            throw new ValueError(`'${pathOf(n)}' is undefined: undefined variable '${name}'`, () => {
              const near = closest(name, Object.keys(vars));
              return near ? `did you mean '${near}'?` : `define '${name}' (role defaults, vars, inventory or -e), or use \`${pathOf(n)} | default(...)\``;
            });
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
