/**
 * The host variable tables of README.md and inventory.example.yaml are generated from the roles'
 * argument specs (scripts/gen-docs.ts): this fails when a committed table differs from the
 * generated one, i.e. when a spec changed without `npm run gen-docs`; the same for the editor
 * schemas in schemas/.
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

test('schemas/*.json are the ones generated from the specs', async (t) => {
  const { schemas } = await generateDocs();
  t.deepEqual(Object.keys(schemas).sort(), ['argument_specs.json', 'gates.json', 'inventory.json', 'playbook.json', 'tasks.json']);
  for (const [f, text] of Object.entries(schemas)) {
    t.is(readFileSync(join(ROOT, 'schemas', f), 'utf8'), text, `schemas/${f} is out of date: run npm run gen-docs`);
  }
});
