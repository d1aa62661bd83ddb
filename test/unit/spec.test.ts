/**
 * The shared argument-spec checker (src/spec/check.ts): cross-argument rules as data, the two
 * modes (module arguments vs host variables), deferred templates, and `passthru modules` text
 * written from the specs.
 */
import test from 'ava';
import { ConfigError } from '../../src/model/errors.ts';
import { checkArgs, checkModuleArgs, checkValue } from '../../src/spec/check.ts';
import type { ArgumentSpec, InferArgs } from '../../src/spec/types.ts';
import { moduleText } from '../../src/modules/listing.ts';
import { modules } from '../../src/modules/index.ts';

const spec = {
  options: {
    a: { type: 'str', description: 'a' },
    b: { type: 'str', description: 'b' },
    state: { type: 'str', default: 'present', choices: ['present', 'absent'], description: 'state' },
    n: { type: 'int', min: 1, description: 'n' },
    items: { type: 'list', elements: 'str', default: [], description: 'items' },
  },
  mutually_exclusive: [['a', 'b']],
  required_if: [['state', 'absent', ['a', 'b'], true]],
} as const satisfies ArgumentSpec;

test('InferArgs: required or defaulted options are present, others optional, choices narrow', (t) => {
  const args: InferArgs<typeof spec> = { state: 'absent', items: ['x'] };
  const s: 'present' | 'absent' = args.state;
  t.is(s, 'absent');
  t.is(args.a, undefined);
  // The type is what this test is about: a value outside the choices, or a missing defaulted
  // option's wrong type, must not type-check (npm run typecheck fails otherwise).
  // @ts-expect-error 'gone' is not one of the choices
  const bad: InferArgs<typeof spec> = { state: 'gone', items: [] };
  t.truthy(bad);
});

test('cross-argument rules are data: mutually_exclusive and required_if', (t) => {
  const where = { module: 'm' };
  t.deepEqual(checkArgs(spec, { a: 'x' }, where), { a: 'x', state: 'present', items: [] });
  const e1 = t.throws(() => checkArgs(spec, { a: 'x', b: 'y' }, where), { instanceOf: ConfigError });
  t.is(e1!.message, "module 'm': a and b are mutually exclusive");
  const e2 = t.throws(() => checkArgs(spec, { state: 'absent' }, where), { instanceOf: ConfigError });
  t.is(e2!.message, "module 'm': state: absent needs a or b");
  // a default does not count as given
  t.deepEqual(checkArgs(spec, { state: 'absent', b: 'y' }, where).b, 'y');
});

test('args mode: a scalar is a one-item list, null means the default, templates wait for rendering', (t) => {
  t.deepEqual(checkArgs(spec, { items: 'a,b', state: null }, { module: 'm' }), { items: ['a,b'], state: 'present' });
  const r = checkModuleArgs('m', spec, { n: '{{ count }}', state: '{{ s }}', a: 'x', b: 'y' }, { deferTemplates: true });
  t.deepEqual(r.problems.map((p) => p.msg), ["module 'm': a and b are mutually exclusive"]);
  t.is(r.args.n, '{{ count }}');
  const bad = checkModuleArgs('m', spec, { n: 0 }).problems.map((p) => p.msg);
  t.deepEqual(bad, ["module 'm': argument 'n' must be between 1 and ∞, found 0"]);
});

test('vars mode: a string is split at commas for a list, null is refused unless the default is null', (t) => {
  t.deepEqual(checkValue({ type: 'list', elements: 'int', description: 'x' }, '1, 2', 'x'), []);
  t.regex(checkValue({ type: 'list', elements: 'int', description: 'x' }, '1,a', 'x')[0]!.msg, /'x\.1' must be a whole number/);
  t.regex(checkValue({ type: 'str', default: 'a', description: 'x' }, null, 'x')[0]!.msg, /'x' must be a string, found nothing/);
  t.deepEqual(checkValue({ type: 'str', default: null, description: 'x' }, null, 'x'), []);
});

test('one-line strings unless multiline', (t) => {
  const one = { options: { s: { type: 'str', description: 's' } } } as const satisfies ArgumentSpec;
  const many = { options: { s: { type: 'str', multiline: true, description: 's' } } } as const satisfies ArgumentSpec;
  t.regex(checkModuleArgs('m', one, { s: 'a\nb' }).problems[0]!.msg, /one line of printable text, found a newline/);
  t.deepEqual(checkModuleArgs('m', many, { s: 'a\nb\n'.repeat(3000) }).problems, []);
});

test('passthru modules text comes from the specs: arguments, aliases, rules', (t) => {
  const line = moduleText(modules.get('line')!);
  t.regex(line, /^line\n/);
  t.regex(line, /\n {4}path: string \(required\) \(aliases: dest, destfile, name\) {2}Absolute path/);
  t.regex(line, /rule: at most one of: insertafter, insertbefore/);
  t.regex(line, /rule: state: absent needs line or regexp/);
  t.notRegex(moduleText(modules.get('command')!), /_raw_params/);
});

test('a whole number with a pattern: Proxmox guest ids are 0 (none) or 100-999999999', (t) => {
  const id = { type: 'int', min: 0, max: 999999999, pattern: '^(0|[1-9][0-9]{2,8})$', description: 'x' } as const;
  t.deepEqual(checkValue(id, 0, 'lxc_id'), []);
  t.deepEqual(checkValue(id, 100, 'lxc_id'), []);
  t.deepEqual(checkValue(id, '205', 'lxc_id'), []);
  t.regex(checkValue(id, 99, 'lxc_id')[0]!.msg, /'lxc_id' must match \^\(0\|\[1-9\]\[0-9\]\{2,8\}\)\$, found 99/);
  t.regex(checkValue(id, -1, 'lxc_id')[0]!.msg, /must be between 0 and 999999999/);
});
