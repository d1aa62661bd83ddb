import type { Action, Module, Plan, ArgumentSpec, InferArgs } from './contract.ts';
import { cmd } from '../transport/connection.ts';

const serviceSpec = {
  options: {
    name: { type: 'str', required: true, aliases: ['service', 'unit'], description: 'Unit name (`.service` may be left out).' },
    state: { type: 'str', choices: ['started', 'stopped', 'restarted', 'reloaded'], description: 'Wanted run state.' },
    enabled: { type: 'bool', description: 'Start at boot.' },
  },
  required_one_of: [['state', 'enabled']],
} as const satisfies ArgumentSpec;
export type ServiceArgs = InferArgs<typeof serviceSpec>;

const isActive = (name: string) => cmd('systemctl', 'is-active', name);
const isEnabled = (name: string) => cmd('systemctl', 'is-enabled', name);

/** `is-enabled` answers that count as "starts at boot" (static units cannot be enabled or disabled). */
const ENABLED = new Set(['enabled', 'enabled-runtime', 'alias', 'static', 'indirect', 'generated']);
const DISABLED = new Set(['disabled', 'masked', 'masked-runtime', 'static', 'indirect', 'generated']);

/**
 * `service`: a systemd unit started/stopped and enabled/disabled, read with
 * `systemctl is-active` and `is-enabled`. `restarted` and `reloaded` cannot be observed, so
 * they are always a change (as in Ansible); their usual place is a handler.
 */
export const serviceModule: Module<ServiceArgs> = {
  name: 'service',
  doc:
    'Ensure a systemd unit is started or stopped and enabled or disabled; restarted/reloaded ' +
    'always act (use them in handlers).',
  spec: serviceSpec,
  reads(args) {
    return [
      ...(args.state === 'started' || args.state === 'stopped' ? [{ kind: 'cmd' as const, command: isActive(args.name) }] : []),
      ...(args.enabled !== undefined || args.state !== undefined ? [{ kind: 'cmd' as const, command: isEnabled(args.name) }] : []),
    ];
  },
  async plan(args, ctx): Promise<Plan> {
    const name = args.name;
    const en = await ctx.observe.cmd(isEnabled(name));
    const enabledState = en.stdout.trim();
    if (en.code !== 0 && (enabledState === '' || enabledState === 'not-found' || /No such file|not found/i.test(en.stderr))) {
      return {
        kind: 'fail',
        msg: `unit ${name} not found${en.stderr.trim() ? `: ${en.stderr.trim()}` : ''}`,
        hint: 'check the unit name (`systemctl list-unit-files`), or install the package that provides it first',
      };
    }
    const actions: Action[] = [];
    const notes: string[] = [];
    const ok: string[] = [];
    if (args.enabled === true) {
      if (enabledState === 'masked' || enabledState === 'masked-runtime') {
        return { kind: 'fail', msg: `unit ${name} is masked`, hint: `unmask it first (systemctl unmask ${name})` };
      }
      if (ENABLED.has(enabledState)) ok.push(`${enabledState}`);
      else {
        actions.push({ kind: 'exec', command: cmd('systemctl', 'enable', name) });
        notes.push(`enable (was ${enabledState || 'unknown'})`);
      }
    } else if (args.enabled === false) {
      if (DISABLED.has(enabledState)) ok.push(`${enabledState}`);
      else {
        actions.push({ kind: 'exec', command: cmd('systemctl', 'disable', name) });
        notes.push(`disable (was ${enabledState})`);
      }
    }
    let active: string | undefined;
    if (args.state === 'started' || args.state === 'stopped') {
      active = (await ctx.observe.cmd(isActive(name))).stdout.trim();
      const running = active === 'active' || active === 'reloading' || active === 'activating';
      if (args.state === 'started' && !running) {
        actions.push({ kind: 'exec', command: cmd('systemctl', 'start', name) });
        notes.push(`start (was ${active || 'unknown'})`);
      } else if (args.state === 'stopped' && running) {
        actions.push({ kind: 'exec', command: cmd('systemctl', 'stop', name) });
        notes.push(`stop (was ${active})`);
      } else ok.push(active || 'inactive');
    } else if (args.state === 'restarted') {
      actions.push({ kind: 'exec', command: cmd('systemctl', 'restart', name) });
      notes.push('restart');
    } else if (args.state === 'reloaded') {
      actions.push({ kind: 'exec', command: cmd('systemctl', 'reload', name) });
      notes.push('reload');
    }
    const data = { name, enabled: enabledState, active };
    if (!actions.length) return { kind: 'noop', reason: `${name} already ${ok.join(' and ')}`, data };
    return { kind: 'change', msg: `${name}: ${notes.join(', ')}`, diff: [], actions, data };
  },
};
