/**
 * Inventory loading, in Ansible's YAML shape:
 *
 * ```yaml
 * all:
 *   vars: { user: admin }
 *   hosts:
 *     pve1: { host: 10.0.0.11 }
 *   children:
 *     gpu:
 *       hosts:
 *         pve2: { ansible_host: 10.0.0.12, port: 2222 }
 *       vars: { vfio_ids: [10de:1eb8] }
 * ```
 *
 * plus `group_vars/<group>.yaml` (or `.yml`, or a folder `group_vars/<group>/*.yaml`) and
 * `host_vars/<host>.yaml` beside the inventory file. A host's variables merge, lowest to
 * highest: `all` < parent groups < child groups (groups at the same depth: alphabetical, the
 * later wins) < the host's own vars (inline, then host_vars). Inline group vars are overridden
 * by that group's group_vars file.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ConnSpec, Group, Host, HostKeyChecking, Inventory, Pos, Vars } from '../model/types.ts';
import { containsTemplate, isSecretName, render } from '../template/index.ts';
import { Errors, suggest, isNull, loadYamlFile, mapEntries, toJS, type Entry, type YamlFile, type YNode } from '../load/yaml.ts';
import { isMap, isSeq } from 'yaml';
import { copyPositions, recordNodePositions, setPositions } from '../load/positions.ts';

interface VarLayer {
  vars: Vars;
  /** Where each variable was set (the value's position). */
  pos: Map<string, Pos>;
}

interface GroupBuild extends VarLayer {
  name: string;
  hosts: string[];
  children: string[];
  parents: Set<string>;
  at?: Pos;
}

interface HostBuild extends VarLayer {
  name: string;
  at: Pos;
}

const GROUP_KEYS = ['hosts', 'vars', 'children'] as const;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function newLayer(): VarLayer {
  return { vars: {}, pos: new Map() };
}

function mergeInto(dst: VarLayer, src: VarLayer): void {
  for (const [k, v] of Object.entries(src.vars)) {
    dst.vars[k] = v;
    copyPositions(src.pos, dst.pos, k);
  }
}

/** Read a vars map node into a layer (merging over what it holds). */
function readVars(yf: YamlFile, node: YNode, errs: Errors, what: string, into: VarLayer, at?: Pos): void {
  const entries = mapEntries(yf, node, errs, what, { nullOk: true, at });
  for (const e of entries ?? []) {
    if (!VAR_NAME.test(e.key)) {
      errs.add(`invalid variable name '${e.key}' in ${what}`, e.keyPos, 'names use letters, digits and _ and do not start with a digit');
      continue;
    }
    into.vars[e.key] = toJS(e.node);
    copyPositions(new Map(), into.pos, e.key);
    into.pos.set(e.key, e.pos);
    recordNodePositions(yf, e.node, e.key, into.pos);
  }
}

/** Files holding the vars of `name` under `base` (group_vars or host_vars), in merge order. */
function varFiles(base: string, name: string): string[] {
  const out: string[] = [];
  for (const ext of ['', '.yaml', '.yml', '.json']) {
    const p = join(base, name + ext);
    if (existsSync(p) && statSync(p).isFile()) out.push(p);
  }
  const d = join(base, name);
  if (existsSync(d) && statSync(d).isDirectory()) {
    for (const f of readdirSync(d).sort()) {
      if (/\.(ya?ml|json)$/.test(f) && statSync(join(d, f)).isFile()) out.push(join(d, f));
    }
  }
  return out;
}

async function readVarFiles(base: string, name: string, errs: Errors, what: string, into: VarLayer): Promise<void> {
  for (const f of varFiles(base, name)) {
    let yf: YamlFile;
    try {
      yf = await loadYamlFile(f);
    } catch (e) {
      errs.push(e);
      continue;
    }
    readVars(yf, yf.root, errs, `${what} (${f})`, into);
  }
}

export async function loadInventory(path: string): Promise<Inventory> {
  const yf = await loadYamlFile(path);
  const errs = new Errors();
  const dir = dirname(resolve(path));
  const groups = new Map<string, GroupBuild>();
  const hosts = new Map<string, HostBuild>();

  const group = (name: string, at?: Pos): GroupBuild => {
    let g = groups.get(name);
    if (!g) {
      g = { name, hosts: [], children: [], parents: new Set(), at, ...newLayer() };
      groups.set(name, g);
    } else if (!g.at) g.at = at;
    return g;
  };
  group('all');

  const defineGroup = (name: string, node: YNode, at: Pos, parent: string | undefined): void => {
    const g = group(name, at);
    if (parent && parent !== name) {
      const p = group(parent);
      if (!p.children.includes(name)) p.children.push(name);
      g.parents.add(parent);
    } else if (parent === name) {
      errs.add(`group '${name}' lists itself as a child`, at);
    }
    if (isNull(node)) return;
    const entries = mapEntries(yf, node, errs, `group '${name}'`, {
      allowed: GROUP_KEYS,
      at,
      allowedHint: 'a group holds only hosts:, vars: and children:',
    });
    for (const e of entries ?? []) {
      if (e.key === 'hosts') readHosts(g, e);
      else if (e.key === 'vars') readVars(yf, e.node, errs, `vars of group '${name}'`, g, e.pos);
      else if (e.key === 'children') {
        if (isSeq(e.node)) {
          errs.add(`children of group '${name}' must be a map of group names, found a list`, e.pos, 'write each child as `name:` on its own line (a trailing colon)');
          continue;
        }
        for (const c of mapEntries(yf, e.node, errs, `children of group '${name}'`, { nullOk: true, at: e.pos }) ?? []) {
          defineGroup(c.key, c.node, c.keyPos, name);
        }
      }
    }
  };

  const readHosts = (g: GroupBuild, e: Entry): void => {
    if (isSeq(e.node)) {
      errs.add(`hosts of group '${g.name}' must be a map of host names, found a list`, e.pos, 'write each host as `name:` on its own line (a trailing colon), with its vars below it');
      return;
    }
    for (const h of mapEntries(yf, e.node, errs, `hosts of group '${g.name}'`, { nullOk: true, at: e.pos }) ?? []) {
      let hb = hosts.get(h.key);
      if (!hb) {
        hb = { name: h.key, at: h.keyPos, ...newLayer() };
        hosts.set(h.key, hb);
      }
      if (!g.hosts.includes(h.key)) g.hosts.push(h.key);
      if (!isNull(h.node) && !isMap(h.node)) {
        errs.add(`host '${h.key}' must be followed by a map of its vars (or nothing), found ${describe(h.node)}`, h.pos, `write \`${h.key}:\` then its vars indented below, e.g. \`host: 10.0.0.1\``);
        continue;
      }
      readVars(yf, h.node, errs, `vars of host '${h.key}'`, hb, h.pos);
    }
  };

  if (isNull(yf.root)) {
    errs.add('the inventory is empty', { file: path, line: 1, col: 1 }, 'start it with `all:` then `hosts:`');
  } else {
    for (const top of mapEntries(yf, yf.root, errs, 'the inventory') ?? []) {
      defineGroup(top.key, top.node, top.keyPos, top.key === 'all' ? undefined : 'all');
    }
  }

  // group_vars / host_vars beside the inventory file
  for (const g of groups.values()) {
    const layer = newLayer();
    await readVarFiles(join(dir, 'group_vars'), g.name, errs, `group_vars of '${g.name}'`, layer);
    mergeInto(g, layer);
  }
  for (const h of hosts.values()) {
    const layer = newLayer();
    await readVarFiles(join(dir, 'host_vars'), h.name, errs, `host_vars of '${h.name}'`, layer);
    mergeInto(h, layer);
  }

  // depth of each group (longest path from all), rejecting cycles
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (name: string): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (name === 'all') return 0;
    if (visiting.has(name)) {
      errs.add(`group '${name}' is its own ancestor (a cycle in children)`, groups.get(name)!.at, 'remove one of the children: entries that form the cycle');
      return 1;
    }
    visiting.add(name);
    const ps = [...groups.get(name)!.parents];
    const d = ps.length ? Math.max(...ps.map(depthOf)) + 1 : 1;
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const g of groups.keys()) depthOf(g);
  depth.set('all', 0);

  // membership: a host belongs to a group if listed in it or in any descendant
  const members = new Map<string, Set<string>>();
  const membersOf = (name: string, seen = new Set<string>()): Set<string> => {
    const hit = members.get(name);
    if (hit) return hit;
    const g = groups.get(name)!;
    const s = new Set(name === 'all' ? hosts.keys() : g.hosts);
    if (!seen.has(name)) {
      seen.add(name);
      for (const c of g.children) for (const h of membersOf(c, seen)) s.add(h);
    }
    members.set(name, s);
    return s;
  };
  for (const g of groups.keys()) membersOf(g);

  const order = [...groups.keys()].sort((a, b) => depth.get(a)! - depth.get(b)! || (a < b ? -1 : a > b ? 1 : 0));

  const inv: Inventory = { file: path, hosts: new Map(), groups: new Map() };
  for (const name of order) {
    const g = groups.get(name)!;
    const out: Group = { name, hosts: g.hosts, children: g.children, vars: g.vars };
    if (g.at) out.pos = g.at;
    inv.groups.set(name, out);
  }
  for (const hb of hosts.values()) {
    const inGroups = order.filter((g) => members.get(g)!.has(hb.name));
    const merged = newLayer();
    for (const g of inGroups) mergeInto(merged, groups.get(g)!);
    mergeInto(merged, hb);
    const conn = connSpec(hb.name, merged, dir, hb.at, errs);
    setPositions(merged.vars, merged.pos);
    inv.hosts.set(hb.name, { name: hb.name, vars: merged.vars, groups: inGroups, conn, pos: hb.at });
  }
  errs.throwIfAny();
  return inv;
}

function describe(node: YNode): string {
  if (isSeq(node)) return 'a list';
  const v = toJS(node);
  return typeof v === 'string' ? `the string ${JSON.stringify(v)}` : `the value ${String(v)}`;
}

// ---------------------------------------------------------------- connection settings

/** Keys read for the connection, with their Ansible spellings (first found wins). */
const CONN_KEYS = {
  host: ['host', 'ansible_host'],
  port: ['port', 'ansible_port', 'ansible_ssh_port'],
  user: ['user', 'ansible_user', 'ansible_ssh_user'],
  identity_file: ['identity_file', 'ansible_ssh_private_key_file', 'ansible_private_key_file'],
  passphrase_env: ['passphrase_env'],
  password: ['password', 'ansible_password', 'ansible_ssh_pass'],
  become: ['become', 'ansible_become'],
  become_password_env: ['become_password_env'],
  jump: ['jump'],
  known_hosts: ['known_hosts'],
  host_key_checking: ['host_key_checking', 'ansible_host_key_checking'],
  transport: ['transport', 'ansible_connection'],
  connect_timeout: ['connect_timeout', 'ansible_timeout'],
} as const;

function connSpec(name: string, layer: VarLayer, dir: string, hostPos: Pos, errs: Errors): ConnSpec {
  const ctx: Vars = { ...layer.vars, inventory_hostname: name };
  const get = (key: keyof typeof CONN_KEYS): { v: unknown; key: string; pos: Pos } | undefined => {
    for (const k of CONN_KEYS[key]) {
      if (layer.vars[k] === undefined || layer.vars[k] === null) continue;
      const pos = layer.pos.get(k) ?? hostPos;
      let v: unknown = layer.vars[k];
      if (containsTemplate(v)) {
        try {
          v = render(v, ctx, pos);
        } catch (e) {
          // a secret's template error would quote the secret: say where, never what
          if (isSecretName(k)) errs.add(`host '${name}': the template in '${k}' does not render (its text is not shown: it is a secret)`, pos, 'check the {{ }} in that value, or take the secret from an environment variable');
          else errs.push(e);
          return undefined;
        }
      }
      return { v, key: k, pos };
    }
    return undefined;
  };
  const bad = (g: { key: string; pos: Pos; v: unknown }, want: string, hint?: string): void => {
    errs.add(`host '${name}': '${g.key}' must be ${want}, found ${JSON.stringify(g.v)}`, g.pos, hint);
  };
  const str = (key: keyof typeof CONN_KEYS): string | undefined => {
    const g = get(key);
    if (!g) return undefined;
    if (typeof g.v === 'string' && g.v !== '') return g.v;
    if (typeof g.v === 'number' && key !== 'password') return String(g.v);
    bad(g, 'a non-empty string');
    return undefined;
  };
  const bool = (key: keyof typeof CONN_KEYS): boolean | undefined => {
    const g = get(key);
    if (!g) return undefined;
    if (typeof g.v === 'boolean') return g.v;
    if (typeof g.v === 'string' && /^(yes|true|on)$/i.test(g.v)) return true;
    if (typeof g.v === 'string' && /^(no|false|off)$/i.test(g.v)) return false;
    bad(g, 'true or false');
    return undefined;
  };
  const path = (key: keyof typeof CONN_KEYS): string | undefined => {
    const p = str(key);
    if (p === undefined) return undefined;
    if (p === '~' || p.startsWith('~/')) return join(homedir(), p.slice(1));
    return resolve(dir, p);
  };

  const conn: ConnSpec = {
    host: str('host') ?? name,
    port: 22,
    user: str('user') ?? 'root',
    become: false,
    hostKeyChecking: 'strict',
    transport: 'ssh',
  };
  const port = get('port');
  if (port) {
    const n = typeof port.v === 'string' && /^\d+$/.test(port.v.trim()) ? Number(port.v) : port.v;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535) conn.port = n;
    else bad(port, 'an integer port between 1 and 65535', 'e.g. `port: 22`');
  }
  conn.become = bool('become') ?? conn.user !== 'root';
  const idf = path('identity_file');
  if (idf) conn.identityFile = idf;
  const pe = str('passphrase_env');
  if (pe) conn.passphraseEnv = pe;
  const pw = get('password');
  if (pw) {
    if (typeof pw.v === 'string' || typeof pw.v === 'number') conn.password = String(pw.v);
    else errs.add(`host '${name}': '${pw.key}' must be a string`, pw.pos);
  }
  const bpe = str('become_password_env');
  if (bpe) conn.becomePasswordEnv = bpe;
  const jump = str('jump');
  if (jump) conn.jump = jump;
  const kh = path('known_hosts');
  if (kh) conn.knownHostsFile = kh;
  const hkc = get('host_key_checking');
  if (hkc) {
    const choices: HostKeyChecking[] = ['strict', 'accept-new', 'off'];
    if (typeof hkc.v === 'boolean') conn.hostKeyChecking = hkc.v ? 'strict' : 'off';
    else if (typeof hkc.v === 'string' && (choices as string[]).includes(hkc.v)) conn.hostKeyChecking = hkc.v as HostKeyChecking;
    else {
      const near = typeof hkc.v === 'string' ? suggest(hkc.v, choices) : undefined;
      bad(hkc, 'one of strict, accept-new, off', near ? `did you mean '${near}'?` : 'strict (default) refuses unknown keys; accept-new records a first-seen key; off checks nothing');
    }
  }
  const tr = get('transport');
  if (tr) {
    const v = typeof tr.v === 'string' ? tr.v : '';
    if (v === 'local') conn.transport = 'local';
    else if (v === 'ssh' || (tr.key === 'ansible_connection' && (v === 'paramiko' || v === 'smart'))) conn.transport = 'ssh';
    else bad(tr, "'ssh' or 'local'", suggest(v, ['ssh', 'local']) ? `did you mean '${suggest(v, ['ssh', 'local'])}'?` : undefined);
  }
  const ct = get('connect_timeout');
  if (ct) {
    const n = typeof ct.v === 'string' && /^\d+(\.\d+)?$/.test(ct.v) ? Number(ct.v) : ct.v;
    if (typeof n === 'number' && n > 0) conn.connectTimeoutMs = Math.round(n * 1000);
    else bad(ct, 'a number of seconds greater than 0');
  }
  return conn;
}

