import type { Module, Plan, ArgumentSpec, InferArgs } from './contract.ts';
import { evaluate, truthy } from '../template/index.ts';

const assertSpec = {
  options: {
    that: { type: 'list', elements: 'str', multiline: true, required: true, description: 'An expression or a list of expressions (no braces), all must be true.' },
    fail_msg: { type: 'str', multiline: true, aliases: ['msg'], description: 'Message when an expression is false.' },
    success_msg: { type: 'str', multiline: true, description: 'Message when all are true.' },
    hint: { type: 'str', multiline: true, description: 'What to do when the assertion fails (shown under the failure).' },
  },
} as const satisfies ArgumentSpec;
export type AssertArgs = InferArgs<typeof assertSpec>;

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
  spec: assertSpec,
  validate(args) {
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
