import { posix } from 'node:path';
import type { Module, Plan, Read, ArgumentSpec, InferArgs } from './contract.ts';
import { shq } from '../transport/connection.ts';

const commandSpec = {
  options: {
    cmd: { type: 'str', multiline: true, required: true, aliases: ['command', 'shell', '_raw_params'], description: 'The command line (POSIX sh), run as written.' },
    creates: { type: 'str', description: 'Skip when this path exists.' },
    removes: { type: 'str', description: 'Skip when this path does not exist.' },
    unless: { type: 'str', multiline: true, description: 'Skip when this read-only command exits 0.' },
    onlyif: { type: 'str', multiline: true, description: 'Run only when this read-only command exits 0.' },
    chdir: { type: 'str', description: 'Directory to run in (relative guard paths are resolved against it).' },
    stdin: { type: 'str', multiline: true, description: "Text fed to the command's stdin." },
    timeout: { type: 'int', min: 1, description: 'Seconds before the command is killed (default: the engine timeout).' },
  },
} as const satisfies ArgumentSpec;
export type CommandArgs = InferArgs<typeof commandSpec>;

/** `cd DIR && (command)` when chdir is set. */
function inDir(command: string, chdir: string | undefined): string {
  return chdir ? `cd ${shq(chdir)} && ${command}` : command;
}

function guardPath(p: string, chdir: string | undefined): string {
  return chdir && !p.startsWith('/') ? posix.join(chdir, p) : p;
}

/**
 * `command`: run a command line. passthru cannot predict what a command does, so without a
 * guard it runs on every run (and is reported as changed; check mode only announces it).
 * Guards make it idempotent: `creates` (skip when a path exists), `removes` (skip when it does
 * not), `unless` (skip when a read-only command succeeds), `onlyif` (run only when one does).
 * Guard commands run in the batched read, never as a change.
 */
export const commandModule: Module<CommandArgs> = {
  name: 'command',
  doc:
    'Run a shell command. It cannot be predicted, so it runs every time unless a guard says it is ' +
    'done: creates/removes (a path), unless/onlyif (a read-only command).',
  spec: commandSpec,
  validate(args) {
    if (typeof args.cmd === 'string' && args.cmd.trim() === '') return 'cmd is empty';
    return undefined;
  },
  reads(args) {
    const r: Read[] = [];
    if (args.creates) r.push({ kind: 'stat', path: guardPath(args.creates, args.chdir) });
    if (args.removes) r.push({ kind: 'stat', path: guardPath(args.removes, args.chdir) });
    if (args.unless) r.push({ kind: 'cmd', command: inDir(args.unless, args.chdir) });
    if (args.onlyif) r.push({ kind: 'cmd', command: inDir(args.onlyif, args.chdir) });
    return r;
  },
  async plan(args, ctx): Promise<Plan> {
    const why: string[] = [];
    if (args.creates) {
      const p = guardPath(args.creates, args.chdir);
      const s = await ctx.observe.stat(p);
      if (s.exists) return { kind: 'noop', reason: `${p} exists (creates)` };
      why.push(`${p} does not exist (creates)`);
    }
    if (args.removes) {
      const p = guardPath(args.removes, args.chdir);
      const s = await ctx.observe.stat(p);
      if (!s.exists) return { kind: 'noop', reason: `${p} does not exist (removes)` };
      why.push(`${p} exists (removes)`);
    }
    if (args.unless) {
      const r = await ctx.observe.cmd(inDir(args.unless, args.chdir));
      if (r.code === 0) return { kind: 'noop', reason: `unless succeeded: ${args.unless}` };
      why.push(`unless exited ${r.code}`);
    }
    if (args.onlyif) {
      const r = await ctx.observe.cmd(inDir(args.onlyif, args.chdir));
      if (r.code !== 0) return { kind: 'noop', reason: `onlyif exited ${r.code}: ${args.onlyif}` };
      why.push('onlyif succeeded');
    }
    // Say what runs (handlers are commands like update-grub); the guard that let it run in brackets.
    const msg = `${ctx.check ? 'would run' : 'runs'}: ${shortCommand(args.cmd)}${why.length ? ` (${why.join(', ')})` : ''}`;
    return {
      kind: 'change',
      msg,
      diff: [],
      actions: [
        {
          kind: 'exec',
          command: inDir(args.cmd, args.chdir),
          ...(args.stdin !== undefined ? { stdin: args.stdin } : {}),
          ...(args.timeout !== undefined ? { timeoutMs: Number(args.timeout) * 1000 } : {}),
        },
      ],
    };
  },
};

/** The first line of a command, at most 100 characters, for messages. */
export function shortCommand(command: string): string {
  const first = command.trim().split('\n')[0] ?? '';
  return first.length > 100 ? `${first.slice(0, 97)}...` : first;
}

/**
 * What the commands a task ran did, in the user's words, from their output: the bootloader and
 * initramfs tools the roles call as handlers. undefined for any other command (its plan message
 * stays).
 */
export function describeRun(execs: Array<{ command: string; stdout: string; stderr: string }>): string | undefined {
  if (execs.length !== 1) return undefined;
  const { command, stdout, stderr } = execs[0];
  const out = `${stdout}\n${stderr}`;
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  const c = command.trim();
  if (/^update-initramfs\b/.test(c)) {
    const kernels = [...out.matchAll(/^update-initramfs: Generating \/boot\/initrd\.img-(\S+)/gm)].map((m) => m[1]);
    const esps = new Set([...out.matchAll(/^Copying and configuring kernels on (\S+)/gm)].map((m) => m[1]));
    return `initramfs rebuilt for ${kernels.length ? `${plural(kernels.length, 'kernel')} (${kernels.join(', ')})` : 'the kernels asked'}${esps.size ? `, copied to ${plural(esps.size, 'ESP')} by proxmox-boot-tool` : ''}`;
  }
  if (/^update-grub\b|^grub-mkconfig\b/.test(c)) {
    const images = [...out.matchAll(/^Found linux image: (\S+)/gm)].length;
    return `update-grub: grub.cfg regenerated${images ? ` (${plural(images, 'kernel')})` : ''}`;
  }
  if (/^proxmox-boot-tool\s+refresh\b/.test(c)) {
    const esps = new Set([...out.matchAll(/^Copying and configuring kernels on (\S+)/gm)].map((m) => m[1]));
    const kernels = new Set([...out.matchAll(/creating boot-entry for (\S+)/gm)].map((m) => m[1]));
    return `proxmox-boot-tool refresh: ${kernels.size ? `${plural(kernels.size, 'kernel')} ` : 'kernels '}copied to ${esps.size ? plural(esps.size, 'ESP') : 'the ESPs'}`;
  }
  return undefined;
}
