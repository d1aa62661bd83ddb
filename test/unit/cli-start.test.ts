/**
 * The installed CLI: bin/passthru.js runs the compiled JavaScript in dist/ (built by `npm ci`
 * through the `prepare` script) with plain node, and no TypeScript loader is needed at run time.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootNode, initNode } from '../../src/lab/node.ts';
import { loadProfile, MAIN_PROFILES } from '../../src/lab/profile.ts';

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

test('the built code imports only node, its own chunks, ssh2 and typescript: the other packages are bundled in', (t) => {
  const outside = new Set<string>();
  for (const f of jsFiles(join(repo, 'dist'))) {
    for (const m of readFileSync(f, 'utf8').matchAll(/(?:^|[;\s])(?:import|export)\b[^'"`;]*?\bfrom\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm)) {
      const spec = m[1] ?? m[2]!;
      if (!spec.startsWith('.') && !spec.startsWith('node:') && !builtinModules.includes(spec)) outside.add(spec);
    }
  }
  t.deepEqual([...outside].sort(), ['ssh2', 'typescript']);
});

test('the built lab boot program boots a node as the sources do', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'passthru-built-boot-'));
  try {
    const nodeDir = join(dir, 'pve1');
    initNode(nodeDir, loadProfile(MAIN_PROFILES[0]!), { name: 'pve1', address: '127.0.0.1', profile: MAIN_PROFILES[0]!, cluster: null, labDir: dir });
    const r = spawnSync(process.execPath, [join(repo, 'dist/lab/boot-cli.js'), nodeDir], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    t.is(r.status, 0, r.stderr);
    const built = readFileSync(join(nodeDir, 'gen/proc/cmdline'), 'utf8');
    const { result } = bootNode(nodeDir);
    t.regex(r.stdout, new RegExp(`booted ${result.kernelRelease.replace(/\./g, '\\.')} boot_id=`));
    t.is(built, result.cmdline + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the installed CLI keeps the roles it loaded (XDG_CACHE_HOME/passthru/roles) and reads them back: the same answer, also with the cache off', (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'passthru-cli-cache-'));
  t.teardown(() => rmSync(cache, { recursive: true, force: true }));
  const validate = (env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [join(repo, 'bin/passthru.js'), 'validate', join(repo, 'playbooks/gpu-passthrough.yaml'), '-i', join(repo, 'inventory.example.yaml')], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: cache, XDG_CACHE_HOME: cache, ...env },
    });
  const first = validate();
  t.is(first.status, 0, first.stderr);
  const kept = readdirSync(join(cache, 'passthru', 'roles'));
  t.is(kept.filter((n) => n.endsWith('.json')).length, 7, 'the seven shipped roles');
  // An entry is written by renaming a new file over it: one read back keeps its inode.
  const inodes = () => kept.map((n) => statSync(join(cache, 'passthru', 'roles', n)).ino);
  const before = inodes();
  const second = validate();
  t.is(second.stdout, first.stdout);
  t.deepEqual(readdirSync(join(cache, 'passthru', 'roles')), kept, 'the same entries');
  t.deepEqual(inodes(), before, 'read back, not written again');
  const off = validate({ PASSTHRU_ROLE_CACHE: 'off' });
  t.is(off.stdout, first.stdout);
});
