/**
 * The file of failed and unreachable hosts a run leaves behind, for `--limit @<file>`.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** `<cwd>/.passthru/failed-hosts` */
export function defaultFailedHostsPath(cwd: string): string {
  return join(cwd, '.passthru', 'failed-hosts');
}

/**
 * Write one host per line under a comment header telling how to rerun. Written to a temp file
 * and renamed over the target, so an interrupted run never leaves half a file. An empty list
 * still writes the file (header only), so a stale list of an earlier run does not linger.
 */
export async function writeFailedHosts(path: string, hosts: string[]): Promise<void> {
  const header = [
    `# Hosts that failed or were unreachable in the last passthru run (${new Date().toISOString()}).`,
    `# Rerun only these: passthru apply <playbook> --limit @${path}`,
  ];
  const body = [...header, ...hosts].join('\n') + '\n';
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, body, { mode: 0o644 });
  await rename(tmp, path);
}
