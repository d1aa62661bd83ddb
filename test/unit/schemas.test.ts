/**
 * The editor schemas (schemas/*.json, generated from the specs) accept every shipped YAML file,
 * each file names its schema in a `# yaml-language-server: $schema=...` line, and they refuse
 * what the checker refuses in the simple cases (an unknown module or argument, a bad choice).
 */
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { ROOT } from '../../scripts/gen-docs.ts';
import { validate } from '../helpers/json-schema.ts';

const schema = (name: string) => JSON.parse(readFileSync(join(ROOT, 'schemas', name), 'utf8')) as Record<string, unknown>;

/** Every shipped YAML file with the schema it must pass. */
function shipped(): Array<[string, string]> {
  const out: Array<[string, string]> = [['inventory.example.yaml', 'inventory.json']];
  for (const f of readdirSync(join(ROOT, 'playbooks'))) if (/\.ya?ml$/.test(f)) out.push([`playbooks/${f}`, 'playbook.json']);
  const byFile: Record<string, string> = { 'tasks.yaml': 'tasks.json', 'handlers.yaml': 'tasks.json', 'gates.yaml': 'gates.json', 'argument_specs.yaml': 'argument_specs.json' };
  for (const r of readdirSync(join(ROOT, 'roles'))) {
    for (const [f, s] of Object.entries(byFile)) if (existsSync(join(ROOT, 'roles', r, f))) out.push([`roles/${r}/${f}`, s]);
  }
  return out;
}

test('every shipped YAML file passes its schema and names it for the editor', (t) => {
  const files = shipped();
  t.true(files.length > 30, `${files.length} files`);
  for (const [file, name] of files) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const m = /^# yaml-language-server: \$schema=(\S+)$/m.exec(text);
    t.truthy(m, `${file} names its schema`);
    if (m) t.is(resolve(dirname(join(ROOT, file)), m[1]!), join(ROOT, 'schemas', name), `${file} names schemas/${name}`);
    t.deepEqual(validate(schema(name), parse(text)), [], file);
  }
});

test('the task schema refuses an unknown module, an unknown argument, a bad choice, two modules', (t) => {
  const tasks = schema('tasks.json');
  t.deepEqual(validate(tasks, [{ name: 'x', file: { path: '/etc/x', content: 'a\nb\n', mode: '0644' } }]), []);
  t.deepEqual(validate(tasks, [{ name: 'x', command: 'echo hi', register: 'out' }]), []);
  t.deepEqual(validate(tasks, [{ name: 'x', line: { dest: '/etc/x', line: '{{ v }}', backup: 'yes' } }]), []);
  t.not(validate(tasks, [{ name: 'x', nosuch: {} }]).length, 0);
  t.not(validate(tasks, [{ name: 'x', file: { path: '/etc/x', stat: 'absent' } }]).length, 0);
  t.not(validate(tasks, [{ name: 'x', file: { path: '/etc/x', state: 'gone' } }]).length, 0);
  t.not(validate(tasks, [{ name: 'x', file: { state: 'absent' } }]).length, 0, 'path is required');
  t.not(validate(tasks, [{ file: { path: '/a' }, command: 'true' }]).length, 0);
  t.not(validate(schema('gates.json'), [{ name: 'x', file: { path: '/a' } }]).length, 0, 'gates: read-only modules only');
});

test('the playbook and inventory schemas check stage keys and described host variables', (t) => {
  const pb = schema('playbook.json');
  t.deepEqual(validate(pb, [{ name: 's', hosts: 'all', roles: ['vfio', { role: 'iommu', vars: { intel_iommu_on: 'auto' } }] }]), []);
  t.not(validate(pb, [{ name: 's', hosts: 'all', roles: [], rebot: 'never' }]).length, 0);
  t.not(validate(pb, [{ hosts: 'all', roles: [], reboot: 'sometimes' }]).length, 0);
  const inv = schema('inventory.json');
  t.deepEqual(validate(inv, { all: { children: { pve: { hosts: { a: null, b: { vfio_ids: ['10de:2684'], anything: 1 } } } } } }), []);
  t.not(validate(inv, { all: { hosts: { a: { vfio_ids: ['not an id'] } } } }).length, 0);
  t.not(validate(inv, { all: { host: {} } }).length, 0);
});
