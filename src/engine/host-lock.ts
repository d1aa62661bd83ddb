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
 */
import { RunError } from '../model/errors.ts';
import { shq, type Connection } from '../transport/connection.ts';

/** Exit code of the lock command when another run holds the lock. */
export const LOCK_BUSY = 75;

/** The line the lock command prints once it holds the lock and has written the owner file. */
export const LOCK_HELD = 'passthru-lock: held';

/** The command that takes and holds the lock. Pure. */
export function lockScript(dir: string, owner: string, waitS: number): string {
  const d = shq(dir);
  return [
    'set -u',
    `d=${d}`,
    'command -v flock >/dev/null 2>&1 || { echo "passthru: flock(1) is not installed: cannot lock the node" >&2; exit 70; }',
    'mkdir -p -- "$d" && exec 9>>"$d/apply.lock" || { echo "passthru: cannot open $d/apply.lock" >&2; exit 70; }',
    // The run itself holds it already (two inventory hosts that are one machine, e.g. the local
    // transport twice): a run never waits on its own lock. The first holder keeps it.
    `if ! flock -n 9 && [ "$(cat "$d/apply.owner" 2>/dev/null)" = ${shq(owner)} ]; then echo '${LOCK_HELD}'; exec cat > /dev/null; fi`,
    `if ! flock -w ${Math.max(0, Math.floor(waitS))} 9; then`,
    `  echo "passthru: another apply run holds the lock on this node: $(cat "$d/apply.owner" 2>/dev/null || echo unknown)" >&2`,
    `  exit ${LOCK_BUSY}`,
    'fi',
    `printf '%s\\n' ${shq(owner)} > "$d/apply.owner.$$" && mv -f -- "$d/apply.owner.$$" "$d/apply.owner"`,
    `echo '${LOCK_HELD}'`,
    'cat > /dev/null',
    'rm -f -- "$d/apply.owner"',
  ].join('\n');
}

export interface HostLock {
  /** Close the command's stdin: the lock is released; resolves when the command ended. */
  release(): Promise<void>;
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
  },
): Promise<HostLock | null> {
  const ac = new AbortController();
  let ended: { code: number; stderr: string } | undefined;
  let seen = '';
  let held!: () => void;
  const heldLine = new Promise<void>((r) => (held = r));
  const holder = conn
    .exec(lockScript(o.dir, o.owner, o.waitS), {
      hold: ac.signal,
      nothrow: true,
      onStdout: (chunk) => {
        seen += chunk.toString('utf8');
        if (seen.split('\n').includes(LOCK_HELD)) held();
      },
    })
    .then(
      (r) => {
        ended = { code: r.code, stderr: r.stderr };
      },
      (e: Error) => {
        ended = { code: -1, stderr: e.message };
      },
    );
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
