/**
 * Tokenizer and Pratt parser of the expression language (see index.ts for the language).
 * Produces a small AST; no eval, no Function().
 */
import { ConfigError, type Hint } from '../model/errors.ts';
import type { Pos } from '../model/types.ts';

/** A template or expression error: syntax, undefined variable, bad filter argument. */
export class TemplateError extends ConfigError {
  constructor(message: string, pos?: Pos, hint?: Hint) {
    super(message, pos, hint);
    this.name = 'TemplateError';
  }
}

export type Ast =
  | { t: 'lit'; v: unknown }
  | { t: 'var'; name: string }
  | { t: 'attr'; obj: Ast; name: string }
  | { t: 'index'; obj: Ast; index: Ast }
  | { t: 'list'; items: Ast[] }
  | { t: 'map'; entries: Array<[Ast, Ast]> }
  | { t: 'not'; e: Ast }
  | { t: 'neg'; e: Ast }
  | { t: 'bin'; op: string; l: Ast; r: Ast }
  | { t: 'cond'; then: Ast; cond: Ast; else?: Ast }
  | { t: 'filter'; e: Ast; name: string; args: Ast[]; kwargs: Record<string, Ast> }
  | { t: 'test'; e: Ast; name: string; args: Ast[]; neg: boolean }
  | { t: 'call'; fn: Ast; args: Ast[]; kwargs: Record<string, Ast> };

type TokKind = 'num' | 'str' | 'name' | 'op' | 'eof';
interface Tok {
  k: TokKind;
  v: string;
  num?: number;
  at: number;
}

const OPS = ['**', '//', '==', '!=', '<=', '>=', '<', '>', '+', '-', '*', '/', '%', '~', '|', '.', ',', ':', '(', ')', '[', ']', '{', '}', '='];

function tokenize(src: string, fail: (msg: string, at: number) => never): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (/[0-9]/.test(c)) {
      const m = /^(0x[0-9a-fA-F]+|0o[0-7]+|\d+(\.\d+)?([eE][+-]?\d+)?)/.exec(src.slice(i))!;
      toks.push({ k: 'num', v: m[0], num: Number(m[0]), at: i });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      toks.push({ k: 'name', v: m[0], at: i });
      i += m[0].length;
      continue;
    }
    if (c === "'" || c === '"') {
      let j = i + 1;
      let s = '';
      for (;;) {
        if (j >= src.length) fail('unterminated string', i);
        const d = src[j]!;
        if (d === c) break;
        if (d === '\\' && j + 1 < src.length) {
          const e = src[j + 1]!;
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e === '0' ? '\0' : e === c || e === '\\' ? e : '\\' + e;
          j += 2;
          continue;
        }
        s += d;
        j++;
      }
      toks.push({ k: 'str', v: s, at: i });
      i = j + 1;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (!op) fail(`unexpected character '${c}'`, i);
    toks.push({ k: 'op', v: op, at: i });
    i += op.length;
  }
  toks.push({ k: 'eof', v: '', at: src.length });
  return toks;
}

/** Deepest nesting of one expression, and its longest source text. */
export const MAX_EXPR_DEPTH = 100;
export const MAX_EXPR_LENGTH = 65536;

/** Names that are keywords, never variables. */
const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'is', 'if', 'else']);
const CONSTS: Record<string, unknown> = { true: true, True: true, false: false, False: false, null: null, none: null, None: null };

// binding powers
const BP = { cond: 1, or: 2, and: 3, not: 4, cmp: 5, concat: 6, add: 7, mul: 8, pow: 9, filter: 11, postfix: 12 };

export interface ParseNames {
  filters: Set<string>;
  tests: Set<string>;
  functions: Set<string>;
  closestName(name: string, kind: 'filter' | 'test' | 'function'): string | undefined;
}

/** Parse one expression. `fail` receives a message and the offset within `src`. */
export function parseExpr(src: string, names: ParseNames, fail: (msg: string, at: number, hint?: string) => never): Ast {
  if (src.length > MAX_EXPR_LENGTH) fail(`expression is ${src.length} characters long, at most ${MAX_EXPR_LENGTH} are accepted`, 0);
  const toks = tokenize(src, fail);
  let p = 0;
  let depth = 0;
  const peek = (o = 0): Tok => toks[Math.min(p + o, toks.length - 1)]!;
  const next = (): Tok => toks[p++]!;
  const isOp = (v: string, t = peek()): boolean => t.k === 'op' && t.v === v;
  const isKw = (v: string, t = peek()): boolean => t.k === 'name' && t.v === v;
  const desc = (t: Tok): string => (t.k === 'eof' ? 'end of expression' : t.k === 'str' ? `string '${t.v}'` : `'${t.v}'`);
  const expect = (v: string): void => {
    const t = next();
    if (!(t.k === 'op' && t.v === v)) fail(`expected '${v}' but found ${desc(t)}`, t.at);
  };

  function infixBp(t: Tok): number {
    if (t.k === 'op') {
      switch (t.v) {
        case '==': case '!=': case '<': case '<=': case '>': case '>=':
          return BP.cmp;
        case '~':
          return BP.concat;
        case '+': case '-':
          return BP.add;
        case '*': case '/': case '//': case '%':
          return BP.mul;
        case '**':
          return BP.pow;
        case '|':
          return BP.filter;
        case '.': case '[': case '(':
          return BP.postfix;
      }
      return 0;
    }
    if (t.k === 'name') {
      if (t.v === 'if') return BP.cond;
      if (t.v === 'or') return BP.or;
      if (t.v === 'and') return BP.and;
      if (t.v === 'in') return BP.cmp;
      if (t.v === 'not' && isKw('in', peek(1))) return BP.cmp;
      if (t.v === 'is') return BP.filter;
    }
    return 0;
  }

  function callArgs(): { args: Ast[]; kwargs: Record<string, Ast> } {
    // after '('
    const args: Ast[] = [];
    const kwargs: Record<string, Ast> = {};
    while (!isOp(')')) {
      if (peek().k === 'name' && isOp('=', peek(1))) {
        const k = next().v;
        next();
        kwargs[k] = expr(0);
      } else {
        if (Object.keys(kwargs).length) fail('a positional argument cannot follow a keyword argument', peek().at);
        args.push(expr(0));
      }
      if (!isOp(',')) break;
      next();
    }
    expect(')');
    return { args, kwargs };
  }

  function dottedName(what: string): { name: string; at: number } {
    const t = next();
    if (t.k !== 'name') fail(`expected a ${what} name but found ${desc(t)}`, t.at);
    let name = t.v;
    // namespaced names (ansible.builtin.default) keep only the last part
    while (isOp('.') && peek(1).k === 'name') {
      next();
      name = next().v;
    }
    return { name, at: t.at };
  }

  function prefix(): Ast {
    const t = next();
    switch (t.k) {
      case 'num':
        if (Number.isNaN(t.num)) fail(`invalid number '${t.v}'`, t.at);
        return { t: 'lit', v: t.num };
      case 'str':
        return { t: 'lit', v: t.v };
      case 'name':
        if (t.v in CONSTS) return { t: 'lit', v: CONSTS[t.v] };
        if (t.v === 'not') return { t: 'not', e: expr(BP.not) };
        if (KEYWORDS.has(t.v)) fail(`unexpected keyword '${t.v}'`, t.at);
        if (isOp('(')) {
          if (!names.functions.has(t.v)) {
            const near = names.closestName(t.v, 'function');
            fail(`unknown function '${t.v}'`, t.at, near ? `did you mean '${near}'?` : `functions: ${[...names.functions].join(', ')}`);
          }
        }
        return { t: 'var', name: t.v };
      case 'op':
        if (t.v === '(') {
          const e = expr(0);
          expect(')');
          return e;
        }
        if (t.v === '-') return { t: 'neg', e: expr(BP.mul) }; // -2 ** 2 == -4, as in Python
        if (t.v === '+') return { t: 'bin', op: '+', l: { t: 'lit', v: 0 }, r: expr(BP.mul) };
        if (t.v === '[') {
          const items: Ast[] = [];
          while (!isOp(']')) {
            items.push(expr(0));
            if (!isOp(',')) break;
            next();
          }
          expect(']');
          return { t: 'list', items };
        }
        if (t.v === '{') {
          const entries: Array<[Ast, Ast]> = [];
          while (!isOp('}')) {
            // a bare name as a key means the name itself, as in YAML flow maps
            const k: Ast = peek().k === 'name' && isOp(':', peek(1)) && !(peek().v in CONSTS) ? { t: 'lit', v: next().v } : expr(0);
            expect(':');
            entries.push([k, expr(0)]);
            if (!isOp(',')) break;
            next();
          }
          expect('}');
          return { t: 'map', entries };
        }
    }
    return fail(`unexpected ${desc(t)}`, t.at);
  }

  function infix(left: Ast, t: Tok): Ast {
    if (t.k === 'op') {
      switch (t.v) {
        case '.': {
          const n = next();
          if (n.k === 'name') return { t: 'attr', obj: left, name: n.v };
          if (n.k === 'num' && /^\d+$/.test(n.v)) return { t: 'index', obj: left, index: { t: 'lit', v: n.num } };
          return fail(`expected an attribute name after '.' but found ${desc(n)}`, n.at);
        }
        case '[': {
          const index = expr(0);
          expect(']');
          return { t: 'index', obj: left, index };
        }
        case '(': {
          if (left.t !== 'var' && left.t !== 'attr') fail('only functions and methods can be called', t.at);
          const { args, kwargs } = callArgs();
          return { t: 'call', fn: left, args, kwargs };
        }
        case '|': {
          const { name, at } = dottedName('filter');
          if (!names.filters.has(name)) {
            const near = names.closestName(name, 'filter');
            fail(`unknown filter '${name}'`, at, near ? `did you mean '${near}'?` : 'see the filter list in the template documentation');
          }
          let args: Ast[] = [];
          let kwargs: Record<string, Ast> = {};
          if (isOp('(')) {
            next();
            ({ args, kwargs } = callArgs());
          }
          return { t: 'filter', e: left, name, args, kwargs };
        }
        case '**':
          return { t: 'bin', op: t.v, l: left, r: expr(BP.pow - 1) }; // right-associative
        default:
          return { t: 'bin', op: t.v, l: left, r: expr(infixBp(t)) };
      }
    }
    // keywords
    switch (t.v) {
      case 'and':
      case 'or':
        return { t: 'bin', op: t.v, l: left, r: expr(infixBp(t)) };
      case 'in':
        return { t: 'bin', op: 'in', l: left, r: expr(BP.cmp) };
      case 'not':
        next(); // 'in'
        return { t: 'bin', op: 'not in', l: left, r: expr(BP.cmp) };
      case 'if': {
        const cond = expr(BP.cond);
        if (isKw('else')) {
          next();
          return { t: 'cond', then: left, cond, else: expr(BP.cond - 1) };
        }
        return { t: 'cond', then: left, cond };
      }
      case 'is': {
        let neg = false;
        if (isKw('not')) {
          next();
          neg = true;
        }
        const { name, at } = dottedName('test');
        if (!names.tests.has(name)) {
          const near = names.closestName(name, 'test');
          fail(`unknown test '${name}'`, at, near ? `did you mean '${near}'?` : 'see the test list in the template documentation');
        }
        let args: Ast[] = [];
        if (isOp('(')) {
          next();
          args = callArgs().args;
        } else {
          const a = peek();
          if (a.k === 'num' || a.k === 'str' || (a.k === 'name' && a.v in CONSTS)) args = [prefix()];
        }
        return { t: 'test', e: left, name, args, neg };
      }
    }
    return fail(`unexpected ${desc(t)}`, t.at);
  }

  function expr(minBp: number): Ast {
    // every nesting ((, [, {, not, -, operators) goes through here: bound it before the stack is
    if (++depth > MAX_EXPR_DEPTH) fail(`expression nested more than ${MAX_EXPR_DEPTH} levels deep`, peek().at, 'split it into variables');
    try {
      return exprInner(minBp);
    } finally {
      depth--;
    }
  }

  function exprInner(minBp: number): Ast {
    let left = prefix();
    for (;;) {
      const t = peek();
      const bp = infixBp(t);
      if (bp <= minBp) break;
      next();
      left = infix(left, t);
    }
    return left;
  }

  if (peek().k === 'eof') fail('empty expression', 0);
  const ast = expr(0);
  const t = peek();
  if (t.k !== 'eof') fail(`unexpected ${desc(t)} after the end of the expression`, t.at);
  return ast;
}
