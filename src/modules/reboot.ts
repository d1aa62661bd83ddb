import type { Module, Plan, ArgumentSpec, InferArgs } from './contract.ts';

const rebootSpec = {
  options: {
    reason: { type: 'str', aliases: ['msg'], description: 'Why the host needs a reboot (shown in the report).' },
  },
} as const satisfies ArgumentSpec;
export type RebootArgs = InferArgs<typeof rebootSpec>;

/**
 * `reboot`: marks the host for the stage's coordinated reboot (it does not reboot by itself:
 * the reboot coordinator drains, reboots and waits for the host at the end of the stage,
 * within the stage's reboot policy). Usually a handler notified by boot-relevant changes.
 */
export const rebootModule: Module<RebootArgs> = {
  name: 'reboot',
  doc: "Marks the host for the stage's coordinated reboot (usually as a handler); does not reboot by itself.",
  spec: rebootSpec,
  reads() {
    return [];
  },
  async plan(args): Promise<Plan> {
    const reason = args.reason?.trim() || 'requested by a task';
    return { kind: 'change', msg: `reboot requested: ${reason}`, diff: [], actions: [{ kind: 'request-reboot', reason }] };
  },
};
