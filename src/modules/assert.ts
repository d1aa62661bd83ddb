import type { Module, Plan } from './contract.ts';
import { evaluate, truthy } from '../template/index.ts';

export interface AssertArgs {
  /** Expressions (bare, no braces), all of which must be true. */
  that: string | string[];
  fail_msg?: string;
  success_msg?: string;
  /** What to do when it fails (shown under the failure). */
  hint?: string;
}

export function expressions(that: string | string[]): string[] {
  return (Array.isArray(that) ? that : [that]).map((e) => String(e).trim()).filter(Boolean);
}

/**
 * `assert`: every expression in `that` must be true over the task's variables and facts.
 * Read-only (it may be a gate): it never changes the host. Passing is a no-op reporting
 * `success_msg`; failing reports `fail_msg` and lists the expressions that were false.
 */
export const assertModule: Module<AssertArgs> = {
  name: 'assert',
  doc:
    'Check that expressions over variables and facts are true (read-only; used as gates). ' +
    'Fails with fail_msg and the list of false expressions.',
  readOnly: true,
  schema: {
    that: { type: 'any', required: true, doc: 'An expression or a list of expressions (no braces), all must be true.' },
    fail_msg: { type: 'string', aliases: ['msg'], doc: 'Message when an expression is false.' },
    success_msg: { type: 'string', doc: 'Message when all are true.' },
    hint: { type: 'string', doc: 'What to do when the assertion fails.' },
  },
  validate(args) {
    if (typeof args.that !== 'string' && !Array.isArray(args.that)) return 'that must be an expression or a list of them';
    if (expressions(args.that).length === 0) return 'that lists no expression';
    return undefined;
  },
  reads() {
    return [];
  },
  async plan(args, ctx): Promise<Plan> {
    const exprs = expressions(args.that);
    const results: Array<{ expr: string; value?: unknown; ok: boolean; error?: string }> = [];
    for (const expr of exprs) {
      try {
        const value = evaluate(expr, ctx.vars);
        results.push({ expr, value, ok: truthy(value) });
      } catch (e) {
        results.push({ expr, ok: false, error: (e as Error).message });
      }
    }
    const failed = results.filter((r) => !r.ok);
    const data = { evaluated: results };
    if (failed.length === 0) {
      return {
        kind: 'noop',
        reason: args.success_msg ?? `all ${exprs.length} assertion${exprs.length > 1 ? 's' : ''} passed`,
        data,
      };
    }
    const lines = failed.map((r) => (r.error ? `  error: ${r.expr}: ${r.error}` : `  false: ${r.expr}`));
    return {
      kind: 'fail',
      msg: `${args.fail_msg ?? 'assertion failed'}\n${lines.join('\n')}`,
      ...(args.hint !== undefined ? { hint: args.hint } : {}),
      data,
    };
  },
};
