/**
 * What a no-op run of the VM stage costs per node (not a test: it prints figures). Needs root
 * (the lab does). `npm run bench -- vm-stage`
 *
 * A three-node lab cluster (cluster3) is converged with playbooks/gaming-vm.yaml (hosts ready, one
 * PCI mapping, a VM on each member). Then, three times each, the median kept:
 *  - a no-op run that selects no task (`--tags no-such-tag`): connect, lock, probe, nothing else;
 *  - a no-op run of the VM stage (`--tags passthrough-vm`).
 * The difference is what the VM stage adds to a run; divided by the nodes (which run in parallel),
 * what it adds per node. Wall times come from the run's own report (`durationMs`).
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { labDown, labUp } from '../src/lab/index.ts';
import { runCli } from '../test/helpers/cli.ts';

const PLAYBOOK = fileURLToPath(new URL('../playbooks/gaming-vm.yaml', import.meta.url));
const ROLES = fileURLToPath(new URL('../roles', import.meta.url));
const VMID: Record<string, number> = { 'pve-c1': 301, 'pve-c2': 302, 'pve-c3': 303 };
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

const dir = mkdtempSync(join(tmpdir(), 'passthru-bench-vm-'));
const lab = join(dir, 'lab');
let up = false;
const cleanup = async () => {
  if (up) await labDown(lab);
  up = false;
  rmSync(dir, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().finally(() => process.exit(130)));

try {
  log('lab up (cluster3)...');
  const info = await labUp({ dir: lab, scenarios: ['cluster3'], baseAddr: '127.0.124.1', rebootDelayS: 1 });
  up = true;
  symlinkSync(ROLES, join(dir, 'roles'));
  const doc = parse(readFileSync(info.inventoryPath, 'utf8'));
  const walk = (g: Record<string, any>) => {
    for (const [h, v] of Object.entries(g.hosts ?? {})) Object.assign(v as object, { gpu_mapping: 'a100', vm_id: VMID[h], vm_create: true, vm_name: `gpu-${h}`, vm_memory: 2048, vm_cores: 2 });
    for (const c of Object.values(g.children ?? {})) walk(c as Record<string, any>);
  };
  walk(doc.all);
  const inv = join(dir, 'inv.yaml');
  writeFileSync(inv, stringify(doc, { version: '1.1' }));
  let runNo = 0;
  const run = async (...args: string[]) => {
    const r = await runCli(['apply', PLAYBOOK, '-i', inv, '--progress', 'quiet', '--guests', 'shutdown', ...args], { json: join(dir, `run-${++runNo}.json`) });
    if (r.code !== 0) throw new Error(`apply ${args.join(' ')}: exit ${r.code}\n${r.text}`);
    return r.report.durationMs;
  };
  log('converge (reboots one member at a time)...');
  await run();
  const median3 = async (...args: string[]) => {
    const ms = [await run(...args), await run(...args), await run(...args)].sort((a, b) => a - b);
    return ms[1]!;
  };
  const base = await median3('--tags', 'no-such-tag');
  const vm = await median3('--tags', 'passthrough-vm');
  console.log(`no-op run, 3 nodes: facts only ${base} ms, with the VM stage ${vm} ms (medians of 3)`);
  console.log(`the VM stage adds ${vm - base} ms per run, ${Math.round((vm - base) / 3)} ms per node (nodes in parallel)`);
} catch (e) {
  log(`could not run: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
