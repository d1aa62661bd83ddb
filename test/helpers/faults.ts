/**
 * Faults for lab tests: a node whose every process (its sshd, the sessions, a write script half
 * way through) is killed at once, as a crash or a pulled cable looks from the controller; the
 * node started again later with the state it had (sshd back, same boot); a watcher that fires
 * on a node's first file change, to strike in the middle of a run rather than before or after it.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeProcess, readPid as pidIn } from '../../src/lab/state.ts';
import { nodeTree, type NodeTree } from './lab.ts';

const SUPERVISOR = fileURLToPath(new URL('../../src/lab/supervisor.sh', import.meta.url));

const mntNs = (pid: number): string | null => {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return null;
  }
};

/**
 * Kills every process in the node's mount namespace with SIGKILL (no trap runs, nothing is
 * flushed). With `stayDown` the node's supervisor is told to stop first, so the node stays
 * unreachable until {@link startNode}; without it the supervisor boots the node again.
 *
 * All of them are stopped (SIGSTOP) before any is killed, as in a crash, where none of them sees
 * another go: killed one by one in pid order, an sshd whose pid was higher than its session's
 * command (after the pid counter wrapped) could still report that command's death (exit 137)
 * before dying itself, and the host read as failed instead of unreachable.
 */
export function crashNode(labDir: string, node: string, o: { stayDown: boolean }): number {
  const nd = join(labDir, 'nodes', node);
  if (o.stayDown) writeFileSync(join(nd, 'stop'), '');
  const nsPid = pidIn(join(nd, 'ns.pid'));
  const ns = nodeProcess(nsPid, nd) ? mntNs(nsPid) : null;
  if (!ns || ns === mntNs(process.pid)) throw new Error(`${node}: no namespace of its own to crash`);
  // Held open while killing: an emptied namespace's inode number is not given to a new one meanwhile.
  const fd = openSync(`/proc/${nsPid}/ns/mnt`, 'r');
  let killed = 0;
  const each = (signal: NodeJS.Signals, count: boolean) => {
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e) || mntNs(Number(e)) !== ns) continue;
      try {
        process.kill(Number(e), signal);
        if (count) killed++;
      } catch {
        /* already gone */
      }
    }
  };
  try {
    each('SIGSTOP', false);
    each('SIGKILL', true);
  } finally {
    closeSync(fd);
  }
  return killed;
}

const portOpen = (addr: string): Promise<boolean> =>
  new Promise((res) => {
    const s = connect({ host: addr, port: 22 }, () => {
      s.destroy();
      res(true);
    });
    s.on('error', () => res(false));
    s.setTimeout(500, () => {
      s.destroy();
      res(false);
    });
  });

/** Starts a stopped node again (as `labUp` does: its supervisor, detached) and waits for its sshd. */
export async function startNode(labDir: string, node: string, address: string): Promise<void> {
  const nd = join(labDir, 'nodes', node);
  const sup = pidIn(join(nd, 'supervisor.pid'));
  for (let i = 0; i < 50 && nodeProcess(sup, nd); i++) await new Promise((r) => setTimeout(r, 100));
  rmSync(join(nd, 'stop'), { force: true });
  spawn('sh', [SUPERVISOR, nd], { detached: true, stdio: 'ignore' }).unref();
  for (let i = 0; i < 100; i++) {
    if (await portOpen(address)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${node} did not come back on ${address}:22`);
}

/** The run's own lock files (src/engine/host-lock.ts): taking the lock is not yet a change. */
export const LOCK_FILES = /^\/var\/lib\/passthru\/apply\.(lock|owner)(\..*)?$/;

/**
 * Polls the node's tree every `everyMs` and calls `fire` once, on the first change against
 * `before` (a file written, removed or a temp file created; the run's lock files aside).
 * Returns a stop function.
 */
export function onFirstChange(labDir: string, node: string, before: NodeTree, fire: (changed: string[]) => void, everyMs = 15): () => void {
  let done = false;
  const timer = setInterval(() => {
    if (done) return;
    const now = nodeTree(labDir, node);
    const changed = [...new Set([...now.keys(), ...before.keys()])].filter((k) => now.get(k) !== before.get(k) && !LOCK_FILES.test(k));
    if (changed.length) {
      done = true;
      clearInterval(timer);
      fire(changed);
    }
  }, everyMs);
  return () => {
    done = true;
    clearInterval(timer);
  };
}
