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
import { StringDecoder } from 'node:string_decoder';
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

/** What the script run along with the lock is called in its results and errors. */
const ALONG_COMMAND = 'sh -s (along with the node lock)';

/**
 * The output of the script run along with the lock, read as it arrives: from the moment the lock
 * is held up to the script's end line, which carries its exit status. `result` settles once:
 * with that output, or with a CommandError when the script runs over its time or the command
 * ends first.
 */
class AlongReader {
  readonly result: Promise<ExecResult>;
  private settle: ((r: ExecResult | Error) => void) | undefined;
  private readonly endLine: string;
  private out = '';
  private err = '';
  private started = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: string,
    nonce: string,
    private readonly timeoutMs: number | undefined,
  ) {
    this.endLine = `\n${ALONG_END} ${nonce} `;
    this.result = new Promise<ExecResult>((resolve, reject) => {
      this.settle = (r) => {
        this.settle = undefined;
        clearTimeout(this.timer);
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
    });
    this.result.catch(() => {});
  }

  /** The lock is held: the script starts now (its time counts from here) with this output. */
  start(first: string): void {
    this.started = Date.now();
    const ms = this.timeoutMs;
    if (ms !== undefined) this.timer = setTimeout(() => this.fail(-1, `${this.err}passthru: timed out after ${ms} ms`, ms), ms);
    this.stdout(first);
  }

  stdout(chunk: string): void {
    if (!this.settle) return;
    this.out += chunk;
    // The end line is the last thing the script part prints: look for it near the end only.
    const at = this.out.indexOf(this.endLine, Math.max(0, this.out.length - chunk.length - this.endLine.length - 16));
    if (at < 0) return;
    const m = /^(\d+)\n/.exec(this.out.slice(at + this.endLine.length));
    if (m) this.settle({ command: ALONG_COMMAND, code: Number(m[1]), stdout: this.out.slice(0, at), stderr: this.err, durationMs: Date.now() - this.started });
  }

  stderr(chunk: string): void {
    this.err += chunk;
  }

  /** The lock command ended: a script not finished by then failed. */
  ended(code: number, stderr: string | undefined): void {
    this.fail(code, stderr ?? this.err, 0);
  }

  private fail(code: number, stderr: string, durationMs: number): void {
    this.settle?.(new CommandError(this.host, { command: ALONG_COMMAND, code, stdout: this.out, stderr, durationMs }));
  }
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
  const nonce = randomBytes(12).toString('hex');
  const along = o.along && Buffer.byteLength(o.along.script) <= ALONG_MAX_BYTES ? { script: o.along.script, nonce } : undefined;
  const reader = along ? new AlongReader(conn.host, nonce, o.along?.timeoutMs) : undefined;
  // stdout: up to LOCK_HELD, then (with along) the script's output, which the reader takes.
  // One decoder for the whole stream: a character split between two chunks stays whole.
  const utf8 = new StringDecoder('utf8');
  let seen = '';
  let isHeld = false;
  let held!: () => void;
  const heldLine = new Promise<void>((r) => (held = r));
  const holder = conn
    .exec(lockScript(o.dir, o.owner, o.waitS, along), {
      hold: ac.signal,
      nothrow: true,
      onStdout: (chunk) => {
        const text = utf8.write(chunk);
        if (isHeld) return reader?.stdout(text);
        seen += text;
        const at = seen.indexOf(`${LOCK_HELD}\n`);
        if (at < 0 || (at > 0 && seen[at - 1] !== '\n')) return;
        isHeld = true;
        held();
        reader?.start(seen.slice(at + LOCK_HELD.length + 1));
      },
      ...(reader ? { onStderr: (chunk: Buffer) => reader.stderr(chunk.toString('utf8')) } : {}),
    })
    .then(
      (r) => {
        ended = { code: r.code, stderr: r.stderr };
      },
      (e: Error) => {
        ended = { code: -1, stderr: e.message };
      },
    )
    .finally(() => reader?.ended(ended?.code ?? -1, ended?.stderr));
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
      ...(reader ? { along: reader.result } : {}),
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
