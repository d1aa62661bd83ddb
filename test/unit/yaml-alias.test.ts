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
