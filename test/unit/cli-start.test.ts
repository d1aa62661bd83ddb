/**
 * The installed CLI: bin/passthru.js runs the compiled JavaScript in dist/ (built by `npm ci`
 * through the `prepare` script) with plain node, and no TypeScript loader is needed at run time.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? jsFiles(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : [],
  );
}

test('bin/passthru.js --help runs the compiled CLI with plain node (no loader)', (t) => {
  t.true(existsSync(join(repo, 'dist/cli/main.js')), 'dist/ is built by `npm ci` (prepare) or `npm run build`');
  // NODE_OPTIONS cleared: ava runs this file through tsx; the child must not inherit a loader.
  const r = spawnSync(process.execPath, [join(repo, 'bin/passthru.js'), '--help'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '' },
  });
  t.is(r.status, 0, r.stderr);
  for (const cmd of ['apply', 'check', 'list', 'modules', 'lab', 'demo']) t.regex(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'));
});

test('tsx is a development dependency only, and nothing compiled imports it', (t) => {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
  t.falsy(pkg.dependencies?.tsx);
  t.truthy(pkg.devDependencies?.tsx);
  t.regex(pkg.scripts?.prepare ?? '', /build/);
  const files = jsFiles(join(repo, 'dist'));
  t.true(files.length > 20);
  for (const f of files) t.notRegex(readFileSync(f, 'utf8'), /from ['"]tsx|import\(['"]tsx/, f);
  t.notRegex(readFileSync(join(repo, 'bin/passthru.js'), 'utf8'), /tsx/);
});
