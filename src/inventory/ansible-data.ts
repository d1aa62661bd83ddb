/**
 * The inventory data of an Ansible-semantics inventory (ansible-core's InventoryData and the
 * `host_group_vars` vars plugin): groups, hosts, their inventory variables, the group_vars/ and
 * host_vars/ files beside each source, and a host's variables with Ansible's precedence.
 * The sources are read into it by ansible.ts (with ansible-yaml.ts and ansible-ini.ts); see
 * ansible.ts for the whole picture and the deliberate differences from Ansible.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import type { Pos, Vars } from '../model/types.ts';
import { ConfigError } from '../model/errors.ts';
import { Errors, isNull, mapEntries, toJS, type YamlFile, type YNode } from '../load/yaml.ts';
import { copyPositions, recordNodePositions } from '../load/positions.ts';
import { loadAnsibleYaml } from './yaml11.ts';

export interface VarLayer {
  vars: Vars;
  /** Where each variable was set (the value's position). */
  pos: Map<string, Pos>;
}

export interface AGroup extends VarLayer {
  name: string;
  hosts: string[];
  children: string[];
  parents: string[];
  priority: number;
  at?: Pos;
}

export interface AHost extends VarLayer {
  name: string;
  /** Groups the host was put in directly (not their ancestors). */
  groups: string[];
  at: Pos;
}

export const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const RANGE_HINT = 'a range is [begin:end] or [begin:end:step], e.g. pve[01:20] or node[a:f]; both ends have the same width';

export function newLayer(): VarLayer {
  return { vars: {}, pos: new Map() };
}

export function mergeInto(dst: VarLayer, src: VarLayer): void {
  for (const [k, v] of Object.entries(src.vars)) {
    dst.vars[k] = v;
    copyPositions(src.pos, dst.pos, k); // the value's position and those of everything inside it
  }
}

/** A name usable as a file name under group_vars/ or host_vars/ (Ansible skips names starting with `/`). */
function varFileName(name: string): boolean {
  return !name.startsWith('/') && !name.includes('\0');
}

/** `..` as a path segment would let a name read files outside the inventory. */
function escapesDir(name: string): boolean {
  return name.split(/[/\\]/).some((s) => s === '..');
}

/** InventoryData: the same operations, in the same order, as ansible-core's. */
export class AnsibleInventory {
  readonly groups = new Map<string, AGroup>();
  readonly hosts = new Map<string, AHost>();
  /** The sources, as given (absolute paths, or host lists), for group_vars/host_vars lookup. */
  readonly sources: string[] = [];
  readonly errs = new Errors();

  constructor() {
    this.addGroup('all');
    this.addGroup('ungrouped');
    this.addChild('all', 'ungrouped');
  }

  addGroup(name: string, at?: Pos): AGroup {
    let g = this.groups.get(name);
    if (!g) {
      if (escapesDir(name)) throw new ConfigError(`group name '${name}' holds a '..' path segment`, at, 'a group name is also a file name under group_vars/; use letters, digits, _ and -');
      if (name === '') throw new ConfigError('empty group name', at);
      g = { name, hosts: [], children: [], parents: [], priority: 1, at, ...newLayer() };
      this.groups.set(name, g);
    } else if (!g.at) g.at = at;
    return g;
  }

  addHost(name: string, group: string | undefined, port: number | undefined, at: Pos): AHost {
    if (name === '') throw new ConfigError('empty host name', at);
    let h = this.hosts.get(name);
    if (!h) {
      if (escapesDir(name)) throw new ConfigError(`host name '${name}' holds a '..' path segment`, at, 'a host name is also a file name under host_vars/; name the host plainly and put the address in ansible_host');
      h = { name, groups: [], at, ...newLayer() };
      this.hosts.set(name, h);
      if (port !== undefined) this.setVar(h, 'ansible_port', port, at);
    }
    if (group !== undefined) {
      const g = this.groups.get(group);
      if (!g) throw new ConfigError(`could not find group ${group} in the inventory`, at);
      if (!g.hosts.includes(name)) {
        g.hosts.push(name);
        if (!h.groups.includes(group)) h.groups.push(group);
      }
    }
    return h;
  }

  /** The ancestors of a group (not itself). */
  ancestors(name: string, acc = new Set<string>()): Set<string> {
    for (const p of this.groups.get(name)?.parents ?? []) {
      if (acc.has(p)) continue;
      acc.add(p);
      this.ancestors(p, acc);
    }
    return acc;
  }

  addChild(parent: string, child: string, at?: Pos): void {
    const p = this.groups.get(parent);
    if (!p) throw new ConfigError(`${parent} is not a known group`, at);
    const c = this.groups.get(child);
    if (!c) {
      if (this.hosts.has(child)) {
        this.addHost(child, parent, undefined, at ?? this.hosts.get(child)!.at);
        return;
      }
      throw new ConfigError(`${child} is not a known host nor group`, at);
    }
    if (parent === child) throw new ConfigError(`group '${child}' cannot be a child of itself`, at);
    if (p.children.includes(child)) return;
    if (this.ancestors(parent).has(child)) {
      throw new ConfigError(`adding group '${child}' as child to '${parent}' creates a recursive dependency loop`, at, 'remove one of the children entries that form the cycle');
    }
    p.children.push(child);
    if (!c.parents.includes(parent)) c.parents.push(parent);
  }

  setVar(e: AGroup | AHost, key: string, value: unknown, pos: Pos, node?: { yf: YamlFile; node: YNode }): void {
    if (!VAR_NAME.test(key)) {
      this.errs.add(`invalid variable name '${key}'`, pos, 'names use letters, digits and _ and do not start with a digit');
      return;
    }
    if ('priority' in e && key === 'ansible_group_priority') {
      const n = pyIntOf(value);
      if (n === undefined) this.errs.add(`ansible_group_priority must be an integer, found ${JSON.stringify(value)}`, pos);
      else e.priority = n;
      return;
    }
    e.vars[key] = value;
    copyPositions(new Map(), e.pos, key);
    e.pos.set(key, pos);
    if (node) recordNodePositions(node.yf, node.node, key, e.pos);
  }

  /** reconcile_inventory: parentless groups under `all`, groupless hosts in `ungrouped`. */
  reconcile(): void {
    for (const g of [...this.groups.values()]) {
      if (g.name !== 'all' && this.ancestors(g.name).size === 0) this.addChild('all', g.name);
    }
    const ungrouped = this.groups.get('ungrouped')!;
    for (const h of this.hosts.values()) {
      const direct = new Set(h.groups);
      if (direct.has('ungrouped')) {
        if ([...direct].some((g) => g !== 'all' && g !== 'ungrouped')) {
          ungrouped.hosts = ungrouped.hosts.filter((x) => x !== h.name);
          h.groups = h.groups.filter((x) => x !== 'ungrouped');
        }
      } else if (direct.size === 0 || (direct.size === 1 && direct.has('all'))) {
        this.addHost(h.name, 'ungrouped', undefined, h.at);
      }
    }
  }

  /** Depth of a group: the longest path from `all`. */
  depth(name: string, memo = new Map<string, number>()): number {
    const hit = memo.get(name);
    if (hit !== undefined) return hit;
    const ps = this.groups.get(name)!.parents;
    const d = ps.length ? Math.max(...ps.map((p) => this.depth(p, memo))) + 1 : 0;
    memo.set(name, d);
    return d;
  }

  /** Every group the host is in (directly or through a child group), `all` included, sorted as Ansible sorts them (depth, priority, name). */
  hostGroups(host: string): string[] {
    const h = this.hosts.get(host)!;
    const set = new Set<string>(['all']);
    for (const g of h.groups) {
      set.add(g);
      for (const a of this.ancestors(g)) set.add(a);
    }
    return this.sortGroups([...set]);
  }

  sortGroups(names: string[]): string[] {
    const memo = new Map<string, number>();
    const key = (n: string) => [this.depth(n, memo), this.groups.get(n)!.priority] as const;
    return names.sort((a, b) => {
      const [da, pa] = key(a);
      const [db, pb] = key(b);
      return da - db || pa - pb || (a < b ? -1 : a > b ? 1 : 0);
    });
  }

  // ------------------------------------------------------------ vars files (host_group_vars)

  private fileCache = new Map<string, VarLayer>();

  /** The group_vars or host_vars of `name` beside each source, merged in source order. */
  async varsFiles(kind: 'group_vars' | 'host_vars', name: string): Promise<VarLayer[]> {
    const out: VarLayer[] = [];
    if (!varFileName(name)) return out;
    for (const src of this.sources) {
      const base = sourceDir(src);
      if (base === undefined) continue;
      const layer = newLayer();
      for (const f of findVarsFiles(join(base, kind), name)) {
        let l = this.fileCache.get(f);
        if (!l) {
          l = await this.readVarsFile(f);
          this.fileCache.set(f, l);
        }
        mergeInto(layer, l);
      }
      out.push(layer);
    }
    return out;
  }

  private async readVarsFile(f: string): Promise<VarLayer> {
    const layer = newLayer();
    let yf: YamlFile;
    try {
      yf = await loadAnsibleYaml(f, this.errs);
    } catch (e) {
      this.errs.push(e);
      return layer;
    }
    if (isNull(yf.root)) return layer;
    for (const e of mapEntries(yf, yf.root, this.errs, `the variables file ${f}`) ?? []) {
      if (!VAR_NAME.test(e.key)) {
        this.errs.add(`invalid variable name '${e.key}' in ${f}`, e.keyPos, 'names use letters, digits and _ and do not start with a digit');
        continue;
      }
      layer.vars[e.key] = toJS(e.node);
      layer.pos.set(e.key, e.pos);
      recordNodePositions(yf, e.node, e.key, layer.pos);
    }
    return layer;
  }

  /** A group's own variables: its inventory vars, then its group_vars files. */
  async groupVars(name: string): Promise<VarLayer> {
    const g = this.groups.get(name)!;
    const layer = newLayer();
    mergeInto(layer, g);
    for (const l of await this.varsFiles('group_vars', name)) mergeInto(layer, l);
    return layer;
  }

  /** A host's variables with Ansible's precedence (what `ansible-inventory --host` prints). */
  async hostVars(name: string): Promise<VarLayer> {
    const h = this.hosts.get(name)!;
    const groups = this.hostGroups(name).filter((g) => g !== 'all');
    const out = newLayer();
    mergeInto(out, this.groups.get('all')!); // all_inventory
    for (const g of groups) mergeInto(out, this.groups.get(g)!); // groups_inventory
    const allFiles = await this.varsFiles('group_vars', 'all'); // all_plugins_inventory
    for (const l of allFiles) mergeInto(out, l);
    const perGroup = await Promise.all(groups.map((g) => this.varsFiles('group_vars', g)));
    for (let s = 0; s < this.sources.length; s++) {
      for (const layers of perGroup) if (layers[s]) mergeInto(out, layers[s]!); // groups_plugins_inventory
    }
    mergeInto(out, h); // the host's inventory vars
    for (const l of await this.varsFiles('host_vars', name)) mergeInto(out, l);
    return out;
  }
}

function pyIntOf(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return Math.trunc(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) return Number(v.trim());
  return undefined;
}

/** The directory whose group_vars/ and host_vars/ belong to a source (none for a host list). */
function sourceDir(src: string): string | undefined {
  if (isHostList(src)) return undefined;
  try {
    if (statSync(src).isDirectory()) return src;
  } catch {
    /* a missing source was reported already */
  }
  return dirname(src);
}

export function isHostList(src: string): boolean {
  return src.includes(',') && !existsSync(src);
}

const VARS_EXTS = ['', '.yml', '.yaml', '.json'];

/** DataLoader.find_vars_files: the first of name, name.yml, name.yaml, name.json; a directory whole. */
export function findVarsFiles(base: string, name: string): string[] {
  for (const ext of VARS_EXTS) {
    const p = join(base, name + ext);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    return st.isDirectory() ? dirVarsFiles(p) : [p];
  }
  return [];
}

function dirVarsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir).sort()) {
    if (f.startsWith('.') || f.endsWith('~')) continue;
    const full = join(dir, f);
    const ext = extname(f);
    const st = statSync(full);
    if (st.isDirectory() && !ext) out.push(...dirVarsFiles(full));
    else if (st.isFile() && (!ext || VARS_EXTS.includes(ext))) out.push(full);
  }
  return out;
}
