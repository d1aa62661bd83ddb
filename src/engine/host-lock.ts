/**
 * One `apply` at a time per node. The run keeps one command open on each host it changes: it
 * takes an flock on `<state dir>/apply.lock`, writes who holds it to `apply.owner`, prints
 * `LOCK_HELD` on its stdout (how the run knows it holds the lock: no other command is run to ask)
 * and reads its stdin until the run closes it. So the lock lives exactly as long as the run's connection: a
 * controller killed, or a dropped connection, frees it by itself (no stale lock to clean), and a
 * reboot frees it too (the run does not take it again after the reboot).
 * A second run against the same node waits up to `waitS` seconds, then stops for that host with
 * who holds the lock; it never interleaves its changes with the first run's. Check mode takes no
 * lock (it changes nothing).
 *
 * The same command can then run a script of its own (`along`: the facts probe and the stage's
 * reads), as `sh -s` would with that script on its stdin, and print what it printed and its exit
 * status before it settles down to hold the lock: taking the lock and reading the host is one
 * command, not two.
 */
import { randomBytes } from 'node:crypto';
import { RunError } from '../model/errors.ts';
import { CommandError, shq, type Connection, type ExecResult } from '../transport/connection.ts';

/** Exit code of the lock command when another run holds the lock. */
export const LOCK_BUSY = 75;

/** The line the lock command prints once it holds the lock and has written the owner file. */
export const LOCK_HELD = 'passthru-lock: held';

/** The line that ends the output of the script run along with the lock: `<prefix> <nonce> <exit status>`. */
const ALONG_END = '@@passthru-lock-along-end';

/**
 * The largest script run along with the lock (bytes). The script travels inside the command
 * line, which Linux caps at 128 KiB for one argument (`sh -c COMMAND`, `sudo sh -c COMMAND`):
 * a longer one runs as a command of its own.
 */
export const ALONG_MAX_BYTES = 96 * 1024;

/** A script for the lock command to run once it holds the lock (as `sh -s` with it on stdin). */
export interface Along {
  script: string;
  /** Time allowed for the script from the moment the lock is held (ms). */
  timeoutMs?: number;
}

/**
 * The command that takes and holds the lock; with `along`, it runs that script once the lock is
 * held, then prints `\n<ALONG_END> <nonce> <exit status>`. Pure.
 */
export function lockScript(dir: string, owner: string, waitS: number, along?: { script: string; nonce: string }): string {
  const d = shq(dir);
  // The script is a quoted here-doc (no expansion in it), ended by a line no script contains.
  const eof = along ? `PASSTHRU_ALONG_${along.nonce}` : '';
  const run = along ? 'along' : ':';
  return [
    'set -u',
    `d=${d}`,
    ...(along
      ? [
          // stdin of the script is its here-doc (as `sh -s` reads its script): never the lock's;
          // nor does it get the lock's descriptor (nothing it starts can outlive the lock with it).
          'along() {',
          `sh -s 9>&- <<'${eof}'`,
          along.script.endsWith('\n') ? along.script.slice(0, -1) : along.script,
          eof,
          `printf '\\n%s %s %s\\n' '${ALONG_END}' '${along.nonce}' "$?"`,
          '}',
        ]
      : []),
    'command -v flock >/dev/null 2>&1 || { echo "passthru: flock(1) is not installed: cannot lock the node" >&2; exit 70; }',
    'mkdir -p -- "$d" && exec 9>>"$d/apply.lock" || { echo "passthru: cannot open $d/apply.lock" >&2; exit 70; }',
    // The run itself holds it already (two inventory hosts that are one machine, e.g. the local
    // transport twice): a run never waits on its own lock. The first holder keeps it.
    `if ! flock -n 9 && [ "$(cat "$d/apply.owner" 2>/dev/null)" = ${shq(owner)} ]; then echo '${LOCK_HELD}'; ${run}; exec cat > /dev/null; fi`,
    `if ! flock -w ${Math.max(0, Math.floor(waitS))} 9; then`,
    `  echo "passthru: another apply run holds the lock on this node: $(cat "$d/apply.owner" 2>/dev/null || echo unknown)" >&2`,
    `  exit ${LOCK_BUSY}`,
    'fi',
    `printf '%s\\n' ${shq(owner)} > "$d/apply.owner.$$" && mv -f -- "$d/apply.owner.$$" "$d/apply.owner"`,
    `echo '${LOCK_HELD}'`,
    run,
    'cat > /dev/null',
    'rm -f -- "$d/apply.owner"',
  ].join('\n');
}

export interface HostLock {
  /** Close the command's stdin: the lock is released; resolves when the command ended. */
  release(): Promise<void>;
  /**
   * What the script run along with the lock printed and its exit status, as `sh -s` run on its
   * own would give them (stderr: the lock command's, which says nothing once the lock is held).
   * Rejects with a CommandError when the script does not end within its timeout (it may then
   * still be running: the lock is released when it ends), or when the command ends first.
   */
  along?: Promise<ExecResult>;
}

/**
 * Take the lock on the host. Throws a RunError when another run holds it (after `waitS`);
 * returns null (and says why through `warn`) when the host cannot be locked at all (no flock):
 * the run goes on unlocked rather than not at all.
 */
export async function lockHost(
  conn: Connection,
  o: {
    dir: string;
    owner: string;
    waitS: number;
    warn?: (msg: string) => void;
    /** A script to run in the same command once the lock is held (see HostLock.along). */
    along?: Along;
  },
): Promise<HostLock | null> {
  const ac = new AbortController();
  let ended: { code: number; stderr: string } | undefined;
  const along = o.along && Buffer.byteLength(o.along.script) <= ALONG_MAX_BYTES ? { ...o.along, nonce: randomBytes(12).toString('hex') } : undefined;
  const command = lockScript(o.dir, o.owner, o.waitS, along);
  // stdout: up to LOCK_HELD, then (with along) the script's output up to its end line.
  let seen = '';
  let isHeld = false;
  let held!: () => void;
  const heldLine = new Promise<void>((r) => (held = r));
  let alongOut = '';
  let stderr = '';
  let alongDone: ((r: ExecResult) => void) | undefined;
  let alongFailed: ((e: Error) => void) | undefined;
  const alongResult = along
    ? new Promise<ExecResult>((res, rej) => {
        alongDone = res;
        alongFailed = rej;
      })
    : undefined;
  alongResult?.catch(() => {});
  const endLine = along ? `\n${ALONG_END} ${along.nonce} ` : '';
  let alongStarted = 0;
  let alongTimer: NodeJS.Timeout | undefined;
  const settleAlong = (r: ExecResult | Error) => {
    if (!alongDone) return;
    const done = alongDone;
    const failed = alongFailed!;
    alongDone = alongFailed = undefined;
    clearTimeout(alongTimer);
    if (r instanceof Error) failed(r);
    else done(r);
  };
  const alongOutput = (chunk: string) => {
    alongOut += chunk;
    // The end line is the last thing the script part prints: look for it near the end only.
    const at = alongOut.indexOf(endLine, Math.max(0, alongOut.length - chunk.length - endLine.length - 16));
    if (at < 0) return;
    const m = /^(\d+)\n/.exec(alongOut.slice(at + endLine.length));
    if (!m) return;
    settleAlong({ command: 'sh -s (along with the node lock)', code: Number(m[1]), stdout: alongOut.slice(0, at), stderr, durationMs: Date.now() - alongStarted });
  };
  const holder = conn
    .exec(command, {
      hold: ac.signal,
      nothrow: true,
      onStdout: (chunk) => {
        const text = chunk.toString('utf8');
        if (isHeld) return alongDone && alongOutput(text);
        seen += text;
        const at = seen.indexOf(`${LOCK_HELD}\n`);
        if (at < 0 || (at > 0 && seen[at - 1] !== '\n')) return;
        isHeld = true;
        held();
        if (!along) return;
        alongStarted = Date.now();
        if (along.timeoutMs !== undefined) {
          const ms = along.timeoutMs;
          alongTimer = setTimeout(() => {
            settleAlong(
              new CommandError(conn.host, { command: 'sh -s (along with the node lock)', code: -1, stdout: alongOut, stderr: `${stderr}passthru: timed out after ${ms} ms`, durationMs: ms }),
            );
          }, ms);
        }
        alongOutput(seen.slice(at + LOCK_HELD.length + 1));
      },
      onStderr: (chunk) => {
        stderr += chunk.toString('utf8');
      },
    })
    .then(
      (r) => {
        ended = { code: r.code, stderr: r.stderr };
      },
      (e: Error) => {
        ended = { code: -1, stderr: e.message };
      },
    )
    .finally(() => {
      settleAlong(new CommandError(conn.host, { command: 'sh -s (along with the node lock)', code: ended?.code ?? -1, stdout: alongOut, stderr: ended?.stderr ?? stderr, durationMs: 0 }));
    });
  // The lock command says when it holds the lock (LOCK_HELD, after the owner file is written), or
  // ends (busy after waitS, no flock, the connection gone); a command that does neither in time
  // is given up.
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), (o.waitS + 30) * 1000)));
  const first = await Promise.race([heldLine.then(() => 'held' as const), holder.then(() => 'ended' as const), late]);
  clearTimeout(timer);
  if (first === 'held' && !ended) {
    return {
      async release() {
        ac.abort();
        // The command ends as soon as its stdin closes; never let a stuck channel hold the run.
        await Promise.race([holder, new Promise((r) => setTimeout(r, 10_000).unref())]);
      },
      ...(alongResult ? { along: alongResult } : {}),
    };
  }
  if (first === 'late') ac.abort();
  await holder;
  const why = (ended?.stderr ?? '').trim().split('\n').pop() ?? '';
  if (ended?.code === LOCK_BUSY) {
    throw new RunError(
      `${conn.host}: not applied: ${why.replace(/^passthru: /, '')} (waited ${o.waitS} s)`,
      conn.host,
      {},
      `wait for that run to finish and run again; if no run is going on, the lock is free already (it lives only as long as its run's connection): run again`,
    );
  }
  o.warn?.(`${conn.host}: could not lock the node against a concurrent apply (${why || `exit ${ended?.code}`}); going on without the lock`);
  return null;
}
