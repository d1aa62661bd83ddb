/**
 * Plan + apply a list of tasks through the local transport on a temp dir, then again:
 * the second run is all no-ops and reads the host in exactly one exec; check mode changes
 * no byte of the tree.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalConnection } from '../../src/transport/local.ts';
import { HostObserver } from '../../src/modules/observer.ts';
import { applyActions } from '../../src/modules/apply.ts';
import { modules } from '../../src/modules/index.ts';
import type { Plan } from '../../src/modules/contract.ts';
import type { Facts } from '../../src/facts/types.ts';
import type { Connection } from '../../src/transport/connection.ts';

type TaskSpec = [module: string, args: Record<string, unknown>];

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-apply-'));
  await writeFile(join(dir, 'b.conf'), '# keep me  \nx=1\ny=2\n\tindented\n');
  await writeFile(join(dir, 'c.old'), 'to delete\n');
  await writeFile(join(dir, 'd.mode'), 'mode only\n');
  await chmod(join(dir, 'd.mode'), 0o644);
  await writeFile(join(dir, 'sysctl.conf'), '# sysctl\nkernel.a = 1\n');
  const tasks: TaskSpec[] = [
    ['file', { path: join(dir, 'a.txt'), content: 'alpha\n', mode: '0600' }],
    ['line', { path: join(dir, 'e.list'), line: 'one', create: true }],
    ['line', { path: join(dir, 'e.list'), line: 'two' }], // plans against the file planned just above
    ['line', { path: join(dir, 'b.conf'), regexp: '^y=', line: 'y=3', backup: true }],
    ['line', { path: join(dir, 'b.conf'), regexp: '^x=', state: 'absent' }],
    ['file', { path: join(dir, 'c.old'), state: 'absent' }],
    ['file', { path: join(dir, 'd.mode'), mode: 640 }], // as YAML reads `mode: 0640`
    ['sysctl', { name: 'vm.nr_hugepages', value: 16, file: join(dir, 'sysctl.conf'), reload: false }],
    ['command', { cmd: 'echo ran >> log', chdir: dir, creates: 'log' }],
  ];
  return { dir, tasks };
}

async function run(conn: Connection, tasks: TaskSpec[], check: boolean) {
  const observer = new HostObserver(conn);
  const facts = {} as Facts;
  const withDefaults = tasks.map(([name, args]) => {
    const mod = modules.get(name)!;
    const full: Record<string, unknown> = { ...args };
    for (const [k, spec] of Object.entries(mod.spec.options)) if (full[k] === undefined && spec.default !== undefined) full[k] = spec.default;
    return { mod, args: full };
  });
  await observer.prefetch(withDefaults.flatMap(({ mod, args }) => mod.reads?.(args, facts) ?? []));
  const plans: Plan[] = [];
  const backups: string[] = [];
  for (const { mod, args } of withDefaults) {
    const plan = await mod.plan(args, { host: conn.host, facts, vars: {}, observe: observer, check });
    plans.push(plan);
    if (plan.kind === 'change') {
      if (!check) backups.push(...(await applyActions(conn, plan.actions)).backups);
      observer.record(plan.actions);
    }
  }
  return { plans, observer, backups };
}

async function hashTree(dir: string): Promise<string> {
  const h = createHash('sha256');
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const p = join(dir, name);
    const s = await stat(p);
    h.update(`${name}\0${s.mode}\0`);
    if (s.isFile()) h.update(await readFile(p));
  }
  return h.digest('hex');
}

test('apply, then a second run is all no-ops in one round trip', async (t) => {
  const { dir, tasks } = await setup();
  const conn = new LocalConnection('local');

  const first = await run(conn, tasks, false);
  t.deepEqual(
    first.plans.map((p) => p.kind),
    tasks.map(() => 'change'),
    JSON.stringify(first.plans.filter((p) => p.kind !== 'change')),
  );
  t.is(await readFile(join(dir, 'a.txt'), 'utf8'), 'alpha\n');
  t.is(await readFile(join(dir, 'e.list'), 'utf8'), 'one\ntwo\n');
  t.is((await stat(join(dir, 'a.txt'))).mode & 0o777, 0o600);
  t.is(await readFile(join(dir, 'b.conf'), 'utf8'), '# keep me  \ny=3\n\tindented\n');
  await t.throwsAsync(stat(join(dir, 'c.old')));
  t.is((await stat(join(dir, 'd.mode'))).mode & 0o777, 0o640);
  t.is(await readFile(join(dir, 'sysctl.conf'), 'utf8'), '# sysctl\nkernel.a = 1\nvm.nr_hugepages = 16\n');
  t.is(await readFile(join(dir, 'log'), 'utf8'), 'ran\n');
  t.is(first.backups.length, 1);
  t.is(await readFile(first.backups[0]!, 'utf8'), '# keep me  \nx=1\ny=2\n\tindented\n');

  const before = await hashTree(dir);
  const second = await run(conn, tasks, false);
  const notNoop = second.plans.filter((p) => p.kind !== 'noop');
  t.deepEqual(notNoop, []);
  t.is(second.observer.roundTrips, 1);
  t.is(await hashTree(dir), before);
  t.deepEqual(
    second.plans.map((p) => (p.kind === 'noop' ? p.reason : '')),
    [
      'content and mode already as wanted',
      'line already present (line 1)',
      'line already present (line 2)',
      'line 2 already as wanted',
      'no line matches /^x=/',
      `${join(dir, 'c.old')} already absent`,
      'mode already as wanted',
      `vm.nr_hugepages = 16 already in ${join(dir, 'sysctl.conf')}`,
      `${join(dir, 'log')} exists (creates)`,
    ],
  );
  await rm(dir, { recursive: true });
});

test('check mode plans the same changes and changes 0 bytes', async (t) => {
  const { dir, tasks } = await setup();
  const conn = new LocalConnection('local');
  const before = await hashTree(dir);
  const checked = await run(conn, tasks, true);
  t.is(checked.plans.filter((p) => p.kind === 'change').length, tasks.length);
  t.is(checked.observer.roundTrips, 1);
  // The second line task saw the file the first one would create (it does not exist).
  const p = checked.plans[2]!;
  t.deepEqual(p.kind === 'change' ? p.diff : p, [{ path: join(dir, 'e.list'), before: 'one\n', after: 'one\ntwo\n' }]);
  t.is(await hashTree(dir), before);
  await rm(dir, { recursive: true });
});
