/**
 * The `ini` inventory plugin: an INI inventory file ([group], [group:vars], [group:children]
 * sections, host lines with key=value variables parsed as Python literals) read into an
 * AnsibleInventory, in the same order and with the same pending-group rules as ansible-core.
 */
import type { Pos } from '../model/types.ts';
import type { Errors } from '../load/yaml.ts';
import { expandHostPattern, HostPatternError } from './hostpattern.ts';
import { literalEval, LiteralUnsupported, shlexSplit, ShlexError } from './pyliteral.ts';
import { RANGE_HINT, type AHost, type AnsibleInventory } from './ansible-data.ts';

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

export function readIni(inv: AnsibleInventory, path: string, text: string): void {
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
