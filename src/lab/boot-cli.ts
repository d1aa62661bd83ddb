/** Called by a node's supervisor between two runs of its sshd: boot the node from its files. */
import { bootNode } from './node.ts';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: boot-cli.ts NODE_DIR');
  process.exit(2);
}
const { bootId, result } = bootNode(dir);
console.log(`${new Date().toISOString()} booted ${result.kernelRelease} boot_id=${bootId} cmdline=${result.cmdline}`);
