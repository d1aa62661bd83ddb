/**
 * ansible-core as a test oracle. `ensureAnsible()` installs it when missing (scripts/install-deps.sh
 * oracle, Debian's ansible-core) and fails when it still cannot be found: the differential tests
 * never skip. `runOracle()` runs one Python process (test/helpers/ansible_oracle.py, with the
 * interpreter ansible-inventory itself runs on) for a whole batch of cases.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

let python: string | undefined;

/** The Python interpreter that runs ansible-core, installing ansible-core first when missing. */
export function ensureAnsible(): string {
  if (python) return python;
  if (!which('ansible-inventory')) {
    execFileSync('sh', [here('../../scripts/install-deps.sh'), '--as', 'install-oracle-deps', 'oracle'], { stdio: 'inherit' });
  }
  const bin = which('ansible-inventory');
  if (!bin) throw new Error('ansible-inventory is still missing after scripts/install-deps.sh oracle');
  // the interpreter ansible-inventory runs on is the one that can import ansible
  const shebang = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(readFileSync(bin, 'utf8').split('\n')[0] ?? '');
  python = shebang ? (shebang[1]!.endsWith('/env') ? shebang[2]! : shebang[1]!) : 'python3';
  const v = spawnSync(python, ['-c', 'import ansible.release as r; print(r.__version__)'], { encoding: 'utf8' });
  if (v.status !== 0) throw new Error(`${python} cannot import ansible: ${v.stderr}`);
  return python;
}

export interface OracleInventoryCase {
  id: string;
  sources: string[];
  hosts?: string[];
  graph?: boolean;
}
export interface OracleTemplateCase {
  id: string;
  template: string;
  vars?: Record<string, unknown>;
}
export interface OracleAnswer {
  version: string;
  inventory: Record<string, { list?: Record<string, unknown>; hosts?: Record<string, unknown>; graph?: string; warnings?: string; error?: string }>;
  templates: Record<string, { value?: unknown; type?: string; error?: string }>;
}

/** One ansible-core process for the whole batch. */
export function runOracle(req: { inventory?: OracleInventoryCase[]; templates?: OracleTemplateCase[] }): OracleAnswer {
  const py = ensureAnsible();
  const r = spawnSync(py, [here('./ansible_oracle.py')], {
    input: JSON.stringify(req),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    // native Jinja2: `{{ expr }}` keeps the expression's type, as passthru's templates do
    env: { ...process.env, ANSIBLE_JINJA2_NATIVE: '1', ANSIBLE_NOCOLOR: '1', ANSIBLE_DEPRECATION_WARNINGS: '0', ANSIBLE_LOCALHOST_WARNING: '0', ANSIBLE_INVENTORY_UNPARSED_WARNING: '0' },
    timeout: 240_000,
  });
  if (r.status !== 0) throw new Error(`the ansible-core oracle failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as OracleAnswer;
}
