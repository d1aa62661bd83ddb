#!/usr/bin/env node
// `npm run build` (and `prepare`, so `npm ci` builds it): the CLI and the lab's two node-side
// programs, bundled by esbuild into dist/ as plain ES modules. One file per entry, their shared
// code in dist/chunks/, the lazily loaded commands (lab, facts, inventory, demo, the engine) in
// chunks of their own, so `passthru --help` loads none of them. Bundled, a start compiles a few
// large files instead of resolving and compiling about 200 small ones plus the packages' own.
// No type check here: that is `npm run typecheck` (tsc), which the tests run first.
//
// Not bundled: ssh2 (it loads its native crypto binding by a path relative to its own files)
// and typescript (only the lab run from the sources loads it).
import { build } from 'esbuild';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(repo, 'dist');
rmSync(dist, { recursive: true, force: true });
await build({
  absWorkingDir: repo,
  entryPoints: ['src/cli/main.ts', 'src/lab/boot-cli.ts', 'src/lab/sriov-cli.ts'],
  outbase: 'src',
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['ssh2', 'typescript'],
  // The packages bundled in that are CommonJS call require() for node's own modules.
  banner: { js: "import { createRequire as __passthruRequire } from 'node:module'; const require = __passthruRequire(import.meta.url);" },
  logLevel: 'warning',
});
for (const f of readdirSync(join(repo, 'src/lab')).filter((f) => f.endsWith('.sh'))) cpSync(join(repo, 'src/lab', f), join(dist, 'lab', f));
