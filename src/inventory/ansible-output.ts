/**
 * What `ansible-inventory` prints for an AnsibleInventory: `--list`, `--host NAME` and
 * `--graph`, with JSON written the way Python's json.dumps writes it.
 */
import type { Vars } from '../model/types.ts';
import type { AnsibleInventory } from './ansible-data.ts';

/** Variables ansible-inventory leaves out of its output. */
const INTERNAL = new Set(['ansible_diff_mode', 'ansible_config_file', 'ansible_facts', 'ansible_forks', 'ansible_inventory_sources', 'ansible_limit', 'ansible_playbook_python', 'ansible_run_tags', 'ansible_skip_tags', 'ansible_verbosity', 'ansible_version', 'inventory_dir', 'inventory_file', 'inventory_hostname', 'inventory_hostname_short', 'groups', 'group_names', 'omit', 'playbook_dir']);

function publicVars(v: Vars): Vars {
  const out: Vars = {};
  for (const [k, x] of Object.entries(v)) if (!INTERNAL.has(k)) out[k] = x;
  return out;
}

/** `ansible-inventory --host NAME`. */
export async function hostJson(inv: AnsibleInventory, name: string): Promise<Vars> {
  return publicVars((await inv.hostVars(name)).vars);
}

/** `ansible-inventory --list`: `_meta.hostvars` and each non-empty group's hosts and children. */
export async function listJson(inv: AnsibleInventory): Promise<Record<string, unknown>> {
  const hostvars: Record<string, Vars> = {};
  for (const h of inv.hosts.keys()) {
    const v = await hostJson(inv, h);
    if (Object.keys(v).length) hostvars[h] = v; // as ansible-inventory: hosts without variables are left out
  }
  const out: Record<string, unknown> = { _meta: { hostvars } };
  const seen = new Set<string>();
  const format = (name: string): void => {
    const g = inv.groups.get(name)!;
    const entry: Record<string, unknown> = {};
    if (name !== 'all' && g.hosts.length) entry.hosts = [...g.hosts];
    if (g.children.length) entry.children = [...g.children];
    for (const c of g.children) {
      if (!seen.has(c)) {
        seen.add(c);
        format(c);
      }
    }
    if (Object.keys(entry).length) out[name] = entry;
  };
  format('all');
  return out;
}

/** `ansible-inventory --graph [GROUP]`. */
export function graphText(inv: AnsibleInventory, group = 'all'): string {
  const lines: string[] = [];
  const name = (s: string, depth: number) => (depth ? '  |'.repeat(depth) + '--' + s : s);
  const walk = (g: string, depth: number): void => {
    lines.push(name(`@${g}:`, depth));
    const grp = inv.groups.get(g)!;
    for (const c of grp.children) walk(c, depth + 1);
    if (g !== 'all') for (const h of grp.hosts) lines.push(name(h, depth + 1));
  };
  walk(group, 0);
  return lines.join('\n');
}

/** JSON as Python's json.dumps(sort_keys=True, indent=4, ensure_ascii=False) writes it. */
export function pyJson(v: unknown, indent = ''): string {
  const next = indent + '    ';
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return `[\n${v.map((x) => next + pyJson(x, next)).join(',\n')}\n${indent}]`;
  }
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    if (!keys.length) return '{}';
    return `{\n${keys.map((k) => `${next}${JSON.stringify(k)}: ${pyJson((v as Record<string, unknown>)[k], next)}`).join(',\n')}\n${indent}}`;
  }
  if (v === undefined) return 'null';
  return JSON.stringify(v);
}
