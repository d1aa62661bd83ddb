/**
 * The host variable tables of README.md and inventory.example.yaml are generated from the roles'
 * argument specs (scripts/gen-docs.ts): this fails when a committed table differs from the
 * generated one, i.e. when a spec changed without `npm run gen-docs`.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateDocs, ROOT, variables } from '../../scripts/gen-docs.ts';

test('README.md and inventory.example.yaml list exactly the variables of the argument specs', async (t) => {
  const { readme, inventory } = await generateDocs();
  t.is(readFileSync(join(ROOT, 'README.md'), 'utf8'), readme, 'README.md is out of date: run npm run gen-docs');
  t.is(readFileSync(join(ROOT, 'inventory.example.yaml'), 'utf8'), inventory, 'inventory.example.yaml is out of date: run npm run gen-docs');
  for (const v of await variables()) {
    t.true(readme.includes(`| \`${v.name}\` |`), `${v.name} in README.md`);
    t.true(inventory.includes(`#   ${v.name} (`), `${v.name} in inventory.example.yaml`);
  }
});
