/**
 * Differential tests: every inventory under test/fixtures/ansible-inventory/ (its `_sources.txt`
 * lists the -i sources, relative to the case) is read by ansible-core (`ansible-inventory
 * --list`, `--host`, `--graph`, through its own CLI class, one Python process for the batch) and
 * by `passthru inventory`; hosts, groups, variables (with their types) and the graph must be equal.
 * ansible-core is installed when missing; these tests fail, never skip, without it.
 */
import test from 'ava';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main, type Io } from '../../src/cli/main.ts';
import { runOracle, type OracleAnswer, type OracleInventoryCase } from '../helpers/ansible.ts';

const here = dirname(fileURLToPath(import.meta.url));
const corpus = join(here, '..', 'fixtures', 'ansible-inventory');

interface Case extends OracleInventoryCase {
  dir: string;
}

function sourcesOf(dir: string): string[] {
  return readFileSync(join(dir, '_sources.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => (l.includes(',') ? l : resolve(dir, l)));
}

const cases: Case[] = readdirSync(corpus)
  .filter((d) => existsSync(join(corpus, d, '_sources.txt')))
  .sort()
  .map((d) => ({ id: d, dir: join(corpus, d), sources: sourcesOf(join(corpus, d)), graph: true }));

/** Run the passthru CLI in-process; stdout, stderr and the exit code. */
export async function passthru(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false };
  const code = await main(args, io);
  return { code, out, err };
}

const iArgs = (c: Case) => c.sources.flatMap((s) => ['-i', s]);

let oracle: OracleAnswer;
const mine = new Map<string, Record<string, unknown>>();

test.before(async () => {
  // passthru first: its host names tell which --host outputs to ask the oracle for
  for (const c of cases) {
    const r = await passthru(['inventory', ...iArgs(c), '--list']);
    if (r.code !== 0) continue; // reported by the case's own test
    const list = JSON.parse(r.out) as { _meta: { hostvars: Record<string, unknown> } };
    mine.set(c.id, list);
    const hosts = Object.keys(list._meta.hostvars).sort();
    c.hosts = hosts.length <= 8 ? hosts : [hosts[0]!, hosts[hosts.length - 1]!];
  }
  oracle = runOracle({ inventory: cases.map(({ id, sources, hosts, graph }) => ({ id, sources, hosts, graph })) });
});

test('the corpus is not empty and the oracle is ansible-core', (t) => {
  t.true(cases.length >= 15, `${cases.length} cases`);
  t.regex(oracle.version, /^2\.\d+/);
});

for (const c of cases) {
  test(`ansible-inventory and passthru agree: ${c.id}`, async (t) => {
    const want = oracle.inventory[c.id]!;
    t.is(want.error, undefined, `ansible-core failed on the case: ${want.error}`);
    t.notRegex(want.warnings ?? '', /Unable to parse|Skipping|Failed to parse/, 'the oracle must read every source of the case');
    const list = await passthru(['inventory', ...iArgs(c), '--list']);
    t.is(list.code, 0, list.err);
    t.deepEqual(JSON.parse(list.out), want.list);
    t.deepEqual(mine.get(c.id), want.list);
    for (const h of c.hosts ?? []) {
      const r = await passthru(['inventory', ...iArgs(c), '--host', h]);
      t.is(r.code, 0, r.err);
      t.deepEqual(JSON.parse(r.out), want.hosts![h], `--host ${h}`);
    }
    const g = await passthru(['inventory', ...iArgs(c), '--graph']);
    t.is(g.code, 0, g.err);
    t.is(g.out, want.graph ?? "(no graph from the oracle)");
  });
}
