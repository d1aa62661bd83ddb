/**
 * `npm run bench`: every benchmark, one after the other, each printing its own figures.
 * Benchmarks measure; they assert nothing (that is what the tests are for).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const benches = process.argv.slice(2).length ? process.argv.slice(2) : ['ssh', 'converge'];
let failed = 0;
for (const b of benches) {
  const file = fileURLToPath(new URL(`./${b}.ts`, import.meta.url));
  console.log(`\n### bench/${b}.ts`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
