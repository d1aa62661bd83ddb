import type { Action, Module, Plan, ArgumentSpec, InferArgs } from './contract.ts';
import { cmd } from '../transport/connection.ts';
import { DPKG_QUERY, parseDpkgQuery } from '../facts/parsers.ts';

const aptSpec = {
  options: {
    name: { type: 'list', elements: 'str', required: true, aliases: ['pkg', 'package'], description: 'Packages: a name, a comma list, or a list of names (name=version pins).' },
    state: { type: 'str', default: 'present', choices: ['present', 'absent'], description: 'present or absent.' },
    update_cache: { type: 'bool', default: false, description: 'Run apt-get update before installing (only when something is to be installed).' },
  },
} as const satisfies ArgumentSpec;
export type AptArgs = InferArgs<typeof aptSpec>;

const NAME = /^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$/;

export function packageList(name: string | string[]): string[] {
  const list = Array.isArray(name) ? name : [name];
  return list.flatMap((n) => String(n).split(',')).map((n) => n.trim()).filter(Boolean);
}

/**
 * `apt`: Debian packages present or absent. Reads the installed set with one `dpkg-query`;
 * installs (or removes) only what differs, in one non-interactive `apt-get` run that keeps
 * existing configuration files. `name=version` asks for that exact version.
 */
export const aptModule: Module<AptArgs> = {
  name: 'apt',
  doc:
    'Ensure Debian packages are installed or removed (one dpkg-query read, one apt-get run for ' +
    'what differs; noninteractive, no recommends, old config files kept).',
  spec: aptSpec,
  validate(args) {
    const bad = packageList(args.name).filter((n) => !NAME.test(n));
    if (bad.length) return `not a package name: ${bad.join(', ')}`;
    if (packageList(args.name).length === 0) return 'name lists no package';
    return undefined;
  },
  reads() {
    return [{ kind: 'cmd', command: DPKG_QUERY }];
  },
  async plan(args, ctx): Promise<Plan> {
    const wanted = packageList(args.name);
    const bad = wanted.filter((n) => !NAME.test(n));
    if (bad.length) return { kind: 'fail', msg: `not a package name: ${bad.join(', ')}` };
    const q = await ctx.observe.cmd(DPKG_QUERY);
    if (q.code !== 0 && q.stdout.trim() === '') {
      return {
        kind: 'fail',
        msg: `dpkg-query failed (exit ${q.code}): ${q.stderr.trim()}`,
        hint: 'the apt module needs a Debian-based host (Proxmox VE is one)',
      };
    }
    const installed = new Map(Object.entries(parseDpkgQuery(q.stdout)));
    const state = args.state ?? 'present';
    const todo: string[] = [];
    for (const w of wanted) {
      const [spec, version] = w.split('=') as [string, string | undefined];
      const pkg = spec.replace(/:.*$/, '');
      const have = installed.get(pkg);
      if (state === 'present') {
        if (have === undefined || (version !== undefined && have !== version)) todo.push(w);
      } else if (have !== undefined) todo.push(spec);
    }
    const data = { installed: Object.fromEntries(wanted.map((w) => [w, installed.get(w.split('=')[0]!.replace(/:.*$/, '')) ?? null])) };
    if (todo.length === 0) {
      return {
        kind: 'noop',
        reason: state === 'present' ? `already installed: ${wanted.join(', ')}` : `not installed: ${wanted.join(', ')}`,
        data,
      };
    }
    const env = 'DEBIAN_FRONTEND=noninteractive';
    const actions: Action[] = [];
    if (state === 'present') {
      if (args.update_cache) actions.push({ kind: 'exec', command: `${env} ${cmd('apt-get', 'update', '-q')}` });
      actions.push({
        kind: 'exec',
        command: `${env} ${cmd(
          'apt-get', 'install', '-y', '-q', '--no-install-recommends',
          '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold',
          ...todo,
        )}`,
      });
    } else {
      actions.push({ kind: 'exec', command: `${env} ${cmd('apt-get', 'remove', '-y', '-q', ...todo)}` });
    }
    const verb = state === 'present' ? 'install' : 'remove';
    return {
      kind: 'change',
      msg: `${verb} ${todo.length} package${todo.length > 1 ? 's' : ''}: ${todo.join(', ')}\n${todo
        .map((p) => `${state === 'present' ? '+' : '-'} ${p}`)
        .join('\n')}`,
      diff: [],
      actions,
      data: { ...data, [verb]: todo },
    };
  },
};
