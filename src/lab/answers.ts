/**
 * Answers of a lab node's stub tools, kept in `gen/run/answers/`: what is costly to compute from
 * the node's files is computed once, when the node boots or when a tool changes those files, so
 * that a stub answers with shell builtins only (the facts probe runs a dozen stubs on every run).
 *
 *   dmesg         the kernel log as dmesg prints it (from run/dmesg)
 *   dmesg-mtime   the time run/dmesg was written, in seconds (journalctl -k shows it)
 *   dpkg.tsv      the index of /var/lib/dpkg/status: `name<TAB>version<TAB>status`, by name
 *
 * The rule, shared with the stubs (answer_get in lab/stubs/lib/common.sh): an answer is used only
 * while its file is strictly newer than every file it was computed from (equal times are stale:
 * file times are as coarse as the kernel's clock tick). Tests and the engine edit a node's files
 * directly; then the stub computes the answer again the same way and keeps it. An answer is kept
 * only when no input changed since before it was read, so a kept answer is never older than its
 * files say.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ANSWERS_DIR = 'answers';

/** `[    0.013000] message` → `[    0.013000]` as util-linux dmesg prints it (`[%5lu.%06lu]`), as the dmesg stub's fallback does. */
export function formatDmesg(raw: string): string {
  if (raw === '') return '';
  const lines = raw.replace(/\n$/, '').split('\n');
  return (
    lines
      .map((l) => {
        const m = /^\[ *([0-9]+)\.([0-9]+)\] /.exec(l);
        if (!m) return l;
        return `[${String(Number(m[1])).padStart(5)}.${m[2]}] ${l.slice(m[0].length)}`;
      })
      .join('\n') + '\n'
  );
}

/**
 * The dpkg-query stub's index of a status file: per stanza (paragraphs split on empty lines) its
 * first `Package: `, `Version: ` and `Status: ` line, the last stanza of a name winning; one
 * `name<TAB>version<TAB>status` line per name, in byte order (`LC_ALL=C sort`).
 */
export function dpkgIndex(status: string): string {
  const ver = new Map<string, [string, string]>();
  let n = '';
  let v = '';
  let t = '';
  const flush = () => {
    if (n) ver.set(n, [v, t]);
    n = v = t = '';
  };
  for (const l of status.split('\n')) {
    if (l === '') flush();
    else if (l.startsWith('Package: ')) n ||= l.slice(9);
    else if (l.startsWith('Version: ')) v ||= l.slice(9);
    else if (l.startsWith('Status: ')) t ||= l.slice(8);
  }
  flush();
  const names = [...ver.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return names.map((k) => `${k}\t${ver.get(k)![0]}\t${ver.get(k)![1]}\n`).join('');
}

const mtimeNs = (f: string): bigint | null => {
  try {
    return statSync(f, { bigint: true }).mtimeNs;
  } catch {
    return null;
  }
};
const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Keep an answer computed from `inputs`: a temporary file is written first (its time is the stamp),
 * then the inputs are read; the answer is kept (renamed into place) only when every input is
 * strictly older than the stamp and unchanged after the answer was written. Inputs written in the
 * same clock tick (the boot writes run/dmesg just before) are waited out, a few milliseconds.
 * Gives up (leaves no answer: the stub computes it) after `tries`.
 */
export function keepAnswer(runDir: string, name: string, inputs: string[], compute: () => string, tries = 200): boolean {
  const dir = join(runDir, ANSWERS_DIR);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    for (let i = 0; i < tries; i++) {
      writeFileSync(tmp, '');
      const stamp = statSync(tmp, { bigint: true }).mtimeNs;
      const before = inputs.map(mtimeNs);
      if (before.some((m) => m !== null && m >= stamp)) {
        pause(1);
        continue;
      }
      writeFileSync(tmp, compute());
      if (inputs.map(mtimeNs).every((m, k) => m === before[k])) {
        renameSync(tmp, file);
        return true;
      }
    }
    return false;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The answers of the files the boot wrote (gen/run) and of the node's own (root/): see the header. */
export function writeAnswers(nodeDir: string): void {
  const run = join(nodeDir, 'gen', 'run');
  const status = join(nodeDir, 'root', 'var/lib/dpkg/status');
  writeDmesgAnswers(run);
  keepAnswer(run, 'dpkg.tsv', [status], () => {
    try {
      return dpkgIndex(readFileSync(status, 'utf8'));
    } catch {
      return '';
    }
  });
}

/** After run/dmesg was written (the boot, an SR-IOV unit): the dmesg and journalctl answers. */
export function writeDmesgAnswers(runDir: string): void {
  const dmesg = join(runDir, 'dmesg');
  keepAnswer(runDir, 'dmesg', [dmesg], () => formatDmesg(readFileSync(dmesg, 'utf8')));
  keepAnswer(runDir, 'dmesg-mtime', [dmesg], () => `${statSync(dmesg, { bigint: true }).mtimeNs / 1_000_000_000n}\n`);
}
