/**
 * Inventory sources read with Ansible's semantics (ansible-core's InventoryManager,
 * InventoryData, the `yaml`, `ini` and `host_list` inventory plugins and the `host_group_vars`
 * vars plugin), so that `passthru inventory --list` prints what `ansible-inventory --list`
 * prints for the same sources.
 *
 * - Sources (`-i`, repeatable) are read in order into one inventory: a YAML file (`.yaml`,
 *   `.yml`, `.json`), an INI file (any other name; a file without extension is tried as YAML
 *   first, then INI), a directory (its entries in name order, recursively, skipping hidden
 *   names, `group_vars`, `host_vars` and the extensions Ansible ignores there: .ini .cfg .md
 *   .txt .rst .orig .retry .bak .swp .pyc .pyo .rpm ~), or a comma separated host list
 *   (`pve1,pve2,`).
 * - Groups `all` and `ungrouped` always exist; a group without a parent becomes a child of
 *   `all`; a host in no group but `all` lands in `ungrouped`.
 * - A host's variables, lowest to highest: `all`'s inventory vars < each group's inventory vars
 *   (groups sorted by depth, then ansible_group_priority, then name) < group_vars/all files <
 *   group_vars/<group> files (per source, in source order, groups sorted as above) < the
 *   host's inventory vars < host_vars/<host> files. Values replace, maps are not merged.
 * - group_vars/ and host_vars/ beside each source (a directory source: inside it): the first of
 *   `name`, `name.yml`, `name.yaml`, `name.json` that exists; a directory `name/` is read
 *   whole (files in name order, recursively, hidden files and `~` backups skipped).
 *
 * Deliberate differences, each an error with file:line:column where Ansible would only warn or
 * would do something unsafe: a source that does not parse, an unknown key in a YAML group, a
 * duplicate YAML key, an invalid variable name, inventory scripts and plugin configurations
 * (never run), Vault values, and host or group names with a `..` path segment (Ansible would
 * read host_vars/../../x).
 */
import { existsSync, readdirSync, statSync, accessSync, constants as fsc } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { isMap, isScalar, isSeq } from 'yaml';
import type { Pos, Vars } from '../model/types.ts';
import { ConfigError } from '../model/errors.ts';
import { Errors, isNull, mapEntries, readTextBounded, toJS, type Entry, type YamlFile, type YNode } from '../load/yaml.ts';
import { copyPositions, recordNodePositions } from '../load/positions.ts';
import { loadAnsibleYaml } from './yaml11.ts';
import { expandHostPattern, HostPatternError, parseAddress } from './hostpattern.ts';
import { literalEval, LiteralUnsupported, shlexSplit, ShlexError } from './pyliteral.ts';

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

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RANGE_HINT = 'a range is [begin:end] or [begin:end:step], e.g. pve[01:20] or node[a:f]; both ends have the same width';
const GROUP_KEYS = ['hosts', 'vars', 'children'] as const;

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

function isHostList(src: string): boolean {
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

// ---------------------------------------------------------------- sources

const IGNORED_EXTS = ['.pyc', '.pyo', '.swp', '.bak', '~', '.rpm', '.md', '.txt', '.rst', '.orig', '.ini', '.cfg', '.retry'];

function ignoredInDir(name: string): boolean {
  return name.startsWith('.') || name === 'host_vars' || name === 'group_vars' || name === 'vars_plugins' || IGNORED_EXTS.some((e) => name.endsWith(e));
}

/** Read the sources in order into one inventory (errors are collected in `inv.errs`). */
export async function readSources(sources: string[]): Promise<AnsibleInventory> {
  const inv = new AnsibleInventory();
  for (const s of sources) {
    if (isHostList(s)) {
      inv.sources.push(s);
      hostList(inv, s);
      continue;
    }
    const abs = resolve(s === '~' || s.startsWith('~/') ? join(homedir(), s.slice(1)) : s);
    inv.sources.push(abs);
    if (!existsSync(abs)) {
      inv.errs.add(`inventory source ${s}: no such file or directory`, undefined, `check the path (relative paths start from ${process.cwd()})`);
      continue;
    }
    await readSource(inv, abs);
  }
  if (inv.errs.empty) {
    try {
      inv.reconcile();
    } catch (e) {
      inv.errs.push(e);
    }
  }
  return inv;
}

function hostList(inv: AnsibleInventory, src: string): void {
  const at: Pos = { file: src, line: 1, col: 1 };
  for (const part of src.split(',')) {
    const h = part.trim();
    if (!h) continue;
    const a = parseAddress(h);
    const name = a && !a.host.includes('[') ? a.host : h;
    const port = a && !a.host.includes('[') ? a.port : undefined;
    if (!inv.hosts.has(name)) inv.errs.catch(() => inv.addHost(name, 'ungrouped', port, at));
  }
}

async function readSource(inv: AnsibleInventory, path: string): Promise<void> {
  const st = statSync(path);
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (ignoredInDir(name)) continue;
      await readSource(inv, join(path, name));
    }
    return;
  }
  const ext = extname(path);
  const pos: Pos = { file: path, line: 1, col: 1 };
  let text: string;
  try {
    text = readTextBounded(path);
  } catch (e) {
    if (e instanceof ConfigError) inv.errs.push(e);
    else inv.errs.add(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, pos, 'check the path');
    return;
  }
  if (text.startsWith('#!') && isExecutable(path)) {
    inv.errs.add('inventory scripts are not run: passthru never executes inventory sources', pos, 'write the hosts to a YAML or INI inventory (e.g. the script\'s output through `ansible-inventory -i SCRIPT --list --yaml`)');
    return;
  }
  if (ext === '.toml') {
    inv.errs.add('TOML inventories are not supported', pos, 'convert it with `ansible-inventory -i FILE --list --yaml`');
    return;
  }
  if (['.yaml', '.yml', '.json'].includes(ext)) {
    await readYamlSource(inv, path);
    return;
  }
  if (ext === '') {
    // like Ansible: a file without extension is YAML when it reads as a YAML map, else INI
    const probe = new Errors();
    let yamlOk = false;
    try {
      const yf = await loadAnsibleYaml(path, probe);
      yamlOk = isMap(yf.root);
    } catch {
      yamlOk = false;
    }
    if (yamlOk) {
      await readYamlSource(inv, path);
      return;
    }
  }
  readIni(inv, path, text);
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsc.X_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- the YAML inventory plugin

async function readYamlSource(inv: AnsibleInventory, path: string): Promise<void> {
  const errs = inv.errs;
  let yf: YamlFile;
  try {
    yf = await loadAnsibleYaml(path, errs);
  } catch (e) {
    errs.push(e);
    return;
  }
  if (isNull(yf.root)) {
    errs.add('the inventory is empty', { file: path, line: 1, col: 1 }, 'start it with `all:` then `hosts:`');
    return;
  }
  const top = mapEntries(yf, yf.root, errs, 'the inventory');
  if (!top) return;
  const plugin = top.find((e) => e.key === 'plugin');
  if (plugin) {
    errs.add('inventory plugin configurations are not supported (passthru reads YAML and INI inventories)', plugin.keyPos, 'export the hosts once with `ansible-inventory -i FILE --list --yaml` and keep that file');
    return;
  }
  const parseGroup = (name: string, node: YNode, at: Pos): string | undefined => {
    try {
      inv.addGroup(name, at);
    } catch (e) {
      errs.push(e);
      return undefined;
    }
    if (isNull(node)) return name;
    if (!isMap(node)) {
      errs.add(`group '${name}' must be a map (of hosts:, vars:, children:), found ${isSeq(node) ? 'a list' : 'a value'}`, yf.pos(node, at), 'write the group as `name:` with hosts:, vars: and children: indented below it');
      return undefined;
    }
    const entries = mapEntries(yf, node, errs, `group '${name}'`, { allowed: GROUP_KEYS, at, allowedHint: 'a group holds only hosts:, vars: and children:' });
    for (const e of entries ?? []) {
      if (isNull(e.node)) continue;
      // Ansible: a section given as one name is a map of that one name
      const single = isScalar(e.node) ? [{ key: String(toJS(e.node)), keyPos: e.pos, node: null as YNode, pos: e.pos }] : undefined;
      if (!single && !isMap(e.node)) {
        errs.add(
          `${e.key} of group '${name}' must be a map of ${e.key === 'vars' ? 'variables' : e.key === 'hosts' ? 'host names' : 'group names'}, found ${isSeq(e.node) ? 'a list' : 'a value'}`,
          e.pos,
          e.key === 'vars' ? 'write each variable as `name: value`' : `write each ${e.key === 'hosts' ? 'host' : 'child'} as \`name:\` on its own line (a trailing colon)${e.key === 'hosts' ? ', with its vars below it' : ''}`,
        );
        continue;
      }
      const items: Entry[] = single ?? mapEntries(yf, e.node, errs, `${e.key} of group '${name}'`, { nullOk: true, at: e.pos }) ?? [];
      if (e.key === 'vars') {
        for (const v of items) inv.setVar(inv.groups.get(name)!, v.key, toJS(v.node), v.pos, { yf, node: v.node });
      } else if (e.key === 'children') {
        for (const c of items) {
          const child = parseGroup(c.key, c.node, c.keyPos);
          if (child !== undefined) errs.catch(() => inv.addChild(name, child, c.keyPos));
        }
      } else {
        for (const h of items) readHostEntry(h);
      }
    }
    return name;

    function readHostEntry(h: Entry): void {
      let names: string[];
      let port: number | undefined;
      try {
        ({ names, port } = expandHostPattern(h.key));
      } catch (e) {
        if (e instanceof HostPatternError) errs.add(`host '${h.key}': ${e.message}`, h.keyPos, RANGE_HINT);
        else throw e;
        return;
      }
      if (!isNull(h.node) && !isMap(h.node)) {
        errs.add(`host '${h.key}' must be followed by a map of its vars (or nothing), found ${describe(h.node)}`, h.pos, `write \`${h.key}:\` then its vars indented below, e.g. \`ansible_host: 10.0.0.1\``);
        return;
      }
      const vars = isNull(h.node) ? [] : (mapEntries(yf, h.node, errs, `vars of host '${h.key}'`, { at: h.pos }) ?? []);
      for (const n of names) {
        let host: AHost;
        try {
          host = inv.addHost(n, name, port, h.keyPos);
        } catch (e) {
          errs.push(e);
          return;
        }
        for (const v of vars) inv.setVar(host, v.key, toJS(v.node), v.pos, { yf, node: v.node });
      }
    }
  };
  for (const g of top) parseGroup(g.key, g.node, g.keyPos);
}

function describe(node: YNode): string {
  if (isSeq(node)) return 'a list';
  const v = toJS(node);
  return typeof v === 'string' ? `the string ${JSON.stringify(v)}` : `the value ${String(v)}`;
}

// ---------------------------------------------------------------- the INI inventory plugin

const SECTION = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$/;
const GROUPNAME = /^([^:\]\s]+)\s*(?:#.*)?$/;

/** `_parse_value`: a Python literal becomes its value, anything else stays text. */
function iniValue(v: string, pos: Pos, errs: Errors): unknown {
  try {
    const r = literalEval(v);
    return r ? r.value : v;
  } catch (e) {
    if (e instanceof LiteralUnsupported) {
      errs.add(`value ${JSON.stringify(v)}: ${e.message}`, pos, 'quote it to keep it as text');
      return v;
    }
    throw e;
  }
}

function readIni(inv: AnsibleInventory, path: string, text: string): void {
  const errs = inv.errs;
  const lines = text.split(/\r\n|\n|\r/);
  interface Pending {
    line: number;
    state: string;
    name: string;
    parents: string[];
    pos: Pos;
  }
  const pending = new Map<string, Pending>();
  let group = 'ungrouped';
  let state = 'hosts';
  const addPendingChildren = (g: string): void => {
    const p = pending.get(g)!;
    for (const parent of p.parents) {
      errs.catch(() => inv.addChild(parent, g, p.pos));
      const pp = pending.get(parent);
      if (pp && pp.state === 'children') addPendingChildren(parent);
    }
    pending.delete(g);
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = raw.trim();
    const col = raw.length - raw.trimStart().length + 1;
    const pos: Pos = { file: path, line: i + 1, col };
    if (!line || line[0] === '#' || line[0] === ';') continue;
    const m = SECTION.exec(line);
    if (m) {
      group = m[1]!;
      state = m[2] ?? 'hosts';
      if (!['hosts', 'children', 'vars'].includes(state)) {
        errs.add(`section [${m[1]}:${m[2]}] has unknown type: ${state}`, pos, 'a section is [group], [group:vars] or [group:children]');
        state = 'skip';
        continue;
      }
      if (!inv.groups.has(group)) {
        if (state === 'vars' && !pending.has(group)) pending.set(group, { line: i + 1, state, name: group, parents: [], pos });
        try {
          inv.addGroup(group, pos);
        } catch (e) {
          errs.push(e);
          state = 'skip';
          continue;
        }
      }
      const p = pending.get(group);
      if (p && state !== 'vars') {
        if (p.state === 'children') addPendingChildren(group);
        else if (p.state === 'vars') pending.delete(group);
      }
      continue;
    }
    if (line.startsWith('[') && line.endsWith(']')) {
      errs.add(`invalid section entry: '${line}'`, pos, 'make sure there are no spaces in the section entry and no other invalid characters');
      state = 'skip';
      continue;
    }
    if (state === 'skip') continue;
    if (state === 'hosts') {
      let tokens: string[];
      try {
        tokens = shlexSplit(line);
      } catch (e) {
        if (e instanceof ShlexError) errs.add(`error parsing host definition '${line}': ${e.message}`, { ...pos, col: col + e.col }, 'close the quote, or escape it with a backslash');
        else throw e;
        continue;
      }
      if (!tokens.length) continue;
      const pattern = tokens[0]!;
      let names: string[];
      let port: number | undefined;
      try {
        ({ names, port } = expandHostPattern(pattern));
      } catch (e) {
        if (e instanceof HostPatternError) errs.add(`host '${pattern}': ${e.message}`, pos, RANGE_HINT);
        else throw e;
        continue;
      }
      if (pattern.trim().endsWith(':') && port === undefined) {
        errs.add(`invalid host pattern '${pattern}': ending in ':' is not allowed, this character is reserved to provide a port`, pos, 'a YAML inventory needs a .yaml/.yml extension; in INI write `name` or `name:port`');
        continue;
      }
      if (names.some((n) => n.trim() === '---')) {
        errs.add(`invalid host pattern '${pattern}': '---' is normally a sign this is a YAML file`, pos, 'give a YAML inventory the .yaml or .yml extension');
        continue;
      }
      const vars: [string, unknown, Pos][] = [];
      let bad = false;
      for (const t of tokens.slice(1)) {
        const tcol = raw.indexOf(t.split('=')[0]!);
        const tpos: Pos = { ...pos, col: tcol >= 0 ? tcol + 1 : col };
        const eq = t.indexOf('=');
        if (eq < 0) {
          errs.add(`expected key=value host variable assignment, got: ${t}`, tpos, 'write variables after the host name as key=value; quote values with spaces');
          bad = true;
          continue;
        }
        vars.push([t.slice(0, eq), iniValue(t.slice(eq + 1), tpos, errs), tpos]);
      }
      if (bad) continue;
      for (const n of names) {
        let h: AHost;
        try {
          h = inv.addHost(n, group, port, pos);
        } catch (e) {
          errs.push(e);
          break;
        }
        for (const [k, v, p] of vars) inv.setVar(h, k, v, p);
      }
    } else if (state === 'vars') {
      const eq = line.indexOf('=');
      if (eq < 0) {
        errs.add(`expected key=value, got: ${line}`, pos, 'a [group:vars] line is key=value');
        continue;
      }
      const k = line.slice(0, eq).trim();
      const vcol = raw.indexOf('=') + 2;
      inv.setVar(inv.groups.get(group)!, k, iniValue(line.slice(eq + 1).trim(), { ...pos, col: vcol }, errs), { ...pos, col: vcol });
    } else if (state === 'children') {
      const gm = GROUPNAME.exec(line);
      if (!gm) {
        errs.add(`expected group name, got: ${line}`, pos, 'a [group:children] section lists one group name per line');
        continue;
      }
      const child = gm[1]!;
      if (!inv.groups.has(child)) {
        const p = pending.get(child);
        if (!p) pending.set(child, { line: i + 1, state, name: child, parents: [group], pos });
        else p.parents.push(group);
      } else errs.catch(() => inv.addChild(group, child, pos));
    }
  }
  for (const p of pending.values()) {
    if (p.state === 'vars') errs.add(`section [${p.name}:vars] not valid for undefined group: ${p.name}`, p.pos, `define the group with a [${p.name}] section or list it under a [parent:children] section`);
    else errs.add(`section [${p.parents[p.parents.length - 1]}:children] includes undefined group: ${p.name}`, p.pos, `define the group with a [${p.name}] section (it may be empty)`);
  }
}

// ---------------------------------------------------------------- output (ansible-inventory)

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

