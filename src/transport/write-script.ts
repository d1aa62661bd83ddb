/**
 * The one atomic file write, as a POSIX sh script that reads the new content on stdin. Both
 * transports run it (SSH on the host, `local` through `sh -c`), so the local tests exercise the
 * production path. What it guarantees:
 *
 * - The target is replaced by rename(2) of a fully written, size-checked, fsynced temp file in the
 *   same directory, so every reader sees the old file or the new one, never a mix. Any failure
 *   before the rename (full disk, short read because the connection dropped, chown refused, fsync
 *   error) leaves the old file untouched and the temp file removed (EXIT/HUP/TERM traps).
 * - A symbolic link at the target is REFUSED with a clear message, neither followed nor
 *   replaced: following it lets a link redirect a root write anywhere (a planted link turns a
 *   config edit into an overwrite of another file), and replacing it silently detaches a setup
 *   the user made on purpose (the linked file keeps the old content, the edit seems lost).
 *   The user points the task at the real file instead.
 * - The temp name is unique per writer (mktemp, O_EXCL: never follows a link, never reuses a name)
 *   and a writer removes only its own temp file, so concurrent writers never delete each other's.
 *   Each writer holds an flock on its temp file while it lives: the next write into that
 *   directory removes only temp files nobody holds (writers killed with SIGKILL, no trap ran).
 * - fsync of the file before the rename and of the directory after it; an fsync error fails the
 *   write (before the rename: the old file stays; after: the new file is in place, said so).
 * - Mode and owner: the given ones, else the old file's, else 0644 and the writer's own.
 * - Backup (`backup`): only when the content changes, as `<path>.passthru-<UTC to the
 *   millisecond>-<n>.bak`, created exclusively (a hard link to the old inode, which the rename
 *   then leaves alone; a copy where links are not supported), so two backups never share a name.
 *   `keepBackups` prunes the oldest of that file's backups beyond that number.
 * - Compare and swap (`expectSha256`, under `lockFile`): the rename happens only if the file still
 *   has the content the plan was made from, checked under the lock its other writers take (pct's
 *   `/run/lock/lxc/pve-config-ID.lock`): an edit made in between is never overwritten.
 */
import { CommandError, shq } from './connection.ts';
import type { ExecResult, WriteOptions, WriteResult } from './connection.ts';

/** Exit code of the script when the new file is in place but the directory fsync failed. */
export const WRITE_DIR_SYNC_FAILED = 3;

/** `20261104T093012.345Z`: UTC to the millisecond, fixed width, sorts in time order. */
export function backupStampMs(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '');
}

/** A backup name's pattern: `<file>.passthru-<stamp>-<n>.bak` (the older `<stamp>Z.bak` too). */
export const BACKUP_NAME = /\.passthru-\d{8}T\d{6}(\.\d{3})?Z(-\d+)?\.bak$/;

/**
 * The script for writing `size` bytes (read from stdin) to `path`. Pure: the same inputs give the
 * same text. Prints `backup:<path>` when it kept a backup.
 */
export function writeScript(path: string, size: number, opts: WriteOptions = {}, now = new Date()): string {
  if (!path.startsWith('/')) throw new Error(`cannot write ${path}: the path must be absolute`);
  const modeStr = opts.mode !== undefined ? (opts.mode & 0o7777).toString(8).padStart(4, '0') : '';
  const owner =
    opts.owner !== undefined || opts.group !== undefined
      ? `${opts.owner ?? ''}${opts.group !== undefined ? `:${opts.group}` : ''}`
      : '';
  const keep = opts.keepBackups;
  if (keep !== undefined && (!Number.isInteger(keep) || keep < 1)) throw new Error(`keepBackups must be a whole number >= 1, found ${keep}`);
  const lines = [
    'set -u',
    'umask 077',
    'LC_ALL=C; export LC_ALL',
    `p=${shq(path)}`,
    `want=${size}`,
    'fail() { echo "passthru: cannot write $p: $*; the old file is unchanged" >&2; exit 1; }',
    'd=$(dirname -- "$p") && n=$(basename -- "$p") || fail "bad path"',
    '[ -d "$d" ] || { echo "passthru: cannot write $p: directory $d does not exist" >&2; exit 1; }',
    'if [ -L "$p" ]; then',
    '  echo "passthru: cannot write $p: it is a symbolic link (to $(readlink -- "$p")); passthru neither writes through links nor replaces them: point the task at the real file, or remove the link" >&2',
    '  exit 1',
    'fi',
    '[ -d "$p" ] && { echo "passthru: cannot write $p: it is a directory" >&2; exit 1; }',
    '[ -e "$p" ] && [ ! -f "$p" ] && { echo "passthru: cannot write $p: it is not a regular file" >&2; exit 1; }',
    // Each writer holds an flock on its own temp file for as long as it lives (fd 9 of this
    // shell). A temp file nobody holds is a leftover of a writer killed with SIGKILL (no trap ran):
    // removed, under the lock. A live writer's file is never touched.
    'lock=; command -v flock >/dev/null 2>&1 && lock=1',
    'if [ -n "$lock" ]; then for f in "$d"/.passthru-tmp.*; do',
    '  [ -f "$f" ] && [ ! -L "$f" ] || continue',
    '  flock -n "$f" rm -f -- "$f" 2>/dev/null',
    'done; fi',
    'tmp=; i=0',
    'while [ $i -lt 10 ]; do',
    '  i=$((i+1))',
    '  t=$(mktemp "$d/.passthru-tmp.XXXXXXXXXX") || fail "cannot create a temp file in $d"',
    '  exec 9>>"$t" || fail "cannot open the temp file"',
    // Locked and still the file at that name (a cleaner may have removed it in between): ours.
    '  if [ -z "$lock" ] || { flock -n 9 && [ /dev/fd/9 -ef "$t" ]; }; then tmp=$t; break; fi',
    '  exec 9>&-',
    'done',
    '[ -n "$tmp" ] || fail "cannot get a temp file of its own in $d"',
    `trap 'rm -f -- "$tmp"' EXIT`,
    "trap 'exit 1' HUP INT TERM PIPE",
    // fd 9 (and its lock) stays open until the rename: the temp file is ours to the end.
    'cat >&9 || fail "writing the new content failed"',
    `size=$(wc -c < "$tmp" | tr -d ' ')`,
    '[ "$size" = "$want" ] || fail "short write ($size of $want bytes: the connection dropped or the disk is full)"',
    'sync -- "$tmp" || fail "fsync of the new content failed"',
    modeStr
      ? `chmod ${modeStr} "$tmp" || fail "chmod failed"`
      : 'if [ -e "$p" ]; then m=$(stat -c %a -- "$p") && chmod "$m" "$tmp" || fail "cannot copy the mode"; else chmod 0644 "$tmp" || fail "chmod failed"; fi',
    owner
      ? `chown -- ${shq(owner)} "$tmp" || fail "chown failed"`
      : // An unprivileged writer keeps its own ownership (it could not give the file away anyway).
        'if [ -e "$p" ]; then o=$(stat -c %u:%g -- "$p") && { chown "$o" "$tmp" 2>/dev/null || [ "$(id -u)" != 0 ]; } || fail "cannot copy the owner"; fi',
  ];
  if (opts.lockFile !== undefined) {
    if (!opts.lockFile.startsWith('/')) throw new Error(`cannot lock ${opts.lockFile}: the path must be absolute`);
    lines.push(
      `lf=${shq(opts.lockFile)}`,
      'mkdir -p -- "$(dirname -- "$lf")" && exec 8>>"$lf" || fail "cannot open the lock $lf"',
      'flock -w 60 8 || fail "the lock $lf is held by another writer (waited 60 s)"',
    );
  }
  if (opts.expectSha256 !== undefined) {
    if (!/^([0-9a-f]{64})?$/.test(opts.expectSha256)) throw new Error(`expectSha256 must be a SHA-256 in hex or '', found ${opts.expectSha256}`);
    lines.push(
      opts.expectSha256 === ''
        ? '[ -e "$p" ] && fail "it was created by someone else since it was read: run again"'
        : `{ [ -f "$p" ] && [ "$(sha256sum < "$p" | cut -d' ' -f1)" = ${shq(opts.expectSha256)} ]; } || fail "it was changed by someone else since it was read: run again"`,
    );
  }
  if (opts.backup) {
    const stamp = backupStampMs(now);
    lines.push(
      // Only when the content changes: a rewrite with the same bytes keeps no copy.
      'if [ -f "$p" ] && ! cmp -s -- "$p" "$tmp"; then',
      '  i=0',
      '  while :; do',
      `    b="$p.passthru-${stamp}-$i.bak"`,
      '    if ln -- "$p" "$b" 2>/dev/null; then break; fi',
      '    if [ ! -e "$b" ] && [ ! -L "$b" ]; then cp -p -- "$p" "$b" || fail "cannot keep a backup"; break; fi',
      '    i=$((i+1)); [ $i -lt 100 ] || fail "cannot find a free backup name"',
      '  done',
      "  printf 'backup:%s\\n' \"$b\"",
      'fi',
    );
  }
  lines.push(
    'mv -f -- "$tmp" "$p" || fail "rename failed"',
    'trap - EXIT',
    `sync -- "$d" || { echo "passthru: $p was replaced, but fsync of directory $d failed: the change may not survive a power loss" >&2; exit ${WRITE_DIR_SYNC_FAILED}; }`,
  );
  if (opts.backup && keep !== undefined) {
    lines.push(
      // Keep the newest `keep` backups of this file (names sort in time order under LC_ALL=C).
      'c=0; for f in "$p".passthru-*.bak; do [ -f "$f" ] && [ ! -L "$f" ] && c=$((c+1)); done',
      `x=$((c-${keep}))`,
      'for f in "$p".passthru-*.bak; do [ $x -gt 0 ] || break; [ -f "$f" ] && [ ! -L "$f" ] || continue; rm -f -- "$f" && x=$((x-1)); done',
    );
  }
  lines.push('exit 0');
  return lines.join('\n');
}

/**
 * What the script's run means: the backup path it printed, or a CommandError named
 * `write <path> (<n> bytes)` whose message carries the script's own explanation.
 */
export function writeOutcome(host: string, path: string, size: number, r: ExecResult): WriteResult {
  if (r.code !== 0) throw new CommandError(host, { ...r, command: `write ${path} (${size} bytes)` });
  const m = /^backup:(.*)$/m.exec(r.stdout);
  return m ? { backupPath: m[1]! } : {};
}
