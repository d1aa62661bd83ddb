/**
 * Lab helpers for integration tests: which tests may use the lab (root only), temp dirs and
 * teardown, what a node wrote (its root tree, hashed), its boots.log, and ssh options to reach it.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { bootLog, labDown } from '../../src/lab/index.ts';

/** The lab needs root (namespaces, bind mounts). */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * `test.serial` when the lab can run (lab tests share state, so they run in order). Without root
 * each lab test FAILS with the reason instead of being skipped: a run that did not exercise the
 * lab must never look green.
 */
export const labTest: typeof test.serial = isRoot
  ? test.serial
  : (((title: string) =>
      test.serial(title, (t) => {
        t.fail('the lab needs root (mount namespaces, sshd on port 22 of 127.0.x.y): run the tests as root');
      })) as unknown as typeof test.serial);

/** A new empty dir in the system temp dir, its name starting with `prefix`. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Lab teardown: stops the lab in `dir` (labDown) and removes it, then removes the other dirs.
 * Empty strings are skipped (the lab was never set up, e.g. not root).
 */
export async function tearDownLab(dir: string, ...alsoRemove: string[]): Promise<void> {
  if (dir) {
    await labDown(dir);
    rmSync(dir, { recursive: true, force: true });
  }
  for (const d of alsoRemove) if (d) rmSync(d, { recursive: true, force: true });
}

/** A node's files: path inside the node (e.g. `/etc/modules`) → sha256 of its content. */
export type NodeTree = Map<string, string>;

/**
 * The empty file an `apply` run flocks to keep a second run off the node (src/engine/host-lock.ts):
 * the run's own lock, not configuration, so the trees leave it out while it is empty.
 */
const RUN_LOCK = /^\/var\/lib\/passthru\/apply\.lock$/;

/** Every regular file under `root`, path below root → sha256; `skip` leaves out a path (with its size). */
export function fileTree(root: string, skip: (path: string, size: number) => boolean = () => false): NodeTree {
  const out: NodeTree = new Map();
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      const st = statSync(p, { throwIfNoEntry: false });
      if (st?.isDirectory()) walk(p);
      else if (st?.isFile() && !skip(p.slice(root.length), st.size)) out.set(p.slice(root.length), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(root);
  return out;
}

/** Every file under the node's own root (what the node wrote), path → sha256. */
export function nodeTree(labDir: string, node: string): NodeTree {
  return fileTree(join(labDir, 'nodes', node, 'root'), (path, size) => size === 0 && RUN_LOCK.test(path));
}

/** Paths whose content differs between two trees, or that exist in only one of them, sorted. */
export function changedFiles(a: NodeTree, b: NodeTree): string[] {
  const out: string[] = [];
  for (const [k, v] of b) if (a.get(k) !== v) out.push(k);
  for (const k of a.keys()) if (!b.has(k)) out.push(k);
  return out.sort();
}

/** Same paths with the same content. */
export const sameTree = (a: NodeTree, b: NodeTree): boolean => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

/** The node's boots.log entries (down/up, written by the node side) at or after `since` (ms). */
export const bootsSince = (labDir: string, node: string, since: number) => bootLog(labDir, node).filter((e) => e.at >= since);

/** A time a node was down: from its `down` entry to the next `up`. */
export interface DownInterval {
  node: string;
  down: number;
  up: number;
}

/** The node's down intervals since `since` (ms), from its boots.log; a `down` with no `up` yet is left out. */
export function downIntervals(labDir: string, node: string, since: number): DownInterval[] {
  const out: DownInterval[] = [];
  let down: number | undefined;
  for (const e of bootsSince(labDir, node, since)) {
    if (e.event === 'down') down = e.at;
    else if (down !== undefined) {
      out.push({ node, down, up: e.at });
      down = undefined;
    }
  }
  return out;
}

/** ssh options to log in to a lab node as root with the lab's key and known_hosts (strict, batch). */
export function labSshOptions(labDir: string): string[] {
  return ['-i', join(labDir, 'ssh', 'id_ed25519'), '-o', `UserKnownHostsFile=${join(labDir, 'ssh', 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes'];
}

/**
 * The gates of a run that did not pass: any not `ok`, except a gate that is opt-in and was off
 * (its `when:` on the switch is false). The lab cannot run gate-assignable (no /dev/vfio): the
 * real-kernel lane runs it.
 */
export function gatesNotOk<G extends { status: string; msg?: string }>(gates: G[]): G[] {
  return gates.filter((g) => g.status !== 'ok' && !(g.status === 'skipped' && /^skipped: vfio_assignable_gate\b.* is false$/.test(g.msg ?? '')));
}

/** One command on a lab node over OpenSSH (the lab's key and known_hosts): its exit code and output, never a throw. */
export async function labSh(labDir: string, address: string, command: string): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('ssh', [...labSshOptions(labDir), '-o', 'ConnectTimeout=5', `root@${address}`, command]);
    return { code: 0, out: stdout, err: stderr };
  } catch (e: any) {
    return { code: e.code ?? -1, out: e.stdout ?? '', err: e.stderr ?? '' };
  }
}

/**
 * The lab's generated inventory with its host variables changed by `change` (host → its vars),
 * written as `outDir/file` in YAML 1.1, as Ansible reads inventories (17:00 must be quoted).
 */
export function labInventory(inventoryPath: string, outDir: string, file: string, change: (hv: Map<string, Record<string, unknown>>) => void): string {
  const doc = parseYaml(readFileSync(inventoryPath, 'utf8'));
  const hv = new Map<string, Record<string, unknown>>();
  const walk = (g: Record<string, any>) => {
    for (const [h, v] of Object.entries(g.hosts ?? {})) hv.set(h, v as Record<string, unknown>);
    for (const c of Object.values(g.children ?? {})) walk(c as Record<string, any>);
  };
  walk(doc.all);
  change(hv);
  const p = join(outDir, file);
  writeFileSync(p, stringifyYaml(doc, { version: '1.1' }));
  return p;
}
