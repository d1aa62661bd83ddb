/**
 * A lab node's files in memory, as the boot simulator reads them (src/lab/boot-config.ts NodeView):
 * for unit tests of the lab's boot, without a node.
 */
import type { NodeView } from '../../src/lab/boot-config.ts';

export function memoryView(files: Record<string, string>): NodeView & { files: Record<string, string> } {
  return {
    files,
    read: (p) => (p in files ? files[p]! : null),
    list: (d) => {
      const pre = d.endsWith('/') ? d : d + '/';
      const names = new Set<string>();
      for (const f of Object.keys(files)) if (f.startsWith(pre)) names.add(f.slice(pre.length).split('/')[0]!);
      return [...names].sort();
    },
  };
}
