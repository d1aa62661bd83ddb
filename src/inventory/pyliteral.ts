/**
 * The two Python helpers Ansible's INI inventory reader relies on, rewritten by hand so that
 * passthru reads an INI inventory exactly as `ansible-inventory` does, without running Python:
 *
 * - {@link shlexSplit}: `shlex.split(line, comments=True)` (POSIX mode): a host line is split
 *   into words; quotes group and are removed, `\` escapes, `#` starts a comment.
 * - {@link literalEval}: `ast.literal_eval(text)`: a value that reads as a Python literal
 *   (`1`, `0x10`, `1_000`, `1.5`, `True`, `None`, `'text'`, `[1, 2]`, `(1, 2)`, `{'a': 1}`)
 *   becomes that value; anything else (a bare word, an expression, a call) stays the text.
 *
 * Nothing here evaluates code: both are small hand-written scanners.
 */

export class ShlexError extends Error {
  constructor(
    message: string,
    readonly col: number,
  ) {
    super(message);
  }
}

/** `shlex.split(s, comments=True)`. Throws ShlexError (with a 0-based column) on an unclosed quote. */
export function shlexSplit(s: string): string[] {
  const out: string[] = [];
  let tok = '';
  let inWord = false; // a token is being built (possibly empty, from "")
  let i = 0;
  const end = (): void => {
    if (inWord) out.push(tok);
    tok = '';
    inWord = false;
  };
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      end();
      i++;
    } else if (c === '#') {
      break; // a comment runs to the end of the line, also right after a word
    } else if (c === '\\') {
      if (i + 1 >= s.length) throw new ShlexError('No escaped character', i);
      tok += s[i + 1];
      inWord = true;
      i += 2;
    } else if (c === "'") {
      const close = s.indexOf("'", i + 1);
      if (close < 0) throw new ShlexError('No closing quotation', i);
      tok += s.slice(i + 1, close);
      inWord = true;
      i = close + 1;
    } else if (c === '"') {
      const open = i;
      i++;
      inWord = true;
      for (;;) {
        if (i >= s.length) throw new ShlexError('No closing quotation', open);
        const d = s[i]!;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\' && i + 1 < s.length && (s[i + 1] === '"' || s[i + 1] === '\\')) {
          tok += s[i + 1];
          i += 2;
          continue;
        }
        if (d === '\\' && i + 1 >= s.length) throw new ShlexError('No escaped character', i);
        tok += d;
        i++;
      }
    } else {
      tok += c;
      inWord = true;
      i++;
    }
  }
  end();
  return out;
}

/** A literal Python value that has no JSON twin (set, complex, bytes mixed with text). */
export class LiteralUnsupported extends Error {}

type Tok =
  | { t: 'num'; v: number; complex: boolean }
  | { t: 'str'; v: string; bytes: boolean }
  | { t: 'name'; v: string }
  | { t: 'op'; v: string }
  | { t: 'end' };

class NotLiteral extends Error {}

const NUM =
  /^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:(?:\d(?:_?\d)*)?\.\d(?:_?\d)*|\d(?:_?\d)*\.?)(?:[eE][+-]?\d(?:_?\d)*)?[jJ]?)/;

function tokenize(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\f') {
      i++;
      continue;
    }
    if (c === '\\' && (src[i + 1] === '\n' || src[i + 1] === '\r')) {
      i += 2;
      continue;
    }
    if (c === '#') break; // a comment
    const str = /^([rRbBuU]|[bB][rR]|[rR][bB])?('''|"""|'|")/.exec(src.slice(i));
    if (str) {
      const prefix = (str[1] ?? '').toLowerCase();
      const q = str[2]!;
      let j = i + str[0].length;
      let body = '';
      for (;;) {
        if (j >= src.length) throw new NotLiteral();
        if (src.startsWith(q, j)) break;
        const d = src[j]!;
        if (q.length === 1 && (d === '\n' || d === '\r')) throw new NotLiteral();
        if (d === '\\') {
          if (j + 1 >= src.length) throw new NotLiteral();
          body += d + src[j + 1];
          j += 2;
          continue;
        }
        body += d;
        j++;
      }
      const bytes = prefix.includes('b');
      const value = prefix.includes('r') ? body : unescape(body, bytes);
      toks.push({ t: 'str', v: value, bytes });
      i = j + q.length;
      continue;
    }
    const num = NUM.exec(src.slice(i));
    if (num && /[0-9.]/.test(c) && num[0] !== '.') {
      const text = num[0];
      // a name character right after a number (`1abc`, `0777`) is a syntax error in Python
      const next = src[i + text.length];
      if (next !== undefined && /[A-Za-z0-9_]/.test(next)) throw new NotLiteral();
      toks.push(parseNumber(text));
      i += text.length;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
    if (name) {
      toks.push({ t: 'name', v: name[0] });
      i += name[0].length;
      continue;
    }
    if ('[](){},:+-'.includes(c)) {
      toks.push({ t: 'op', v: c });
      i++;
      continue;
    }
    throw new NotLiteral();
  }
  toks.push({ t: 'end' });
  return toks;
}

function parseNumber(text: string): Tok {
  const s = text.replace(/_/g, '');
  if (/^0[xX]/.test(s)) return { t: 'num', v: parseInt(s.slice(2), 16), complex: false };
  if (/^0[oO]/.test(s)) return { t: 'num', v: parseInt(s.slice(2), 8), complex: false };
  if (/^0[bB]/.test(s)) return { t: 'num', v: parseInt(s.slice(2), 2), complex: false };
  if (/[jJ]$/.test(s)) return { t: 'num', v: Number(s.slice(0, -1)), complex: true };
  // Python refuses decimal integers with leading zeros (`007`), but allows `0`, `00`, `0.5`, `0e1`
  if (/^0\d/.test(s) && !/[.eE]/.test(s) && !/^0+$/.test(s)) throw new NotLiteral();
  return { t: 'num', v: Number(s), complex: false };
}

function unescape(body: string, bytes: boolean): string {
  return body.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3}|\r\n|[\s\S])/g, (all, e: string) => {
    switch (e[0]) {
      case 'n':
        return '\n';
      case 't':
        return '\t';
      case 'r':
        return '\r';
      case 'a':
        return '\x07';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'v':
        return '\v';
      case '\\':
        return '\\';
      case "'":
        return "'";
      case '"':
        return '"';
      case '\n':
      case '\r':
        return '';
      case 'x':
        if (e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
        throw new NotLiteral();
      case 'u':
      case 'U':
        if (bytes) return all;
        if (e.length > 1) return String.fromCodePoint(parseInt(e.slice(1), 16));
        throw new NotLiteral();
      default:
        if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8));
        return all; // unknown escapes keep their backslash, as in Python
    }
  });
}

/**
 * `ast.literal_eval(src)`: `{ value }` when `src` is a Python literal, undefined when it is not
 * (the caller keeps the text). Throws LiteralUnsupported for literals JSON cannot hold.
 */
export function literalEval(src: string): { value: unknown } | undefined {
  let toks: Tok[];
  try {
    toks = tokenize(src.replace(/^[ \t]+/, ''));
  } catch (e) {
    if (e instanceof NotLiteral) return undefined;
    throw e;
  }
  let k = 0;
  const peek = (): Tok => toks[k]!;
  const isOp = (v: string): boolean => {
    const t = peek();
    return t.t === 'op' && t.v === v;
  };
  const expect = (v: string): void => {
    if (!isOp(v)) throw new NotLiteral();
    k++;
  };
  // a comma separated list of items up to `close`, allowing a trailing comma
  const items = (close: string, one: () => unknown): { list: unknown[]; comma: boolean } => {
    const list: unknown[] = [];
    let comma = false;
    while (!isOp(close)) {
      list.push(one());
      if (isOp(',')) {
        k++;
        comma = true;
      } else break;
    }
    expect(close);
    return { list, comma };
  };
  const atom = (): unknown => {
    const t = peek();
    if (t.t === 'op' && (t.v === '-' || t.v === '+')) {
      k++;
      const n = peek();
      if (n.t !== 'num') throw new NotLiteral();
      k++;
      if (n.complex) throw new LiteralUnsupported('complex numbers have no JSON form');
      const v = t.v === '-' ? -n.v : n.v;
      return complexTail(v);
    }
    if (t.t === 'num') {
      k++;
      if (t.complex) throw new LiteralUnsupported('complex numbers have no JSON form');
      return complexTail(t.v);
    }
    if (t.t === 'str') {
      let s = '';
      const bytes = t.bytes;
      while (peek().t === 'str') {
        const u = peek() as Extract<Tok, { t: 'str' }>;
        if (u.bytes !== bytes) throw new NotLiteral(); // b'' 'x' is a syntax error
        s += u.v;
        k++;
      }
      return s; // Ansible turns bytes into text (to_text)
    }
    if (t.t === 'name') {
      k++;
      if (t.v === 'True') return true;
      if (t.v === 'False') return false;
      if (t.v === 'None') return null;
      throw new NotLiteral();
    }
    if (t.t === 'op' && t.v === '[') {
      k++;
      return items(']', atom).list;
    }
    if (t.t === 'op' && t.v === '(') {
      k++;
      if (isOp(')')) {
        k++;
        return [];
      }
      const first = atom();
      if (isOp(')')) {
        k++;
        return first; // (x) is x, not a tuple
      }
      expect(',');
      return [first, ...items(')', atom).list];
    }
    if (t.t === 'op' && t.v === '{') {
      k++;
      if (isOp('}')) {
        k++;
        return {};
      }
      const firstKey = atom();
      if (!isOp(':')) {
        // a set: literal_eval accepts it, JSON has no set
        throw new LiteralUnsupported('sets have no JSON form; write a list [a, b]');
      }
      const obj: Record<string, unknown> = {};
      k++;
      obj[keyText(firstKey)] = atom();
      if (isOp(',')) {
        k++;
        const rest = items('}', () => {
          const key = atom();
          expect(':');
          return [key, atom()] as const;
        });
        for (const [key, v] of rest.list as [unknown, unknown][]) obj[keyText(key)] = v;
      } else expect('}');
      return obj;
    }
    throw new NotLiteral();
  };
  // `1+2j`: literal_eval accepts a real plus an imaginary part
  const complexTail = (v: number): unknown => {
    if (isOp('+') || isOp('-')) {
      const n = toks[k + 1];
      if (n && n.t === 'num' && n.complex) throw new LiteralUnsupported('complex numbers have no JSON form');
    }
    return v;
  };
  try {
    if (peek().t === 'end') return undefined;
    const first = atom();
    let value: unknown = first;
    if (isOp(',')) {
      // a bare tuple: `1, 2`
      const list = [first];
      while (isOp(',')) {
        k++;
        if (peek().t === 'end') break;
        list.push(atom());
      }
      value = list;
    }
    if (peek().t !== 'end') return undefined;
    return { value };
  } catch (e) {
    if (e instanceof NotLiteral) return undefined;
    throw e;
  }
}

/** JSON object keys are text: Python's json turns True into "true", None into "null", 1 into "1". */
function keyText(k: unknown): string {
  if (k === true) return 'true';
  if (k === false) return 'false';
  if (k === null) return 'null';
  if (typeof k === 'string' || typeof k === 'number') return String(k);
  throw new LiteralUnsupported('a map key must be text or a number');
}
