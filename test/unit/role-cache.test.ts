/**
 * Roles kept as JSON between runs (src/load/role-cache.ts): a kept role is the role as parsed,
 * positions included; any change to a role's files is a miss; a role with errors, or with values
 * JSON would change, is not kept; an entry another user could have written is not read.
 */
import test from 'ava';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { checkHostVars } from '../../src/load/hostvars.ts';
import { loadPlaybook } from '../../src/load/playbook.ts';
import { positionsOf } from '../../src/load/positions.ts';
import { installedRoleCache, keepRole, MAX_ENTRIES, roleKey, type RoleCache } from '../../src/load/role-cache.ts';
import { ConfigError, ConfigErrors } from '../../src/model/errors.ts';
import type { Inventory } from '../../src/model/types.ts';
import { modules } from '../../src/modules/index.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** A copy of the shipped playbook and roles, and an empty cache of its own. */
function project(): { pb: string; roles: string; cache: RoleCache } {
  const dir = mkdtempSync(join(tmpdir(), 'passthru-rolecache-'));
  cpSync(join(REPO, 'roles'), join(dir, 'roles'), { recursive: true });
  mkdirSync(join(dir, 'playbooks'));
  cpSync(join(REPO, 'playbooks', 'gpu-passthrough.yaml'), join(dir, 'playbooks', 'gpu-passthrough.yaml'));
  return { pb: join(dir, 'playbooks', 'gpu-passthrough.yaml'), roles: join(dir, 'roles'), cache: { dir: join(dir, 'cache'), codeId: 'test' } };
}

const entries = (c: RoleCache) => {
  try {
    return readdirSync(c.dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
};

test('a kept role is the role as parsed: tasks, argument spec, and the positions errors point at', async (t) => {
  const p = project();
  const parsed = await loadPlaybook(p.pb, { modules, cache: p.cache });
  t.is(entries(p.cache).length, parsed.roles.size, 'every shipped role kept');
  const kept = await loadPlaybook(p.pb, { modules, cache: p.cache });
  const plain = await loadPlaybook(p.pb, { modules });
  for (const [name, role] of plain.roles) {
    t.true(isDeepStrictEqual(kept.roles.get(name), role), name);
    t.true(isDeepStrictEqual(parsed.roles.get(name), role), name);
    t.deepEqual([...positionsOf(kept.roles.get(name)!.defaults)], [...positionsOf(role.defaults)], `${name}: positions of the defaults`);
  }
  t.not(kept.roles.get('vfio'), plain.roles.get('vfio'), 'read from the cache, not the same objects');
  // An error found later, in a value of the defaults, points at the same place either way.
  const bad = (pb: typeof kept) => {
    const hugepages = pb.roles.get('hugepages')!;
    hugepages.defaults.hugepages = { size: '3M', count: 1 };
    const inv = { file: 'inv', hosts: new Map([['n', { name: 'n', vars: {}, groups: ['all', 'proxmox'], conn: {} }]]), groups: new Map() } as unknown as Inventory;
    const e = t.throws(() => checkHostVars(pb, inv, {}, [{ stage: pb.stages[0]!, hosts: ['n'] }]));
    return e instanceof ConfigErrors ? e.errors.map((x) => x.format()) : [(e as ConfigError).format()];
  };
  t.deepEqual(bad(kept), bad(plain));
});

test('a change to any file of a role, one added or removed, is another key; an unchanged role the same key', async (t) => {
  const p = project();
  const dir = join(p.roles, 'vfio');
  const k0 = roleKey(p.cache, dir)!;
  t.is(roleKey(p.cache, dir), k0);
  t.not(roleKey({ ...p.cache, codeId: 'another build' }, dir), k0, 'another build of passthru');
  const tasks = join(dir, 'tasks.yaml');
  const text = readFileSync(tasks, 'utf8');
  writeFileSync(tasks, text.replace('vfio', 'VFIO')); // same size
  utimesSync(tasks, 0, 0);
  t.not(roleKey(p.cache, dir), k0, 'an edit of the same size (and an old date) is seen');
  writeFileSync(tasks, text);
  t.is(roleKey(p.cache, dir), k0);
  writeFileSync(join(dir, 'handlers.yml'), '[]\n');
  t.not(roleKey(p.cache, dir), k0, 'a file added');
  rmSync(join(dir, 'handlers.yml'));
  t.is(roleKey(p.cache, dir), k0);

  // Through the loader: the edited role is parsed again, not taken from the cache.
  await loadPlaybook(p.pb, { modules, cache: p.cache });
  writeFileSync(tasks, text.replace('- name: ', '- name: Edited - '));
  const again = await loadPlaybook(p.pb, { modules, cache: p.cache });
  t.true(again.roles.get('vfio')!.tasks[0]!.name.startsWith('Edited - '));
});

test('a role with an error is not kept, and reports the same error every run', async (t) => {
  const p = project();
  const tasks = join(p.roles, 'hugepages', 'tasks.yaml');
  writeFileSync(tasks, `${readFileSync(tasks, 'utf8')}\n- name: broken\n  no_such_module: {}\n`);
  const first = await t.throwsAsync(loadPlaybook(p.pb, { modules, cache: p.cache }));
  const second = await t.throwsAsync(loadPlaybook(p.pb, { modules, cache: p.cache }));
  t.is(first!.message, second!.message);
  t.regex(first!.message, /no_such_module/);
  t.false(readdirSync(p.cache.dir).some((n) => n.endsWith('.json') && readFileSync(join(p.cache.dir, n), 'utf8').includes('"name":"hugepages"')));
});

test('a role whose values JSON would change (a NaN) is parsed every time, not kept', async (t) => {
  const p = project();
  writeFileSync(join(p.roles, 'vfio', 'defaults.yaml'), `${readFileSync(join(p.roles, 'vfio', 'defaults.yaml'), 'utf8')}\nvfio_odd: .nan\n`);
  const pb = await loadPlaybook(p.pb, { modules, cache: p.cache });
  t.true(Number.isNaN(pb.roles.get('vfio')!.defaults.vfio_odd));
  t.is(entries(p.cache).length, pb.roles.size - 1);
  t.false(entries(p.cache).some((n) => readFileSync(join(p.cache.dir, n), 'utf8').includes('"name":"vfio"')));
});

test('an entry that another user could have written is not read; a folder open to others neither', async (t) => {
  const p = project();
  await loadPlaybook(p.pb, { modules, cache: p.cache });
  const file = entries(p.cache).map((n) => join(p.cache.dir, n)).find((f) => readFileSync(f, 'utf8').includes('"name":"vfio"'))!;
  // The kept role, changed as an attacker would: a task that is not in the role's files.
  const plant = (mode: number) => {
    writeFileSync(file, readFileSync(file, 'utf8').replace(/"tasks":\[\{"name":"[^"]*"/, '"tasks":[{"name":"Planted"'));
    chmodSync(file, mode);
  };
  const first = async () => (await loadPlaybook(p.pb, { modules, cache: p.cache })).roles.get('vfio')!.tasks[0]!.name;
  plant(0o666);
  t.not(await first(), 'Planted', 'group/other-writable entry ignored (and replaced by the role as parsed)');
  t.false(readFileSync(file, 'utf8').includes('Planted'));
  plant(0o600);
  chmodSync(p.cache.dir, 0o777);
  t.not(await first(), 'Planted', 'entry in a folder others may write ignored');
  plant(0o600);
  chmodSync(p.cache.dir, 0o700);
  t.is(await first(), 'Planted', "this user's own entry is read (the checks above are what keep others out)");
});

test(`the oldest entries go beyond ${MAX_ENTRIES}; the cache of the sources is off; PASSTHRU_ROLE_CACHE=off turns it off`, async (t) => {
  const p = project();
  mkdirSync(p.cache.dir, { recursive: true });
  for (let i = 0; i < MAX_ENTRIES + 5; i++) {
    const f = join(p.cache.dir, `old${String(i).padStart(3, '0')}.json`);
    writeFileSync(f, '{}');
    utimesSync(f, 1000 + i, 1000 + i);
  }
  const pb = await loadPlaybook(p.pb, { modules });
  keepRole(p.cache, 'newest', pb.roles.get('vfio')!);
  const left = entries(p.cache);
  t.is(left.length, MAX_ENTRIES);
  t.true(left.includes('newest.json'));
  t.false(left.includes('old000.json'));
  t.true(left.includes(`old${String(MAX_ENTRIES + 4).padStart(3, '0')}.json`));
  // These tests run the TypeScript sources (which change without a build): no cache for them.
  t.is(installedRoleCache({ HOME: '/nonexistent' }), undefined);
  t.is(installedRoleCache({ PASSTHRU_ROLE_CACHE: 'off' }), undefined);
});
