/**
 * What every command of the CLI shares: the output streams and how an error becomes a message
 * and an exit code. Imports no command, so each command's module can use it without a cycle.
 */
import { ConfigError, ConfigErrors } from '../model/errors.ts';
import { EXIT } from '../model/types.ts';

/** Output streams, replaceable by tests. */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  isTTY: boolean;
}

export const defaultIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  isTTY: Boolean(process.stdout.isTTY) && !process.env.CI,
};

/** Config errors: `file:line:col: what` + hint, exit 4. Anything else is a bug: stack at -v. */
export function reportError(e: unknown, io: Io): number {
  if (e instanceof ConfigErrors) {
    for (const x of e.errors) io.err(`error: ${x.format()}\n`);
    io.err(`${e.errors.length} error(s); nothing ran, no host was contacted\n`);
    return EXIT.invalidInput;
  }
  if (e instanceof ConfigError) {
    io.err(`error: ${e.format()}\nnothing ran, no host was contacted\n`);
    return EXIT.invalidInput;
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOENT' && err.path) {
    io.err(`error: ${err.path}: no such file\n  hint: check the path (relative paths start from ${process.cwd()})\n`);
    return EXIT.invalidInput;
  }
  io.err(`error: ${err?.stack ?? String(e)}\n`);
  return EXIT.hostFailed;
}
