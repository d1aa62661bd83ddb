/**
 * Regular expressions of templates (`match`, `search`, `regex`, `regex_search`, `regex_findall`,
 * `regex_replace`) run with a time limit: JavaScript's backtracking engine can take exponential
 * time on patterns such as `(a+)+b`, and a template must not hang the controller. Each run happens
 * in a separate V8 context with a timeout (V8 interrupts the regex engine), results come back as
 * JSON.
 */
import vm from 'node:vm';
import { ValueError } from './values.ts';

/** Longest time one regular expression may run. */
export const REGEX_TIMEOUT_MS = 250;

const context = vm.createContext(Object.create(null));
const script = new vm.Script(`(() => {
  const r = new RegExp(P, F);
  switch (OP) {
    case 'test': return JSON.stringify(r.test(S));
    case 'exec': { const m = r.exec(S); return JSON.stringify(m ? { m: [...m], groups: m.groups ?? null } : null); }
    case 'findall': return JSON.stringify([...S.matchAll(r)].map((m) => [...m]));
    case 'replace': return JSON.stringify(S.replace(r, R));
  }
})()`);

export type RegexOp = 'test' | 'exec' | 'findall' | 'replace';

/** Run `op` of `pattern` on `input`; ValueError on a bad pattern or when it runs too long. */
export function runRegex(fn: string, pattern: string, flags: string, op: RegexOp, input: string, repl = ''): unknown {
  try {
    new RegExp(pattern, flags);
  } catch (e) {
    throw new ValueError(`${fn}: invalid regular expression: ${(e as Error).message}`);
  }
  Object.assign(context, { P: pattern, F: flags, OP: op, S: input, R: repl });
  try {
    return JSON.parse(script.runInContext(context, { timeout: REGEX_TIMEOUT_MS }) as string);
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
      throw new ValueError(
        `${fn}: the regular expression ran longer than ${REGEX_TIMEOUT_MS} ms on ${input.length} characters and was stopped`,
        'a pattern with nested repetition such as (a+)+ backtracks exponentially: simplify it',
      );
    }
    throw new ValueError(`${fn}: ${(e as Error).message}`);
  } finally {
    Object.assign(context, { S: '', R: '' });
  }
}
