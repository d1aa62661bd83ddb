import test from 'ava';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExtraVars, loadPlaybook } from '../../src/load/playbook.ts';
import { checkArgs } from '../../src/spec/check.ts';
import { ConfigError, ConfigErrors } from '../../src/model/errors.ts';
import type { Module } from '../../src/modules/contract.ts';

const here = dirname(fileURLToPath(import.meta.url));
const fx = (...p: string[]): string => join(here, '..', 'fixtures', 'config', 'playbook', ...p);

const fileModule: Module = {
  name: 'file',
  doc: 'Writes a file.',
  spec: {
    options: {
      path: { type: 'str', required: true, aliases: ['dest', 'name'], description: 'Path of the file.' },
      content: { type: 'str', multiline: true, description: 'Content.' },
      lines: { type: 'list', elements: 'str', description: 'Lines.' },
      mode: { type: 'str', description: 'Octal mode.' },
      state: { type: 'str', choices: ['present', 'absent'], default: 'present', description: 'present or absent.' },
      backup: { type: 'bool', default: false, description: 'Keep a backup.' },
    },
  },
  validate: (a) => (a.content !== undefined && a.lines !== undefined ? 'content and lines are exclusive' : undefined),
  plan: async () => ({ kind: 'noop', reason: 'fake' }),
};
const assertModule: Module = {
  name: 'assert',
  doc: 'Checks conditions.',
  readOnly: true,
  spec: {
    options: {
      that: { type: 'list', elements: 'str', required: true, description: 'Conditions.' },
      msg: { type: 'str', description: 'Message.' },
    },
  },
  plan: async () => ({ kind: 'noop', reason: 'fake' }),
};
const modules = new Map<string, Module>([
  ['file', fileModule],
  ['assert', assertModule],
]);

test('a good playbook loads to the expected model', async (t) => {
  const path = fx('good', 'site.yaml');
  const pb = await loadPlaybook(path, { modules });
  t.is(pb.stages.length, 2);
  const [s1, s2] = pb.stages;
  t.like(s1, {
    name: 'Host kernel and modules',
    hosts: 'proxmox',
    serial: [1, '50%'],
    maxFailPercentage: 0,
    reboot: 'if-needed',
    rebootTimeoutS: 600,
    guestPolicy: 'refuse',
    haMaintenance: false,
    maxDownPerCluster: 1,
    anyErrorsFatal: false,
    vars: { stage_var: 1 },
    pos: { file: path, line: 1, col: 3 },
  });
  t.deepEqual(
    s1!.roles.map((r) => ({ name: r.name, tags: r.tags, vars: r.vars })),
    [
      { name: 'iommu', tags: ['kernel'], vars: {} },
      { name: 'vfio', tags: ['modules', 'kernel'], vars: { vfio_disable_vga: true } },
    ],
  );
  t.deepEqual(s1!.roles[1]!.pos, { file: path, line: 11, col: 13 });
  t.like(s2, {
    hosts: 'all:!solo',
    reboot: 'never',
    rebootTimeoutS: 300,
    guestPolicy: 'shutdown',
    haMaintenance: true,
    maxDownPerCluster: 2,
    anyErrorsFatal: true,
    serial: undefined,
  });

  t.deepEqual([...pb.roles.keys()], ['iommu', 'vfio']);
  const iommu = pb.roles.get('iommu')!;
  t.deepEqual(iommu.defaults, { iommu_mode: 'pt', my_lines: ['a', 'b'] });
  const tasksFile = join(iommu.dir, 'tasks.yaml');
  t.deepEqual(iommu.tasks[0], {
    name: 'Write the IOMMU config',
    module: 'file',
    // alias dest → path; YAML 0644 kept as written; defaults applied
    args: { path: '/etc/iommu.conf', content: 'mode={{ iommu_mode }}\n', mode: '0644', state: 'present', backup: false },
    when: "facts.cpuVendor == 'intel'",
    tags: ['kernel', 'iommu'],
    notify: ['refresh bootloader'],
    register: 'iommu_result',
    role: 'iommu',
    pos: { file: tasksFile, line: 1, col: 3 },
  });
  // a templated list argument is kept for run time; 'yes' coerced to true
  t.deepEqual(iommu.tasks[1]!.args, { path: '/etc/lines', lines: '{{ my_lines }}', backup: true, state: 'present' });
  t.deepEqual(iommu.tasks[1]!.notify, ['refresh bootloader']);
  t.is(iommu.tasks[1]!.pos.line, 11);
  t.deepEqual(
    iommu.handlers.map((h) => [h.name, h.module, h.args.path]),
    [['refresh bootloader', 'file', '/boot/refreshed']],
  );
  t.deepEqual(iommu.gates.map((g) => [g.name, g.module, g.args]), [['The IOMMU is on', 'assert', { that: ['facts.iommu'], msg: 'IOMMU is off' }]]);
  const vfio = pb.roles.get('vfio')!;
  t.deepEqual(vfio.tasks[0]!.name, 'file'); // unnamed task: named after its module
  t.deepEqual(vfio.tasks[0]!.args.lines, ['vfio']); // a scalar given for a list
  t.deepEqual(vfio.tasks[0]!.tags, []);
});

test('role directories: opts.roleDirs first, then beside the playbook', async (t) => {
  const pb = await loadPlaybook(fx('good', 'site.yaml'), { modules, roleDirs: [fx('override')] });
  t.is(pb.roles.get('iommu')!.dir, fx('override', 'iommu'));
  t.is(pb.roles.get('iommu')!.tasks[0]!.name, 'from the override dir');
  t.is(pb.roles.get('vfio')!.dir, fx('good', 'roles', 'vfio'));
});

test('extra vars: key=value scalars, inline maps, files; later wins', (t) => {
  const vars = loadExtraVars(
    ['a=1 b=true c=text', "d='two words'", '{"e": [1, 2], "a": 2}', `@${join('..', 'good', 'roles', 'iommu', 'defaults.yaml')}`, 'c=0x10', 'f='],
    fx('bad'),
  );
  t.deepEqual(vars, { a: 2, b: true, c: 16, d: 'two words', e: [1, 2], iommu_mode: 'pt', my_lines: ['a', 'b'], f: '' });
  t.throws(() => loadExtraVars(['novalue'], '.'), { instanceOf: ConfigError, message: /not key=value/ });
  t.throws(() => loadExtraVars(['@missing.yaml'], '.'), { instanceOf: ConfigError, message: /cannot read extra vars file missing.yaml/ });
  const e = t.throws(() => loadExtraVars(['{"a": 1'], '.'), { instanceOf: ConfigError });
  t.regex(e!.format(), /^-e:1:\d+: invalid YAML/);
});

/** Load a bad fixture, expect ConfigError(s); return them. */
async function errorsOf(t: import('ava').ExecutionContext, name: string): Promise<ConfigError[]> {
  const e = await loadPlaybook(fx('bad', name), { modules }).then(
    () => undefined,
    (err: unknown) => err,
  );
  if (e instanceof ConfigErrors) return e.errors;
  t.true(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
  return e instanceof ConfigError ? [e] : [];
}

const role = (r: string, f = 'tasks.yaml'): string => fx('bad', 'roles', r, f);

const cases: Array<{ title: string; file: string; at: string; msg: RegExp; hint?: RegExp }> = [
  {
    title: 'malformed YAML',
    file: 'malformed.yaml',
    at: `${fx('bad', 'malformed.yaml')}:4:1`,
    msg: /invalid YAML: Flow sequence/,
    hint: /indentation|brackets/,
  },
  {
    title: 'unknown stage key',
    file: 'unknown-stage-key.yaml',
    at: `${fx('bad', 'unknown-stage-key.yaml')}:3:3`,
    msg: /unknown key 'rebot' in a stage/,
    hint: /did you mean 'reboot'\?/,
  },
  {
    title: 'unknown task key',
    file: 'unknown-task-key.yaml',
    at: `${role('badtaskkey')}:3:3`,
    msg: /unknown module or task keyword 'tag'/,
    hint: /did you mean 'tags'\?/,
  },
  {
    title: 'unknown module',
    file: 'unknown-module.yaml',
    at: `${role('badmodule')}:2:3`,
    msg: /unknown module or task keyword 'fiel'/,
    hint: /did you mean 'file'\?/,
  },
  {
    title: 'unknown role',
    file: 'unknown-role.yaml',
    at: `${fx('bad', 'unknown-role.yaml')}:4:7`,
    msg: /unknown role 'okk'/,
    hint: /did you mean 'ok'\?/,
  },
  {
    title: 'bad argument type',
    file: 'bad-arg-type.yaml',
    at: `${role('badargtype')}:4:13`,
    msg: /module 'file': argument 'backup' must be true or false, found the string "maybe"/,
    hint: /backup/i,
  },
  {
    title: 'missing required argument',
    file: 'missing-arg.yaml',
    at: `${role('missingarg')}:2:3`,
    msg: /module 'file' needs argument 'path'/,
    hint: /Path of the file/,
  },
  {
    title: 'unknown notify target',
    file: 'unknown-notify.yaml',
    at: `${role('badnotify')}:4:7`,
    msg: /notify target 'restart food' is not a handler of role 'badnotify'/,
    hint: /did you mean 'restart foo'\?/,
  },
  {
    title: 'bad when syntax',
    file: 'bad-when.yaml',
    at: `${role('badwhen')}:3:9`,
    msg: /template syntax error: unexpected end of expression/,
  },
  {
    title: 'gate with a module that changes the host',
    file: 'bad-gate.yaml',
    at: `${role('badgate', 'gates.yaml')}:2:3`,
    msg: /gate uses module 'file', which changes the host/,
    hint: /read-only modules: assert/,
  },
  {
    title: 'two module keys in one task',
    file: 'two-modules.yaml',
    at: `${role('twomodules')}:3:3`,
    msg: /has 2 module keys \(file, assert\)/,
    hint: /one task per module/,
  },
];

for (const c of cases) {
  test(`bad input: ${c.title}`, async (t) => {
    const errs = await errorsOf(t, c.file);
    t.is(errs.length, 1, errs.map((e) => e.format()).join('\n'));
    const f = errs[0]!.format();
    t.true(f.startsWith(`${c.at}: `), f);
    t.regex(errs[0]!.message, c.msg);
    if (c.hint) t.regex(errs[0]!.hint ?? '', c.hint);
  });
}

test('all errors of a load are reported together', async (t) => {
  const errs = await errorsOf(t, 'many.yaml');
  const file = fx('bad', 'many.yaml');
  t.deepEqual(
    errs.map((e) => e.format().split(': ')[0]),
    [`${file}:3:11`, `${file}:4:11`, `${file}:7:7`, role('badmodule') + ':2:3', `${file}:9:7`],
  );
  t.regex(errs[0]!.message, /'serial'/);
  t.regex(errs[1]!.message, /'reboot' must be one of never, if-needed, always/);
  t.is(errs[2]!.hint, "did you mean 'vars'?");
  t.regex(errs[4]!.message, /unknown role 'nosuchrole'/);
});

test('checkArgs normalises aliases, applies defaults, reports types and unknown names', (t) => {
  const where = { pos: { file: 'r/tasks.yaml', line: 5, col: 3 }, module: 'file' };
  t.deepEqual(checkArgs(fileModule.spec, { dest: '/a', lines: 'one', backup: 'no' }, where), {
    path: '/a',
    lines: ['one'],
    backup: false,
    state: 'present',
  });
  const e1 = t.throws(() => checkArgs(fileModule.spec, { path: '/a', stat: 'absent' }, where), { instanceOf: ConfigError });
  t.is(e1!.format(), "r/tasks.yaml:5:3: module 'file' has no argument 'stat'\n  hint: did you mean 'state'?");
  const e2 = t.throws(() => checkArgs(fileModule.spec, { path: ['/a'], state: 'gone' }, where), { instanceOf: ConfigErrors });
  t.deepEqual(
    e2!.errors.map((e) => e.message),
    ["module 'file': argument 'path' must be a string, found a list", "module 'file': argument 'state' must be one of present, absent; found \"gone\""],
  );
  // after templating, a templated string is just a string: no load-time leniency
  const e3 = t.throws(() => checkArgs(assertModule.spec, { that: [{ a: 1 }] }, { ...where, module: 'assert' }), { instanceOf: ConfigError });
  t.regex(e3!.message, /item 1 of 'that' must be a string/);
});
