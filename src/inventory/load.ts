/**
 * Inventory loading: the sources are read with Ansible's semantics (see ./ansible.ts: YAML and
 * INI files, directories, host lists, host ranges, group_vars/ and host_vars/, `all` and
 * `ungrouped`, variable precedence with depth and ansible_group_priority), then each host's
 * connection settings are taken from its merged variables.
 *
 * ```yaml
 * all:
 *   vars: { ansible_user: admin }
 *   hosts:
 *     pve1: { ansible_host: 10.0.0.11 }
 *   children:
 *     gpu:
 *       hosts:
 *         pve[2:3]: { ansible_port: 2222 }
 *       vars: { vfio_ids: [10de:1eb8] }
 * ```
 */
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { statSync } from 'node:fs';
import type { ConnSpec, Group, HostKeyChecking, Inventory, Pos, Vars } from '../model/types.ts';
import { yamlBool } from '../model/truth.ts';
import { containsTemplate, isSecretName, render } from '../template/index.ts';
import { setPositions } from '../load/positions.ts';
import { Errors, suggest } from '../load/yaml.ts';
import { readSources, type VarLayer } from './ansible.ts';
import { shlexSplit } from './pyliteral.ts';

/** Load one inventory source, or several merged in order (as repeated `-i` options). */
export async function loadInventory(paths: string | string[]): Promise<Inventory> {
  const list = typeof paths === 'string' ? [paths] : paths;
  const ai = await readSources(list);
  const errs = ai.errs;
  errs.throwIfAny();
  const inv: Inventory = { file: list.join(', '), hosts: new Map(), groups: new Map() };
  const order = ai.sortGroups([...ai.groups.keys()]);
  for (const name of order) {
    const g = ai.groups.get(name)!;
    const out: Group = { name, hosts: g.hosts, children: g.children, vars: (await ai.groupVars(name)).vars };
    if (g.at) out.pos = g.at;
    inv.groups.set(name, out);
  }
  for (const h of ai.hosts.values()) {
    const merged = await ai.hostVars(h.name);
    const dir = baseDir(h.at.file);
    const conn = connSpec(h.name, merged, dir, h.at, errs);
    setPositions(merged.vars, merged.pos);
    inv.hosts.set(h.name, { name: h.name, vars: merged.vars, groups: ai.hostGroups(h.name), conn, pos: h.at });
  }
  errs.throwIfAny();
  return inv;
}

/** Relative paths in a host's variables (keys, known_hosts) start from the directory of the file that defines the host. */
function baseDir(file: string): string {
  try {
    if (statSync(file).isDirectory()) return file;
  } catch {
    return process.cwd();
  }
  return dirname(resolve(file));
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
  become_password: ['become_password', 'ansible_become_password', 'ansible_become_pass', 'ansible_sudo_pass'],
  jump: ['jump'],
  ssh_args: ['ansible_ssh_common_args', 'ansible_ssh_extra_args'],
  known_hosts: ['known_hosts'],
  host_key_checking: ['host_key_checking', 'ansible_host_key_checking'],
  transport: ['transport', 'ansible_connection'],
  connect_timeout: ['connect_timeout', 'ansible_timeout'],
} as const;

/**
 * The jump host in ssh options as Ansible users write them in ansible_ssh_common_args:
 * `-J [user@]host[:port]`, `-o ProxyJump=...`, or `-o ProxyCommand="ssh -W %h:%p [-p N] [-q] [user@]host"`.
 * Options that are not about a jump host are ignored (passthru speaks SSH itself).
 */
export function jumpFromSshArgs(text: string): { jump?: string; error?: string } {
  let words: string[];
  try {
    words = shlexSplit(text);
  } catch (e) {
    return { error: (e as Error).message };
  }
  const opt = (o: string): { key: string; value: string } | undefined => {
    const m = /^([A-Za-z]+)\s*[= ]\s*(.*)$/.exec(o);
    return m ? { key: m[1]!.toLowerCase(), value: m[2]!.trim() } : undefined;
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    let o: { key: string; value: string } | undefined;
    if (w === '-J') return words[i + 1] ? { jump: words[i + 1]!.split(',')[0] } : { error: '-J needs a host' };
    if (w.startsWith('-J')) return { jump: w.slice(2).split(',')[0] };
    if (w === '-o') o = opt(words[++i] ?? '');
    else if (w.startsWith('-o')) o = opt(w.slice(2));
    if (!o) continue;
    if (o.key === 'proxyjump') return o.value && o.value !== 'none' ? { jump: o.value.split(',')[0] } : {};
    if (o.key === 'proxycommand') {
      const cmd = shlexSplit(o.value);
      if (cmd[0] !== 'ssh' || !cmd.includes('-W')) return { error: `ProxyCommand ${JSON.stringify(o.value)} is not an ssh -W jump (passthru runs no proxy commands)` };
      let port: string | undefined;
      let user: string | undefined;
      let host: string | undefined;
      for (let k = 1; k < cmd.length; k++) {
        const a = cmd[k]!;
        if (a === '-W' || a === '-o' || a === '-i' || a === '-F') k++;
        else if (a === '-p') port = cmd[++k];
        else if (a === '-l') user = cmd[++k];
        else if (a.startsWith('-')) continue;
        else host = a;
      }
      if (!host) return { error: `no jump host in ProxyCommand ${JSON.stringify(o.value)}` };
      if (user && !host.includes('@')) host = `${user}@${host}`;
      return { jump: port ? `${host}:${port}` : host };
    }
  }
  return {};
}

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
    const b = typeof g.v === 'string' ? yamlBool(g.v) : undefined;
    if (b !== undefined) return b;
    bad(g, 'true or false');
    return undefined;
  };
  /** A secret: text, or a number taken as its digits; an error never quotes its value. */
  const secret = (key: keyof typeof CONN_KEYS): string | undefined => {
    const g = get(key);
    if (!g) return undefined;
    if (typeof g.v === 'string' || typeof g.v === 'number') return String(g.v);
    errs.add(`host '${name}': '${g.key}' must be a string`, g.pos);
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
  const pw = secret('password');
  if (pw !== undefined) conn.password = pw;
  const bpe = str('become_password_env');
  if (bpe) conn.becomePasswordEnv = bpe;
  const bp = secret('become_password');
  if (bp !== undefined) conn.becomePassword = bp;
  const jump = str('jump');
  if (jump) conn.jump = jump;
  else {
    // ansible_ssh_common_args / ansible_ssh_extra_args: only a jump host is understood
    for (const key of CONN_KEYS.ssh_args) {
      const g = layer.vars[key] == null ? undefined : { v: layer.vars[key], key, pos: layer.pos.get(key) ?? hostPos };
      if (!g) continue;
      if (typeof g.v !== 'string') {
        bad(g, 'a string of ssh options');
        continue;
      }
      let text = g.v;
      if (containsTemplate(text)) {
        try {
          text = String(render(text, ctx, g.pos));
        } catch (e) {
          errs.push(e);
          continue;
        }
      }
      const r = jumpFromSshArgs(text);
      if (r.error) errs.add(`host '${name}': ${key}: ${r.error}`, g.pos, 'passthru understands -J host, -o ProxyJump=host and -o ProxyCommand="ssh -W %h:%p [-p port] [user@]host"; other ssh options are not used');
      else if (r.jump) {
        conn.jump = r.jump;
        break;
      }
    }
  }
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

