import test from 'ava';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { modules } from '../../src/modules/index.ts';
import { planWith, type FakeHost } from './modules-fake.ts';

interface Case {
  name: string;
  module: string;
  args: Record<string, unknown>;
  host: FakeHost;
  expect: {
    noop?: string;
    fail?: { msg: string; hint?: string };
    change?: { msg?: string; after: Record<string, string>; actions: unknown[] };
  };
}

const cases = parse(readFileSync(new URL('../fixtures/modules/cases.yaml', import.meta.url), 'utf8')) as Case[];

for (const c of cases) {
  test(`${c.module}: ${c.name}`, async (t) => {
    const mod = modules.get(c.module);
    if (!mod) return t.fail(`no module ${c.module}`);
    const plan = await planWith(mod, c.args, c.host ?? {});
    if (c.expect.noop !== undefined) {
      t.is(plan.kind, 'noop', JSON.stringify(plan));
      if (plan.kind === 'noop') t.true(plan.reason.includes(c.expect.noop), `reason: ${plan.reason}`);
    } else if (c.expect.fail) {
      t.is(plan.kind, 'fail', JSON.stringify(plan));
      if (plan.kind === 'fail') {
        t.true(plan.msg.includes(c.expect.fail.msg), `msg: ${plan.msg}`);
        if (c.expect.fail.hint) t.true((plan.hint ?? '').includes(c.expect.fail.hint), `hint: ${plan.hint}`);
      }
    } else if (c.expect.change) {
      t.is(plan.kind, 'change', JSON.stringify(plan));
      if (plan.kind !== 'change') return;
      if (c.expect.change.msg) t.true(plan.msg.includes(c.expect.change.msg), `msg: ${plan.msg}`);
      t.deepEqual(Object.fromEntries(plan.diff.map((d) => [d.path, d.after])), c.expect.change.after);
      t.deepEqual(plan.actions, c.expect.change.actions);
    } else {
      t.fail('case has no expectation');
    }
  });
}

test('every module is in the fixtures', (t) => {
  const covered = new Set(cases.map((c) => c.module));
  const generic = ['file', 'line', 'command', 'apt', 'sysctl', 'service', 'reboot'];
  t.deepEqual(generic.filter((m) => !covered.has(m)), []);
});
