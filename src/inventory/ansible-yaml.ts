/**
 * The `yaml` inventory plugin: a YAML inventory file (groups with hosts:, vars: and children:)
 * read into an AnsibleInventory, with every error placed at its file:line:column.
 */
import { isMap, isScalar, isSeq } from 'yaml';
import type { Pos } from '../model/types.ts';
import { isNull, mapEntries, toJS, type Entry, type YamlFile, type YNode } from '../load/yaml.ts';
import { loadAnsibleYaml } from './yaml11.ts';
import { expandHostPattern, HostPatternError } from './hostpattern.ts';
import { RANGE_HINT, type AHost, type AnsibleInventory } from './ansible-data.ts';

const GROUP_KEYS = ['hosts', 'vars', 'children'] as const;

export async function readYamlSource(inv: AnsibleInventory, path: string): Promise<void> {
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
