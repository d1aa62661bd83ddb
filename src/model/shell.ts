/**
 * The one quoting function for POSIX sh. Every value that reaches a shell command line goes
 * through it: the engine's own commands (transport, modules) and the template filter `quote`.
 *
 * Quoting makes a value one word; it cannot stop a program from reading a word that starts with
 * `-` as an option. Commands that take values as positional arguments put `--` (or git's
 * `--end-of-options`) before them, and the argument specs of the roles refuse a leading `-` for
 * names, versions and refs (see roles/<name>/argument_specs.yaml).
 */

/** Words that need no quotes. (Quotes would not stop a leading `-` being read as an option: see above.) */
const BARE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quote one argument for POSIX sh: `shq("it's")` → `'it'\''s'`. Safe for any string except one
 * holding NUL (refused: no C string can carry it, so a shell would cut the value there).
 */
export function shq(arg: string): string {
  if (arg.includes('\0')) throw new Error('cannot pass a NUL byte to a shell command');
  if (BARE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
