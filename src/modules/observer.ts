/**
 * The Observer the engine hands to `plan()`: it reads a host in ONE exec. All reads the
 * tasks declared are turned into one POSIX sh script (`buildReadScript`), run with `sh -s`
 * (the script on stdin), and its output, framed by a random marker with every payload in
 * base64, is parsed back by a pure function (`parseReadOutput`). Reads are independent: a
 * missing file, an unreadable one or a failing command never stops the others.
 *
 * `record()` overlays the writes, deletes and mode changes a plan announced, so later tasks
 * (and check mode, where nothing is applied) plan against the state the host will have.
 * Commands (`exec` actions) cannot be predicted: command reads keep their observed answer.
 */
import { randomBytes } from 'node:crypto';
import type { Action, CmdState, FileState, Observer, Read } from './contract.ts';
import { shq, type Connection, type ExecResult } from '../transport/connection.ts';

/** A file as read: the contract's FileState plus the raw bytes and a read error, if any. */
export interface ObservedFile extends FileState {
  /** The exact bytes (content is their UTF-8 decoding). */
  bytes?: Buffer;
  /** Set when the file exists but could not be read or stat'ed (e.g. permission denied). */
  error?: string;
}

export type Observed = ObservedFile | CmdState;

/** The cache key of a read: `file:/etc/x`, `stat:/etc/x`, `cmd:systemctl is-active x`. */
export function readKey(r: Read): string {
  return r.kind === 'cmd' ? `cmd:${r.command}` : `${r.kind}:${r.path}`;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** A fresh marker for one run: letters, digits and `_`, never produced by base64. */
export function newMarker(): string {
  return `PTRD_${randomBytes(9).toString('hex')}`;
}

/**
 * One POSIX sh script that performs every read and prints, per read, a header line
 * `<marker> <base64 of the read key> <label> [args]` followed by base64 payload lines.
 * Labels: `missing`; `stat <mode> <owner> <group> <type...>` then optionally `data` (content)
 * or `error` (why the content could not be read); `rc <n>`, `stdout`, `stderr` for commands.
 */
export function buildReadScript(reads: Read[], marker: string): string {
  if (!/^[A-Za-z0-9_]+$/.test(marker)) throw new Error(`bad marker: ${marker}`);
  const lines = [
    '{',
    `M=${marker}`,
    'T=$(mktemp -d 2>/dev/null) || { T=/tmp/.passthru-read-$$; mkdir -p "$T"; }',
    `trap 'rm -rf "$T"' EXIT`,
    // r_file KEY PATH WITH_CONTENT
    'r_file() {',
    '  if [ -e "$2" ]; then',
    `    if s=$(LC_ALL=C stat -L -c '%a %U %G %F' -- "$2" 2>&1); then`,
    `      printf '%s %s stat %s\\n' "$M" "$1" "$s"`,
    '      if [ "$3" = 1 ] && [ ! -d "$2" ]; then',
    '        if base64 -- "$2" >"$T/b" 2>"$T/e"; then',
    `          printf '%s %s data\\n' "$M" "$1"; cat "$T/b"`,
    '        else',
    `          printf '%s %s error\\n' "$M" "$1"; base64 "$T/e"`,
    '        fi',
    '      fi',
    '    else',
    `      printf '%s %s error\\n' "$M" "$1"; printf '%s' "$s" | base64`,
    '    fi',
    '  else',
    `    printf '%s %s missing\\n' "$M" "$1"`,
    '  fi',
    '}',
    // r_cmd KEY COMMAND
    'r_cmd() {',
    '  sh -c "$2" </dev/null >"$T/o" 2>"$T/e"; rc=$?',
    `  printf '%s %s rc %s\\n' "$M" "$1" "$rc"`,
    `  printf '%s %s stdout\\n' "$M" "$1"; base64 "$T/o"`,
    `  printf '%s %s stderr\\n' "$M" "$1"; base64 "$T/e"`,
    '}',
  ];
  const seen = new Set<string>();
  for (const r of reads) {
    const key = readKey(r);
    if (seen.has(key)) continue;
    seen.add(key);
    if (r.kind === 'cmd') lines.push(`r_cmd ${b64(key)} ${shq(r.command)}`);
    else lines.push(`r_file ${b64(key)} ${shq(r.path)} ${r.kind === 'file' ? 1 : 0}`);
  }
  lines.push(`printf '%s - done\\n' "$M"`, '} </dev/null', '');
  return lines.join('\n');
}

interface Section {
  label: string;
  args: string;
  payload: string[];
}

/** Parse the output of `buildReadScript`'s script into read key → state. Pure. */
export function parseReadOutput(stdout: string, marker: string): Map<string, Observed> {
  const sections = new Map<string, Section[]>();
  let current: Section | undefined;
  const prefix = `${marker} `;
  for (const line of stdout.split('\n')) {
    if (line.startsWith(prefix)) {
      const m = /^(\S+) (\S+)(?: (.*))?$/.exec(line.slice(prefix.length));
      if (!m || m[1] === '-') {
        current = undefined;
        continue;
      }
      const key = Buffer.from(m[1]!, 'base64').toString('utf8');
      current = { label: m[2]!, args: m[3] ?? '', payload: [] };
      let list = sections.get(key);
      if (!list) sections.set(key, (list = []));
      list.push(current);
    } else if (current) {
      current.payload.push(line);
    }
  }

  const out = new Map<string, Observed>();
  for (const [key, list] of sections) {
    const get = (label: string) => list.find((s) => s.label === label);
    const data = (s: Section | undefined) => Buffer.from(s ? s.payload.join('') : '', 'base64');
    if (key.startsWith('cmd:')) {
      const rc = get('rc');
      out.set(key, {
        code: rc ? Number.parseInt(rc.args, 10) : -1,
        stdout: data(get('stdout')).toString('utf8'),
        stderr: data(get('stderr')).toString('utf8'),
      });
      continue;
    }
    if (get('missing')) {
      out.set(key, { exists: false, content: '' });
      continue;
    }
    const st = get('stat');
    const state: ObservedFile = { exists: true, content: '' };
    if (st) {
      const [mode, owner, group, ...type] = st.args.split(' ');
      state.mode = Number.parseInt(mode ?? '', 8);
      state.owner = owner;
      state.group = group;
      state.isDir = type.join(' ') === 'directory';
    }
    const d = get('data');
    if (d) {
      state.bytes = data(d);
      state.content = state.bytes.toString('utf8');
    }
    const err = get('error');
    if (err) state.error = data(err).toString('utf8').trim() || 'unreadable';
    out.set(key, state);
  }
  return out;
}

type Patch = Pick<FileState, 'mode' | 'owner' | 'group'>;

export class HostObserver implements Observer {
  /** Execs made on the host (one per prefetch that had something to read, one per lazy read). */
  roundTrips = 0;
  private readonly cache = new Map<string, Observed>();
  /** Planned state of paths: a full state (after a write/delete) and/or a patch (after a chmod). */
  private readonly planned = new Map<string, { full?: ObservedFile; patch?: Patch }>();
  private readonly inflight = new Map<string, Promise<void>>();
  private ranCommand = false;

  constructor(
    private readonly conn: Connection,
    private readonly opts: { timeoutMs?: number } = {},
  ) {}

  /** Read everything in one exec (reads already answered are skipped). */
  async prefetch(reads: Read[]): Promise<void> {
    const todo = new Map<string, Read>();
    for (const r of reads) {
      const key = readKey(r);
      if (this.cache.has(key) || this.inflight.has(key) || todo.has(key)) continue;
      if (r.kind === 'stat' && this.cache.has(`file:${r.path}`)) continue;
      todo.set(key, r);
    }
    if (todo.size) await this.run([...todo.values()]);
  }

  async file(path: string): Promise<ObservedFile> {
    const p = this.planned.get(path);
    if (p?.full) return applyPatch(p.full, p.patch);
    const s = (await this.get({ kind: 'file', path })) as ObservedFile;
    if (s.error) throw new Error(`${this.conn.host}: cannot read ${path}: ${s.error}`);
    return applyPatch(s, p?.patch);
  }

  async stat(path: string): Promise<ObservedFile> {
    const p = this.planned.get(path);
    if (p?.full) return applyPatch(p.full, p.patch);
    const read: Read = this.cache.has(`file:${path}`) ? { kind: 'file', path } : { kind: 'stat', path };
    const s = (await this.get(read)) as ObservedFile;
    if (s.error && s.mode === undefined) throw new Error(`${this.conn.host}: cannot stat ${path}: ${s.error}`);
    return applyPatch({ ...s, content: '', bytes: undefined }, p?.patch);
  }

  async cmd(command: string): Promise<CmdState> {
    return (await this.get({ kind: 'cmd', command })) as CmdState;
  }

  /**
   * Overlay the state a plan's actions will make (writes, deletes, mode/owner changes). A command
   * may change anything, so after one every answer read so far is forgotten and read again when
   * asked (the overlays stay: they are what the plans announced).
   */
  record(actions: Action[]): void {
    for (const a of actions) {
      if (a.kind === 'exec') {
        this.cache.clear();
        this.ranCommand = true;
      } else if (a.kind === 'write') {
        const prev = this.planned.get(a.path)?.full ?? (this.cache.get(`file:${a.path}`) as ObservedFile | undefined);
        const existed = prev?.exists ? prev : undefined;
        this.planned.set(a.path, {
          full: {
            exists: true,
            content: a.content,
            bytes: Buffer.from(a.content, 'utf8'),
            mode: a.mode ?? existed?.mode ?? 0o644,
            owner: a.owner ?? existed?.owner,
            group: a.group ?? existed?.group,
            isDir: false,
          },
        });
      } else if (a.kind === 'delete') {
        this.planned.set(a.path, { full: { exists: false, content: '' } });
      } else if (a.kind === 'chmod') {
        const entry = this.planned.get(a.path) ?? {};
        const patch: Patch = { ...entry.patch };
        if (a.mode !== undefined) patch.mode = a.mode;
        if (a.owner !== undefined) patch.owner = a.owner;
        if (a.group !== undefined) patch.group = a.group;
        this.planned.set(a.path, { ...entry, patch });
      }
    }
  }

  /** Nothing planned and no command run since the reads: every answer is still the host's state. */
  untouched(): boolean {
    return this.planned.size === 0 && !this.ranCommand;
  }

  /**
   * Run `lead` (a POSIX sh script for `sh -s`, e.g. the facts probe) and these reads in ONE exec:
   * the lead runs in a subshell (its settings and `exit` stay there), then the read script. The
   * output is split at the read script's first marker line: `parseLead` gets what came before it
   * (and may throw: that is the caller's error), the reads are cached as with `prefetch`. Reads
   * that did not answer are not an error here: they are read again when asked.
   */
  async readAlong<T>(lead: string, reads: Read[], parseLead: (stdout: string, r: ExecResult) => T, timeoutMs?: number): Promise<T> {
    const todo = new Map<string, Read>();
    for (const r of reads) if (!todo.has(readKey(r))) todo.set(readKey(r), r);
    const marker = newMarker();
    const script = `(\n${lead}\n)\n${buildReadScript([...todo.values()], marker)}`;
    this.roundTrips++;
    const res = await this.conn.exec('sh -s', { stdin: script, nothrow: true, timeoutMs });
    const split = splitAtMarker(res.stdout, marker);
    const value = parseLead(split.lead, { ...res, stdout: split.lead });
    const parsed = parseReadOutput(split.reads, marker);
    // Only a complete answer is kept: the script prints `done` after its last read.
    if (split.done) {
      for (const key of todo.keys()) {
        const v = parsed.get(key);
        if (v) this.cache.set(key, v);
      }
    }
    return value;
  }

  private async get(r: Read): Promise<Observed> {
    const key = readKey(r);
    for (;;) {
      const hit = this.cache.get(key);
      if (hit) return hit;
      const pending = this.inflight.get(key);
      if (pending) {
        await pending;
        continue;
      }
      await this.run([r]);
    }
  }

  private async run(reads: Read[]): Promise<void> {
    const marker = newMarker();
    const script = buildReadScript(reads, marker);
    const keys = reads.map(readKey);
    const job = (async () => {
      this.roundTrips++;
      // PASSTHRU_DEBUG_READS=1: each read exec on stderr (which reads were not known ahead).
      if (process.env.PASSTHRU_DEBUG_READS) process.stderr.write(`read exec: ${keys.join(' | ')}\n`);
      const res = await this.conn.exec('sh -s', { stdin: script, nothrow: true, timeoutMs: this.opts.timeoutMs });
      const parsed = parseReadOutput(res.stdout, marker);
      const missing: string[] = [];
      for (const key of keys) {
        const v = parsed.get(key);
        if (v) this.cache.set(key, v);
        else missing.push(key);
      }
      if (missing.length) {
        const why = res.stderr.trim().split('\n').slice(-3).join('\n');
        throw new Error(
          `${this.conn.host}: reading the host failed (exit ${res.code}) before ${missing[0]}${why ? `: ${why}` : ''}`,
        );
      }
    })();
    for (const k of keys) this.inflight.set(k, job);
    try {
      await job;
    } finally {
      for (const k of keys) if (this.inflight.get(k) === job) this.inflight.delete(k);
    }
  }
}

/** Split combined output at the first line that starts with the read script's marker. Pure. */
export function splitAtMarker(stdout: string, marker: string): { lead: string; reads: string; done: boolean } {
  const at = stdout.startsWith(`${marker} `) ? 0 : stdout.indexOf(`\n${marker} `);
  if (at < 0) return { lead: stdout, reads: '', done: false };
  const cut = at === 0 ? 0 : at + 1;
  const reads = stdout.slice(cut);
  return { lead: stdout.slice(0, cut), reads, done: reads.includes(`\n${marker} - done\n`) || reads.startsWith(`${marker} - done\n`) };
}

function applyPatch(s: ObservedFile, patch: Patch | undefined): ObservedFile {
  if (!patch || !s.exists) return s;
  return { ...s, ...patch };
}
