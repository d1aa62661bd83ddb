/**
 * A fake Observer built from a plain object, for module fixture tests:
 *   { files: { '/etc/x': 'content' | null | { content, mode, owner, group, dir } },
 *     cmds:  { 'systemctl is-active x': 'active\n' | { code, stdout, stderr } } }
 * Unlisted files are missing; an unlisted command throws (a test must say what the host answers).
 * `planWith` also checks that plan() only read what reads() declared (so a run is one round trip).
 */
import type { CmdState, FileState, Module, Observer, Plan, Read } from '../../src/modules/contract.ts';
import type { Facts } from '../../src/facts/types.ts';
import { readKey } from '../../src/modules/observer.ts';

export type FakeFile = string | null | { content?: string; mode?: number; owner?: string; group?: string; dir?: boolean };
export type FakeCmd = string | { code?: number; stdout?: string; stderr?: string };
export interface FakeHost {
  files?: Record<string, FakeFile>;
  cmds?: Record<string, FakeCmd>;
}

export function fakeObserver(host: FakeHost): Observer & { reads: Read[] } {
  const reads: Read[] = [];
  const fileState = (path: string, withContent: boolean): FileState => {
    const f = host.files?.[path];
    if (f === undefined || f === null) return { exists: false, content: '' };
    const o = typeof f === 'string' ? { content: f } : f;
    return {
      exists: true,
      content: withContent && !o.dir ? (o.content ?? '') : '',
      mode: o.mode ?? (o.dir ? 0o755 : 0o644),
      owner: o.owner ?? 'root',
      group: o.group ?? 'root',
      isDir: !!o.dir,
    };
  };
  return {
    reads,
    async file(path) {
      reads.push({ kind: 'file', path });
      return fileState(path, true);
    },
    async stat(path) {
      reads.push({ kind: 'stat', path });
      return fileState(path, false);
    },
    async cmd(command): Promise<CmdState> {
      reads.push({ kind: 'cmd', command });
      const c = host.cmds?.[command];
      if (c === undefined) throw new Error(`fake host: unexpected command read: ${command}`);
      if (typeof c === 'string') return { code: 0, stdout: c, stderr: '' };
      return { code: c.code ?? 0, stdout: c.stdout ?? '', stderr: c.stderr ?? '' };
    },
  };
}

/** Aliases and schema defaults applied the way the loader does, then validate, then plan on the fake host. */
export async function planWith<A>(
  mod: Module<A>,
  args: Record<string, unknown>,
  host: FakeHost = {},
  vars: Record<string, unknown> = {},
): Promise<Plan> {
  const full: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    const canonical = Object.entries(mod.spec.options).find(([name, spec]) => name === k || spec.aliases?.includes(k));
    if (!canonical) throw new Error(`unknown argument ${k} for ${mod.name}`);
    full[canonical[0]] = v;
  }
  for (const [k, spec] of Object.entries(mod.spec.options)) if (full[k] === undefined && spec.default !== undefined) full[k] = spec.default;
  const err = mod.validate?.(full as A);
  if (err) throw new Error(`validate: ${err}`);
  const facts = {} as Facts;
  const declared = new Set((mod.reads?.(full as A, facts) ?? []).map(readKey));
  const observe = fakeObserver(host);
  const plan = await mod.plan(full as A, { host: 'h1', facts, vars, observe, check: false });
  for (const r of observe.reads) {
    const k = readKey(r);
    // A stat is answered by a declared file read too.
    if (!declared.has(k) && !(r.kind === 'stat' && declared.has(`file:${r.path}`))) {
      throw new Error(`plan read ${k}, which reads() did not declare`);
    }
  }
  return plan;
}

/** Files as a plan's actions leave them (writes and deletes applied), for tests that chain plans. */
export function filesAfter(files: Record<string, string>, plan: Plan): Record<string, string> {
  const next = { ...files };
  if (plan.kind === 'change') {
    for (const x of plan.actions) {
      if (x.kind === 'write') next[x.path] = x.content;
      if (x.kind === 'delete') delete next[x.path];
    }
  }
  return next;
}
