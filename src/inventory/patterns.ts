/**
 * Host patterns, as in Ansible: for `--limit` and a stage's `hosts:`.
 *
 * - `name` a host or a group (a group means all its hosts, children included); `all` or `*`
 * - wildcards `*` and `?` on host and group names: `pve*`, `gpu-?`; `~regex` for a regex
 * - union `a:b` or `a,b`; intersection `a:&b`; exclusion `a:!b`. Unions are taken first, then
 *   intersections, then exclusions (Ansible's order); a pattern of only `!x` starts from `all`.
 * - `@file`: one host per line (relative to the current directory; blank lines and `#`
 *   comments ignored), e.g. the failed hosts written by a previous run.
 *
 * The result is in inventory order without duplicates. A part that matches nothing is an
 * error with the closest host or group name as hint.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../model/errors.ts';
import { suggest as closest } from '../load/yaml.ts';
import type { Inventory, Pos } from '../model/types.ts';

function globToRegex(glob: string): RegExp {
  const src = glob.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${src}$`);
}

function hostsOfGroup(inv: Inventory, group: string): string[] {
  return [...inv.hosts.values()].filter((h) => h.groups.includes(group)).map((h) => h.name);
}

function noMatch(inv: Inventory, term: string, pattern: string, pos?: Pos): ConfigError {
  const near = closest(term.replace(/^[~@]/, ''), [...inv.hosts.keys(), ...inv.groups.keys()]);
  const whole = term === pattern ? '' : ` (in '${pattern}')`;
  return new ConfigError(
    `host pattern '${term}'${whole} matches no host or group in ${inv.file}`,
    pos,
    near ? `did you mean '${near}'?` : `known groups: ${[...inv.groups.keys()].join(', ')}`,
  );
}

function readHostFile(inv: Inventory, path: string, pos?: Pos): string[] {
  let text: string;
  try {
    text = readFileSync(resolve(process.cwd(), path), 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read host list @${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, pos, 'the path is relative to the current directory');
  }
  const out: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    if (inv.hosts.has(line)) out.push(line);
    else if (inv.groups.has(line)) out.push(...hostsOfGroup(inv, line));
    else {
      const near = closest(line, [...inv.hosts.keys()]);
      throw new ConfigError(
        `unknown host '${line}' in host list`,
        { file: path, line: i + 1, col: raw.indexOf(line) + 1 },
        near ? `did you mean '${near}'?` : `it is not in the inventory ${inv.file}`,
      );
    }
  });
  return out;
}

/** Hosts matched by one term (no operators). */
function term(inv: Inventory, t: string, pattern: string, pos?: Pos): string[] {
  if (t === 'all' || t === '*') return [...inv.hosts.keys()];
  if (t.startsWith('@')) {
    const hosts = readHostFile(inv, t.slice(1), pos);
    if (!hosts.length) throw new ConfigError(`host list '${t.slice(1)}' names no host`, pos, 'the file is empty or holds only comments');
    return hosts;
  }
  let re: RegExp | undefined;
  if (t.startsWith('~')) {
    try {
      re = new RegExp(t.slice(1));
    } catch (e) {
      throw new ConfigError(`invalid regular expression in host pattern '${t}': ${(e as Error).message}`, pos);
    }
  } else if (/[*?]/.test(t)) re = globToRegex(t);
  const out = new Set<string>();
  if (re) {
    for (const h of inv.hosts.keys()) if (re.test(h)) out.add(h);
    for (const g of inv.groups.keys()) if (re.test(g)) for (const h of hostsOfGroup(inv, g)) out.add(h);
  } else {
    if (inv.hosts.has(t)) out.add(t);
    if (inv.groups.has(t)) {
      for (const h of hostsOfGroup(inv, t)) out.add(h);
      return [...out]; // a known group may be empty: that is not a typo
    }
  }
  if (!out.size) throw noMatch(inv, t, pattern, pos);
  return [...out];
}

/**
 * Host names matched by `pattern`, in inventory order. Throws ConfigError (at `pos`) when a
 * term names no host or group, and, unless `allowEmpty`, when the whole pattern matches no host
 * (a stage whose pattern is a known but empty group is skipped by the engine instead).
 */
export function matchHosts(inv: Inventory, pattern: string, pos?: Pos, opts: { allowEmpty?: boolean } = {}): string[] {
  const parts = pattern
    .split(/[,:]/)
    .map((p) => p.trim())
    .filter(Boolean);
  if (!parts.length) throw new ConfigError('empty host pattern', pos, "use 'all' for every host");
  const unions: string[] = [];
  const inters: string[] = [];
  const excls: string[] = [];
  for (const p of parts) {
    if (p.startsWith('&')) inters.push(p.slice(1).trim());
    else if (p.startsWith('!')) excls.push(p.slice(1).trim());
    else unions.push(p);
  }
  if (!unions.length) unions.push('all');
  let set = new Set<string>();
  for (const u of unions) for (const h of term(inv, u, pattern, pos)) set.add(h);
  for (const i of inters) {
    const s = new Set(term(inv, i, pattern, pos));
    set = new Set([...set].filter((h) => s.has(h)));
  }
  for (const e of excls) for (const h of term(inv, e, pattern, pos)) set.delete(h);
  const out = [...inv.hosts.keys()].filter((h) => set.has(h));
  if (!out.length && !opts.allowEmpty) {
    throw new ConfigError(
      `host pattern '${pattern}' matches no host`,
      pos,
      inters.length || excls.length ? 'each part matches hosts, but the intersections (&) and exclusions (!) leave none' : undefined,
    );
  }
  return out;
}
