import test from 'ava';
import { ConfigError, withoutStacks } from '../../src/model/errors.ts';
import { taskVars } from '../../src/engine/vars.ts';
import type { Host, Inventory, Stage } from '../../src/model/types.ts';
import { checkTemplateSyntax, evaluate, hasTemplate, render, TemplateError, truthy } from '../../src/template/index.ts';

const pos = { file: 'roles/x/tasks.yaml', line: 7, col: 11 };
const vars = {
  n: 3,
  s: 'Hello',
  l: [3, 1, 2, 3],
  m: { a: 1, b: 'two' },
  empty: [],
  nothing: null,
  facts: {
    cpuVendor: 'intel',
    kernel: '6.8.12-4-pve',
    gpus: [
      { vendor: 'nvidia', id: '10de:2204', audio: '10de:1aef', vga: true },
      { vendor: 'amd', id: '1002:73bf', audio: '1002:ab28', vga: false },
    ],
  },
  groups: { gpu: ['pve1', 'pve2'], all: ['pve1', 'pve2', 'pve3'] },
  inventory_hostname: 'pve2',
};
const ev = (e: string) => evaluate(e, vars, pos);

test('literals', (t) => {
  t.is(ev('42'), 42);
  t.is(ev('1.5'), 1.5);
  t.is(ev('0x1f'), 31);
  t.is(ev("'it\\'s'"), "it's");
  t.is(ev('"a\\nb"'), 'a\nb');
  t.is(ev('true'), true);
  t.is(ev('False'), false);
  t.is(ev('null'), null);
  t.is(ev('None'), null);
  t.deepEqual(ev("[1, 'a', [true]]"), [1, 'a', [true]]);
  t.deepEqual(ev("{'k': 1, other: [2]}"), { k: 1, other: [2] });
  t.deepEqual(ev('[]'), []);
});

test('precedence and operators', (t) => {
  t.is(ev('1 + 2 * 3'), 7);
  t.is(ev('(1 + 2) * 3'), 9);
  t.is(ev('2 ** 3 ** 2'), 512);
  t.is(ev('-2 ** 2'), -4);
  t.is(ev('7 // 2'), 3);
  t.is(ev('-7 % 3'), 2);
  t.is(ev('7 / 2'), 3.5);
  t.is(ev("'a' ~ 1 ~ true"), 'a1true');
  t.is(ev("'a' + 'b'"), 'ab');
  t.deepEqual(ev('[1] + [2]'), [1, 2]);
  t.is(ev('n > 2 and n < 4'), true);
  t.is(ev('not n == 3'), false);
  t.is(ev('not false and false'), false); // (not false) and false
  t.is(ev('false or n'), 3); // returns the operand, as Python
  t.is(ev('1 < 2 == true'), true);
  t.is(ev("'x' if n > 5 else 'y' if n > 2 else 'z'"), 'y');
  t.is(ev("'x' if n > 5"), null);
  t.is(ev('n + l | length'), 7); // filters bind tighter than +
  t.is(ev("'ell' in s"), true);
  t.is(ev('5 not in l'), true);
  t.is(ev("'a' in m"), true);
  t.is(ev("inventory_hostname in groups['gpu']"), true);
  t.is(ev('m.b'), 'two');
  t.is(ev("m['a']"), 1);
  t.is(ev('l[-1]'), 3);
  t.is(ev('facts.gpus[1].vendor'), 'amd');
  t.is(ev('facts.gpus.0.id'), '10de:2204');
});

test('filters', (t) => {
  t.is(ev("l | join(',')"), '3,1,2,3');
  t.is(ev('l | length'), 4);
  t.is(ev('m | length'), 2);
  t.is(ev('s | lower'), 'hello');
  t.is(ev('s | upper'), 'HELLO');
  t.is(ev("'42' | int + 1"), 43);
  t.is(ev("'x' | int"), 0);
  t.is(ev('n | string'), '3');
  t.is(ev("'yes' | bool"), true);
  t.is(ev("'off' | bool"), false);
  t.deepEqual(ev('l | unique'), [3, 1, 2]);
  t.deepEqual(ev('l | sort'), [1, 2, 3, 3]);
  t.deepEqual(ev('l | sort(reverse=true) | first'), 3);
  t.is(ev('l | last'), 3);
  t.deepEqual(ev("facts.gpus | map(attribute='vendor') | list"), ['nvidia', 'amd']);
  t.deepEqual(ev("['A', 'B'] | map('lower')"), ['a', 'b']);
  t.deepEqual(ev("facts.gpus | selectattr('vga') | map(attribute='id')"), ['10de:2204']);
  t.deepEqual(ev("facts.gpus | selectattr('vendor', 'equalto', 'amd') | map(attribute='id')"), ['1002:73bf']);
  t.deepEqual(ev("facts.gpus | rejectattr('vga') | map(attribute='vendor')"), ['amd']);
  t.deepEqual(ev("l | select('gt', 2)"), [3, 3]);
  t.deepEqual(ev("l | reject('equalto', 3)"), [1, 2]);
  t.deepEqual(ev("'ab' | list"), ['a', 'b']);
  t.deepEqual(ev('m | keys'), ['a', 'b']);
  t.deepEqual(ev('m | values'), [1, 'two']);
  t.is(ev('l | min'), 1);
  t.is(ev('l | max'), 3);
  t.is(ev('l | sum'), 9);
  t.is(ev("s | replace('l', 'L')"), 'HeLLo');
  t.deepEqual(ev("facts.kernel | split('-')"), ['6.8.12', '4', 'pve']);
  t.is(ev("'  x ' | trim"), 'x');
  t.is(ev("facts.kernel | regex_search('^[0-9]+\\.[0-9]+')"), '6.8');
  t.is(ev("facts.kernel | regex_search('bsd')"), null);
  t.deepEqual(ev('[1, 2] | union([2, 3])'), [1, 2, 3]);
  t.deepEqual(ev('[1, 2, 3] | difference([2])'), [1, 3]);
  t.deepEqual(ev('[1, 2, 3] | intersect([3, 2, 9])'), [2, 3]);
  t.deepEqual(
    ev("facts.gpus | map(attribute='id') | union(facts.gpus | map(attribute='audio')) | join(',')"),
    '10de:2204,1002:73bf,10de:1aef,1002:ab28',
  );
  t.is(ev("s | ansible.builtin.lower"), 'hello');
});

test('default and is defined do not throw on undefined', (t) => {
  t.is(ev("missing | default('d')"), 'd');
  t.is(ev("missing.deep.path | default('d')"), 'd');
  t.is(ev("m.zzz | default(5)"), 5);
  t.is(ev('m.a | default(5)'), 1);
  t.is(ev("nothing | default('d')"), null); // defined as null: kept
  t.is(ev("'' | default('d', true)"), 'd');
  t.is(ev('missing is defined'), false);
  t.is(ev('missing is not defined'), true);
  t.is(ev('missing is undefined'), true);
  t.is(ev('m.a is defined'), true);
  t.is(ev('facts.gpus[5] is defined'), false);
  t.is(ev('missing is defined and missing > 1'), false); // short-circuit
  t.is(ev('nothing is none'), true);
  t.is(ev('s is string'), true);
  t.is(ev('n is number'), true);
  t.is(ev("s is not number"), true);
  t.is(ev("facts.kernel is version('6.1', '>=')"), true);
  t.is(ev("3 is in(l)"), true);
});

test('undefined variable: error at the position with the closest name', (t) => {
  const e = t.throws(() => ev('fact.cpuVendor'), { instanceOf: TemplateError });
  t.true(e instanceof ConfigError);
  t.is(e!.format(), "roles/x/tasks.yaml:7:11: 'fact.cpuVendor' is undefined: undefined variable 'fact' in `fact.cpuVendor`\n  hint: did you mean 'facts'?");
  const e1 = t.throws(() => ev('fact'), { instanceOf: TemplateError });
  t.is(e1!.format(), "roles/x/tasks.yaml:7:11: undefined variable 'fact' in `fact`\n  hint: did you mean 'facts'?");
  const e2 = t.throws(() => ev('zzzzzzzz'), { instanceOf: TemplateError });
  t.regex(e2!.hint!, /default/);
});

test('attribute errors name the full path', (t) => {
  let e = t.throws(() => ev('facts.gpus[0].vendr'), { instanceOf: TemplateError });
  t.is(e!.message, "'facts.gpus[0].vendr' is undefined: 'facts.gpus[0]' has no attribute 'vendr' in `facts.gpus[0].vendr`");
  t.is(e!.hint, "did you mean 'facts.gpus[0].vendor'?");
  e = t.throws(() => ev('nothing.x'), { instanceOf: TemplateError });
  t.regex(e!.message, /'nothing.x' is undefined: 'nothing' is null/);
  e = t.throws(() => ev('l[9]'), { instanceOf: TemplateError });
  t.regex(e!.message, /index 9 is out of range/);
  t.deepEqual(e!.pos, pos);
});

test('type errors and bad filter input are TemplateErrors', (t) => {
  t.throws(() => ev("'a' + 1"), { instanceOf: TemplateError, message: /cannot add string and number/ });
  t.throws(() => ev('n / 0'), { instanceOf: TemplateError, message: /division by zero/ });
  t.throws(() => ev("'a' < 1"), { instanceOf: TemplateError, message: /cannot compare/ });
  t.throws(() => ev('l | lower'), { instanceOf: TemplateError, message: /lower expects a string, got list/ });
  t.throws(() => ev("s | regex_search('(')"), { instanceOf: TemplateError, message: /invalid regular expression/ });
});

test('syntax errors with hints', (t) => {
  let e = t.throws(() => ev('n +'), { instanceOf: TemplateError });
  t.is(e!.format(), 'roles/x/tasks.yaml:7:11: template syntax error: unexpected end of expression at column 4 of `n +`');
  e = t.throws(() => ev('l | jion'), { instanceOf: TemplateError });
  t.is(e!.hint, "did you mean 'join'?");
  e = t.throws(() => ev('x is defind'), { instanceOf: TemplateError });
  t.is(e!.hint, "did you mean 'defined'?");
  t.throws(() => ev("'open"), { message: /unterminated string/ });
  t.throws(() => ev('a b'), { message: /unexpected 'b' after the end/ });
  t.throws(() => ev('foo(1)'), { message: /unknown function 'foo'/ });
  t.throws(() => ev(''), { message: /empty expression/ });
  t.throws(() => checkTemplateSyntax('x {{ n ', pos), { instanceOf: TemplateError, message: /not closed/ });
  t.throws(() => checkTemplateSyntax('{{ n | nope }}', pos), { instanceOf: TemplateError, message: /unknown filter 'nope'/ });
  t.notThrows(() => checkTemplateSyntax('{{ undefined_var | lower }} and {{ {"a": 1} }}', pos));
});

test('render: one expression keeps its type, mixed text stringifies, deep', (t) => {
  t.deepEqual(render('{{ l }}', vars, pos), [3, 1, 2, 3]);
  t.is(render('{{ n * 2 }}', vars, pos), 6);
  t.is(render('{{ missing is defined }}', vars, pos), false);
  t.is(render('n={{ n }} s={{ s }}', vars, pos), 'n=3 s=Hello');
  t.is(render('l={{ l }} m={{ m }} z={{ nothing }} b={{ true }}', vars, pos), 'l=[3,1,2,3] m={"a":1,"b":"two"} z= b=true');
  t.is(render('{{ n }}{{ n }}', vars, pos), '33');
  t.deepEqual(render('{{ {"a": {"b": 1}} }}', vars, pos), { a: { b: 1 } });
  t.deepEqual(
    render({ path: '/etc/{{ s | lower }}.conf', ids: "{{ facts.gpus | map(attribute='id') }}", keep: 5, list: ['{{ n }}', 'x'] }, vars, pos),
    { path: '/etc/hello.conf', ids: ['10de:2204', '1002:73bf'], keep: 5, list: [3, 'x'] },
  );
  t.is(render('no template', vars, pos), 'no template');
  t.throws(() => render({ a: ['{{ nope }}'] }, vars, pos), { instanceOf: TemplateError, message: /undefined variable 'nope'/ });
});

test('evaluate accepts a condition wrapped in braces', (t) => {
  t.is(evaluate('{{ n == 3 }}', vars, pos), true);
});

test('truthy and hasTemplate', (t) => {
  for (const v of [false, null, undefined, 0, '', [], {}]) t.false(truthy(v), JSON.stringify(v));
  for (const v of [true, 1, -1, 'x', [0], { a: 0 }]) t.true(truthy(v), JSON.stringify(v));
  t.true(hasTemplate('a {{ b }}'));
  t.false(hasTemplate('a { b }'));
});

test('methods', (t) => {
  t.is(ev("s.startswith('He')"), true);
  t.deepEqual(ev("facts.kernel.split('.')"), ['6', '8', '12-4-pve']);
  t.is(ev("','.join(['a', 'b'])"), 'a,b');
  t.is(ev("m.get('zz', 7)"), 7);
  t.throws(() => ev('s.nope()'), { message: /unknown method 'nope'/ });
});

test('the "did you mean" search of an undefined variable runs only when its hint is read, once', (t) => {
  let keysRead = 0;
  const vars = new Proxy({ facts: {}, factz: 1 } as Record<string, unknown>, {
    ownKeys: (o) => {
      keysRead++;
      return Reflect.ownKeys(o);
    },
  });
  const e = t.throws(() => render('{{ fact }}', vars, { file: 'x.yaml', line: 1, col: 1 }), { instanceOf: TemplateError });
  t.is(keysRead, 0, 'no search while the error is only thrown and caught');
  t.is(e!.hint, "did you mean 'facts'?");
  t.is(e!.hint, "did you mean 'facts'?");
  t.is(keysRead, 1);
  const plain = new ConfigError('m', undefined, () => 'made on demand');
  t.is(plain.format(), 'm\n  hint: made on demand');
});

test('errors raised while trying, under withoutStacks, carry no stack; the limit is back afterwards, also after a throw', (t) => {
  const before = Error.stackTraceLimit;
  const e = withoutStacks(() => {
    try {
      render('{{ fact }}', {}, { file: 'x.yaml', line: 1, col: 1 });
    } catch (err) {
      return err as TemplateError;
    }
  });
  t.true(e instanceof TemplateError);
  t.is(e!.stack!.split('\n').filter((l) => /^\s+at /.test(l)).length, 0, 'no frames');
  t.regex(e!.message, /undefined variable 'fact'/);
  t.is(Error.stackTraceLimit, before);
  t.throws(() => withoutStacks(() => render('{{ fact }}', {}, { file: 'x.yaml', line: 1, col: 1 })), { instanceOf: TemplateError });
  t.is(Error.stackTraceLimit, before);
  const outside = t.throws(() => render('{{ fact }}', {}, { file: 'x.yaml', line: 1, col: 1 }));
  t.true(outside!.stack!.split('\n').some((l) => /^\s+at /.test(l)), 'errors outside it keep their stacks');
});

test('a variable whose template fails carries the hint of its error', (t) => {
  const vars = taskVars({
    stage: { name: 's', vars: {} } as unknown as Stage,
    host: { name: 'h', vars: { greeting: '{{ fact }}', facts_seen: 1 }, groups: ['all'] } as unknown as Host,
    inventory: { hosts: new Map(), groups: new Map() } as unknown as Inventory,
    facts: null,
    registered: {},
    extra: {},
    check: true,
  });
  const e = t.throws(() => render('{{ greeting }}', vars, { file: 'x.yaml', line: 1, col: 1 }), { instanceOf: TemplateError });
  t.regex(e!.message, /^in variable 'greeting': undefined variable 'fact'/);
  t.is(e!.hint, "did you mean 'facts'?");
});
