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
import { posix } from 'node:path';
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
 *
 * With `batch` (the default) the script starts a handful of processes whatever the number of
 * reads: the regular files to read (not through a symlink, not under /proc, /sys or /dev, where
 * sizes lie) and the commands' outputs go into ONE `tar` archive (GNU format, dereferenced, no
 * recursion) piped through one `base64`: `tar` gives each file's mode, owner, group and exact
 * bytes. Each such read prints `tarentry` (a command `tarstdout` and `tarstderr`) in archive
 * order, then the archive follows as `- tar` and tar's status as `- tarrc N`. When tar is
 * missing or fails (a file vanished or changed while read, permission denied), the same script
 * reads those files one by one as without `batch`. Anything else (stat-only reads,
 * directories, symlinks, special files) is read one by one: `stat`, then `base64`.
 */
export function buildReadScript(reads: Read[], marker: string, opts: { batch?: boolean } = {}): string {
  if (!/^[A-Za-z0-9_]+$/.test(marker)) throw new Error(`bad marker: ${marker}`);
  const batch = opts.batch ?? true;
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
    // r_out KEY N: a command's saved output, one by one
    'r_out() {',
    `  printf '%s %s stdout\\n' "$M" "$1"; base64 "$T/$2.o"`,
    `  printf '%s %s stderr\\n' "$M" "$1"; base64 "$T/$2.e"`,
    '}',
  ];
  const seen = new Set<string>();
  const files: Array<[key: string, path: string]> = [];
  const cmds: Array<[key: string, n: number]> = [];
  const body: string[] = [];
  for (const r of reads) {
    const key = readKey(r);
    if (seen.has(key)) continue;
    seen.add(key);
    if (r.kind === 'cmd') {
      const n = cmds.length;
      cmds.push([b64(key), n]);
      // In a subshell of this shell (a fork, no new sh started), with none of the script's
      // variables or arguments: as \`sh -c\` would run it, for the price of a fork.
      body.push(`( unset M T F rc s; set --; eval ${shq(r.command)} ) </dev/null >"$T/${n}.o" 2>"$T/${n}.e"; printf '%s %s rc %s\\n' "$M" ${b64(key)} "$?"`);
    } else if (r.kind === 'file' && batch) files.push([b64(key), r.path]);
    else body.push(`r_file ${b64(key)} ${shq(r.path)} ${r.kind === 'file' ? 1 : 0}`);
  }
  lines.push(...body);
  if (!batch) {
    for (const [k, n] of cmds) lines.push(`r_out ${k} ${n}`);
  } else if (files.length || cmds.length) {
    // The archive's members, in order: "$@" holds their paths, F the reads that fall back.
    lines.push('set --; F=');
    for (const [k, n] of cmds) lines.push(`printf '%s %s tarstdout\\n%s %s tarstderr\\n' "$M" ${k} "$M" ${k}; set -- "$@" "$T/${n}.o" "$T/${n}.e"`);
    for (const [k, p] of files) {
      const q = shq(p);
      // Sizes lie under /proc, /sys and /dev: tar would store what stat says (often 0 bytes).
      if (!p.startsWith('/') || /^\/(?:proc|sys|dev)(?:\/|$)/.test(posix.normalize(p))) lines.push(`r_file ${k} ${q} 1`);
      else lines.push(`if [ -f ${q} ] && [ ! -L ${q} ]; then printf '%s %s tarentry\\n' "$M" ${k}; set -- "$@" ${q}; F="$F ${k}"; else r_file ${k} ${q} 1; fi`);
    }
    lines.push(
      `printf '%s - tar\\n' "$M"`,
      // tar's status through a file: a pipeline's status is its last command's
      `{ if command -v tar >/dev/null 2>&1; then LC_ALL=C tar --format=gnu --hard-dereference --no-recursion -b 1 -chPf - -- "$@" 2>"$T/tar.e"; echo $? >"$T/tar.rc"; else echo 127 >"$T/tar.rc"; fi; } | base64`,
      'read rc <"$T/tar.rc" || rc=1',
      `printf '%s - tarrc %s\\n' "$M" "$rc"`,
      'if [ "$rc" != 0 ]; then',
      ...cmds.map(([k, n]) => `  r_out ${k} ${n}`),
      ...files.map(([k, p]) => `  case " $F " in *' ${k} '*) r_file ${k} ${shq(p)} 1 ;; esac`),
      'fi',
    );
  }
  lines.push(`printf '%s - done\\n' "$M"`, '} </dev/null', '');
  return lines.join('\n');
}

interface Section {
  label: string;
  args: string;
  payload: string[];
}

/** One member of a tar archive (GNU format) as `buildReadScript`'s batch writes it. */
export interface TarMember {
  name: string;
  /** `0` a regular file, `5` a directory, ... (the header's type flag). */
  type: string;
  mode: number;
  uname: string;
  gname: string;
  data: Buffer;
}

/** The members of a GNU tar archive (long names included); null when it is not a whole archive. Pure. */
export function parseTar(buf: Buffer): TarMember[] | null {
  const out: TarMember[] = [];
  const str = (b: Buffer) => {
    const z = b.indexOf(0);
    return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
  };
  const num = (b: Buffer): number => {
    if (b[0]! & 0x80) return Number(b.subarray(1).readUIntBE(b.length - 7, 6)); // base-256
    const t = str(b).trim();
    return t ? Number.parseInt(t, 8) : 0;
  };
  let at = 0;
  let longName: string | null = null;
  while (at + 512 <= buf.length) {
    const h = buf.subarray(at, at + 512);
    if (h.every((x) => x === 0)) return out; // end of archive
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
    if (sum !== num(h.subarray(148, 156))) return null;
    const size = num(h.subarray(124, 136));
    const type = String.fromCharCode(h[156]! || 48);
    const data = buf.subarray(at + 512, at + 512 + size);
    if (data.length !== size) return null;
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = str(data);
      continue;
    }
    out.push({
      name: longName ?? str(h.subarray(0, 100)),
      type,
      mode: num(h.subarray(100, 108)) & 0o7777,
      uname: str(h.subarray(265, 297)),
      gname: str(h.subarray(297, 329)),
      data: Buffer.from(data),
    });
    longName = null;
  }
  return null;
}

/** Parse the output of `buildReadScript`'s script into read key → state. Pure. */
export function parseReadOutput(stdout: string, marker: string): Map<string, Observed> {
  const sections = new Map<string, Section[]>();
  /** The archive's members in order: which read and which part each one answers. */
  const members: Array<{ key: string; label: string }> = [];
  const archive: string[] = [];
  let tarRc: string | null = null;
  let current: Section | undefined;
  let inArchive = false;
  const prefix = `${marker} `;
  for (const line of stdout.split('\n')) {
    if (line.startsWith(prefix)) {
      inArchive = false;
      const m = /^(\S+) (\S+)(?: (.*))?$/.exec(line.slice(prefix.length));
      current = undefined;
      if (!m) continue;
      if (m[1] === '-') {
        if (m[2] === 'tar') inArchive = true;
        else if (m[2] === 'tarrc') tarRc = m[3] ?? null;
        continue;
      }
      const key = Buffer.from(m[1]!, 'base64').toString('utf8');
      if (m[2]!.startsWith('tar')) {
        members.push({ key, label: m[2]! });
        continue;
      }
      current = { label: m[2]!, args: m[3] ?? '', payload: [] };
      let list = sections.get(key);
      if (!list) sections.set(key, (list = []));
      list.push(current);
    } else if (inArchive) {
      archive.push(line);
    } else if (current) {
      current.payload.push(line);
    }
  }
  // The batch's answers, when tar read every member and the archive holds exactly those.
  const fromTar = new Map<string, TarMember>();
  const cmdOut = new Map<string, { stdout?: Buffer; stderr?: Buffer }>();
  if (tarRc === '0') {
    const got = parseTar(Buffer.from(archive.join(''), 'base64'));
    if (got && got.length === members.length && got.every((g) => g.type === '0')) {
      members.forEach((m, i) => {
        if (m.label === 'tarentry') fromTar.set(m.key, got[i]!);
        else {
          const o = cmdOut.get(m.key) ?? {};
          o[m.label === 'tarstdout' ? 'stdout' : 'stderr'] = got[i]!.data;
          cmdOut.set(m.key, o);
        }
      });
    }
  }

  const out = new Map<string, Observed>();
  for (const [key, list] of sections) {
    const get = (label: string) => list.find((s) => s.label === label);
    const data = (s: Section | undefined) => Buffer.from(s ? s.payload.join('') : '', 'base64');
    if (key.startsWith('cmd:')) {
      const rc = get('rc');
      const batch = cmdOut.get(key);
      // No output at all (the batch failed and the script died before its fallback): no answer.
      if (!batch?.stdout && !get('stdout')) continue;
      out.set(key, {
        code: rc ? Number.parseInt(rc.args, 10) : -1,
        stdout: (batch?.stdout ?? data(get('stdout'))).toString('utf8'),
        stderr: (batch?.stderr ?? data(get('stderr'))).toString('utf8'),
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
  for (const [key, t] of fromTar) {
    if (out.has(key)) continue;
    // stat's %U/%G print UNKNOWN for an id without a name; tar leaves the name empty.
    out.set(key, { exists: true, content: t.data.toString('utf8'), bytes: t.data, mode: t.mode, owner: t.uname || 'UNKNOWN', group: t.gname || 'UNKNOWN', isDir: false });
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

  /** An answer read by other means (the facts probe runs some reads itself): cached as if read. */
  seed(r: Read, state: Observed): void {
    const key = readKey(r);
    if (!this.cache.has(key)) this.cache.set(key, state);
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
   * `run` runs the whole script as `sh -s` would (default: exactly that, one exec); the run
   * passes one that runs it inside the node lock's command, so that it takes no exec of its own.
   */
  async readAlong<T>(
    lead: string,
    reads: Read[],
    parseLead: (stdout: string, r: ExecResult) => T,
    timeoutMs?: number,
    run?: (script: string) => Promise<ExecResult>,
  ): Promise<T> {
    const todo = new Map<string, Read>();
    for (const r of reads) if (!todo.has(readKey(r))) todo.set(readKey(r), r);
    const marker = newMarker();
    const script = `(\n${lead}\n)\n${buildReadScript([...todo.values()], marker)}`;
    this.roundTrips++;
    const res = await (run ? run(script) : this.conn.exec('sh -s', { stdin: script, nothrow: true, timeoutMs }));
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

  private async run(reads: Read[], batch = true): Promise<void> {
    const marker = newMarker();
    const script = buildReadScript(reads, marker, { batch });
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
      // A batch whose archive did not come back whole: those reads once more, one by one.
      if (missing.length && batch && res.code === 0) return this.run(reads.filter((r) => missing.includes(readKey(r))), false);
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
