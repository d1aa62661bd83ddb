/**
 * The on-disk state of a lab (`<dir>/lab.json`, `<dir>/nodes/<name>/...`) read from outside the
 * nodes: which nodes exist, whether each is up, its boot log, and a node's files as the node
 * sees them. lab/index.ts starts and stops labs; this module only looks (and writes a node file
 * when asked).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export interface LabNode {
  name: string;
  address: string;
  profile: string;
}

export interface NodeStatus extends LabNode {
  state: 'up' | 'down' | 'rebooting';
  bootId: string | null;
  cluster: string | null;
}

export class LabError extends Error {
  override name = 'LabError';
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A pid recorded in a node's directory (supervisor.pid, ns.pid) that still is that node's
 * process: alive, and its command line names the node's directory (the supervisor's argument,
 * node-ns.sh's, the sshd's `-f DIR/sshd_config`). A process that has exited leaves its pid to
 * be reused by any other process (a busy machine wraps pid_max in minutes): without this check
 * a signal meant for a dead node could hit an unrelated process, and a namespace sweep kill a
 * whole unrelated namespace.
 */
export function nodeProcess(pid: number | null, nodeDir: string): pid is number {
  if (pid === null || !alive(pid)) return false;
  try {
    // sshd rewrites its command line ("sshd: /usr/sbin/sshd -D -e -f DIR/sshd_config [listener] ..."): split at spaces too
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/).some((a) => a === nodeDir || a.startsWith(`${nodeDir}/`));
  } catch {
    return false;
  }
}

export function readPid(file: string): number | null {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

export function labNodes(dir: string): LabNode[] {
  const f = join(resolve(dir), 'lab.json');
  if (!existsSync(f)) return [];
  return (JSON.parse(readFileSync(f, 'utf8')) as { nodes: LabNode[] }).nodes;
}

export async function labStatus(dir: string): Promise<NodeStatus[]> {
  const d = resolve(dir);
  return labNodes(d).map((n) => {
    const ndir = join(d, 'nodes', n.name);
    const sup = readPid(join(ndir, 'supervisor.pid'));
    let state: NodeStatus['state'] = 'down';
    if (nodeProcess(sup, ndir)) {
      const s = (() => {
        try {
          return readFileSync(join(ndir, 'state'), 'utf8').trim();
        } catch {
          return 'down';
        }
      })();
      state = s === 'up' ? 'up' : s === 'rebooting' ? 'rebooting' : 'down';
    }
    let bootId: string | null = null;
    try {
      bootId = readFileSync(join(ndir, 'gen', 'proc', 'boot_id'), 'utf8').trim();
    } catch {
      /* never booted */
    }
    let cluster: string | null = null;
    try {
      cluster = readFileSync(join(ndir, 'cluster'), 'utf8').trim();
    } catch {
      /* standalone */
    }
    return { ...n, state, bootId, cluster };
  });
}

/**
 * A node's file as the node sees it (`/etc/modprobe.d/vfio.conf`, `/proc/cmdline`, ...).
 * With `content`, writes it (the node sees it at once). Returns the content (null when absent).
 */
export function nodeFile(dir: string, node: string, path: string, content?: string): string | null {
  if (!path.startsWith('/') || path.split('/').includes('..')) throw new LabError(`node path must be absolute without '..': ${path}`);
  const ndir = join(resolve(dir), 'nodes', node);
  if (!existsSync(ndir)) throw new LabError(`no lab node '${node}' in ${dir}`);
  const genMap: Record<string, string> = {
    '/proc/cmdline': 'gen/proc/cmdline',
    '/proc/meminfo': 'gen/proc/meminfo',
    '/proc/cpuinfo': 'gen/proc/cpuinfo',
    '/proc/modules': 'gen/proc/modules',
    '/proc/sys/kernel/random/boot_id': 'gen/proc/boot_id',
  };
  let file: string;
  if (genMap[path]) file = join(ndir, genMap[path]!);
  else if (path.startsWith('/sys/')) file = join(ndir, 'gen', path);
  else file = join(ndir, 'root', path);
  if (content !== undefined) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    return content;
  }
  try {
    return readFileSync(file, 'utf8');
  } catch {
    if (path.startsWith('/etc/') && !path.startsWith('/etc/passthru-lab')) {
      // Not the node's own: the node sees the machine's file through the overlay.
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return null;
      }
    }
    return null;
  }
}

/** Lines of `<dir>/nodes/<name>/boots.log`: down/up events written by the node side. */
export function bootLog(dir: string, node: string): Array<{ event: 'up' | 'down'; at: number; bootId?: string }> {
  const f = join(resolve(dir), 'nodes', node, 'boots.log');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [ev, at, id] = l.split(' ');
      return { event: ev as 'up' | 'down', at: Number(at), ...(id ? { bootId: id } : {}) };
    });
}

/**
 * Remote commands the node's sshd has started so far: LogLevel VERBOSE logs one `Starting session:`
 * line per command or subsystem a client runs. The bench and the round-trip tests count with it,
 * so the count comes from the node, not from the engine. 0 before the node's first start.
 */
export function sessionCount(dir: string, node: string): number {
  try {
    return (readFileSync(join(resolve(dir), 'nodes', node, 'sshd.log'), 'utf8').match(/Starting session: (command|subsystem)/g) ?? []).length;
  } catch {
    return 0;
  }
}
