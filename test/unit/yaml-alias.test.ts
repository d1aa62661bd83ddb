import test from 'ava';
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { loadInventory } from '../../src/inventory/index.ts';

test('anchors and aliases resolve to their values, nested ones too', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'passthru-alias-'));
  const file = path.join(dir, 'inventory.yaml');
  await writeFile(
    file,
    `all:
  hosts:
    a: { passthrough_slots: &slots ["01:00"], hugepages: &hp { size: 2M, count: 8 } }
    b: { passthrough_slots: *slots, hugepages: *hp, nested: { s: *slots, l: [*hp] } }
`,
  );
  const inv = await loadInventory(file);
  const b = inv.hosts.get('b')!.vars;
  t.deepEqual(b.passthrough_slots, ['01:00']);
  t.deepEqual(b.hugepages, { size: '2M', count: 8 });
  t.deepEqual(b.nested, { s: ['01:00'], l: [{ size: '2M', count: 8 }] });
});

test('an alias takes the last anchor of its name before it; an alias within an aliased value expands too; the same as yaml.toJS', async (t) => {
  const { parseYaml, toJS } = await import('../../src/load/yaml.ts');
  const { parse } = await import('yaml');
  const text = `a: &x 1
b: *x
c: &x { k: 0, l: &y [2] }
d: *x
e: &x 3
f: [*x, *y]
g: '*x is text'
h: &z { q: *y }
i: [*z]
`;
  const yf = parseYaml(text, 'anchors.yaml');
  const ours = toJS(yf.root);
  t.deepEqual(ours, { a: 1, b: 1, c: { k: 0, l: [2] }, d: { k: 0, l: [2] }, e: 3, f: [3, [2]], g: '*x is text', h: { q: [2] }, i: [{ q: [2] }] });
  t.deepEqual(ours, parse(text), 'what the library itself resolves');
  // Without a `*`, nothing to expand; anchors alone are plain values.
  t.deepEqual(toJS(parseYaml('a: &x 1\nb: [&y 2]\n', 'plain.yaml').root), { a: 1, b: [2] });
});
