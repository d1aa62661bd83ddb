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
 *
 * This module reads the sources (files, directories, host lists); the pieces live beside it:
 * ansible-data.ts (InventoryData and the vars files), ansible-yaml.ts and ansible-ini.ts (the
 * two inventory plugins), ansible-output.ts (what ansible-inventory prints).
 */
import { existsSync, readdirSync, statSync, accessSync, constants as fsc } from 'node:fs';
import { homedir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { isMap } from 'yaml';
import type { Pos } from '../model/types.ts';
import { ConfigError } from '../model/errors.ts';
import { Errors, readTextBounded } from '../load/yaml.ts';
import { loadAnsibleYaml } from './yaml11.ts';
import { parseAddress } from './hostpattern.ts';
import { AnsibleInventory, isHostList } from './ansible-data.ts';
import { readYamlSource } from './ansible-yaml.ts';
import { readIni } from './ansible-ini.ts';

export { AnsibleInventory, findVarsFiles, mergeInto, newLayer, type AGroup, type AHost, type VarLayer } from './ansible-data.ts';
export { graphText, hostJson, listJson, pyJson } from './ansible-output.ts';

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
