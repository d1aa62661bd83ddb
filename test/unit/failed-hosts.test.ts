import test from 'ava';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFailedHosts, defaultFailedHostsPath } from '../../src/engine/failed-hosts.ts';

test('defaultFailedHostsPath is .passthru/failed-hosts under cwd', (t) => {
  t.is(defaultFailedHostsPath(join('/', 'x', 'y')), join('/', 'x', 'y', '.passthru', 'failed-hosts'));
});

test('writeFailedHosts: header with --limit @path, one host per line, dir created, no temp left', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-fh-'));
  try {
    const path = defaultFailedHostsPath(dir);
    await writeFailedHosts(path, ['pve2', 'pve5']);
    const text = await readFile(path, 'utf8');
    const lines = text.split('\n');
    t.true(lines.filter((l) => l.startsWith('#')).some((l) => l.includes(`--limit @${path}`)));
    t.deepEqual(lines.filter((l) => l && !l.startsWith('#')), ['pve2', 'pve5']);
    t.true(text.endsWith('\n'));
    t.deepEqual(await readdir(join(dir, '.passthru')), ['failed-hosts']);

    await writeFailedHosts(path, []);
    const again = await readFile(path, 'utf8');
    t.deepEqual(again.split('\n').filter((l) => l && !l.startsWith('#')), [], 'an empty run clears the old list');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
