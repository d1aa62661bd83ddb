/**
 * `become` over SSH: how a command line is wrapped in sudo (passwordless, or with the password
 * on sudo's stdin ahead of the command's own input), where the password comes from, and the
 * errors a person reads when sudo refuses. ssh.ts probes sudo once at connect and uses these.
 */
import { UnreachableError } from '../model/errors.ts';
import type { ConnSpec } from '../model/types.ts';
import { shq, type ExecResult } from './connection.ts';

/** How commands become root: not at all (root, or no become), `sudo -n`, or `sudo -S` with a password. */
export type SudoMode = 'none' | 'nopasswd' | 'password';

/** What the outer sudo prints when it refuses to run a command (the command never ran). */
export const SUDO_FAILURE =
  /^sudo: (a password is required|a terminal is required|.*is not in the sudoers file|.*may not run sudo|sorry, user .* is not allowed|.*incorrect password attempt|no tty present|.*not allowed to execute)[^\n]*/;

/** The sudo password: from the environment variable named by become_password_env, else ansible_become_password. */
export function becomePassword(spec: ConnSpec, env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = spec.becomePasswordEnv ? env[spec.becomePasswordEnv] : undefined;
  return fromEnv ?? spec.becomePassword;
}

/** The command line (and stdin) that runs `command` as root in `mode`; the password is read only when needed. */
export function becomeLine(mode: SudoMode, command: string, stdin: string | Buffer | undefined, password: () => string): { line: string; stdin: string | Buffer | undefined } {
  if (mode === 'nopasswd') return { line: `sudo -n sh -c ${shq(command)}`, stdin };
  if (mode === 'password') {
    const rest = stdin === undefined ? Buffer.alloc(0) : Buffer.from(stdin);
    return { line: `sudo -S -k -p '' sh -c ${shq(command)}`, stdin: Buffer.concat([Buffer.from(`${password()}\n`), rest]) };
  }
  return { line: command, stdin };
}

/** sudo did not accept the password it was given (never printed). */
export function passwordRefused(host: string, spec: ConnSpec, env: NodeJS.ProcessEnv): UnreachableError {
  const pwVar = spec.becomePasswordEnv;
  return new UnreachableError(
    `${host}: sudo refused the password ${pwVar && env[pwVar] !== undefined ? `from environment variable ${pwVar}` : 'of ansible_become_password'} for user ${spec.user}`,
    host,
    `check the sudo password (it is never printed) and that ${spec.user} may run commands as root`,
  );
}

/** `sudo -n true` failed and no password can help: why, and what to change on the host. */
export function sudoUnavailable(host: string, spec: ConnSpec, probe: ExecResult): UnreachableError {
  const reason = (probe.stderr.trim().split('\n').pop() ?? '').trim() || `exit ${probe.code}`;
  return new UnreachableError(
    `${host}: user ${spec.user} cannot run commands as root through sudo: ${reason}`,
    host,
    /password is required/.test(probe.stderr)
      ? `give ${spec.user} passwordless sudo (a sudoers drop-in with NOPASSWD), or set become_password_env to a variable holding the sudo password`
      : `grant ${spec.user} sudo rights on the host (e.g. /etc/sudoers.d/), or connect as root`,
  );
}
