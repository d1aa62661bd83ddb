/**
 * Playbooks and roles: YAML → validated, typed model (src/model/types.ts), with every error
 * at its `file:line:col` and a hint. All errors of a load are collected and thrown together
 * (ConfigErrors), so a user fixes a playbook in one pass.
 *
 * Playbook: a list of stages (keys below in STAGE_KEYS), each applying role references
 * (ROLE_REF_KEYS). Roles (./roles.ts, their task files ./tasks.ts) are looked up in
 * `opts.roleDirs`, then `<playbook dir>/roles`, then `<playbook dir>/../roles`. Extra variables
 * (`-e`) are read by ./extra-vars.ts.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isMap, isScalar, isSeq } from 'yaml';
import type { GuestPolicy, Playbook, Pos, RebootPolicy, Role, RoleRef, Stage } from '../model/types.ts';
import type { Module } from '../modules/contract.ts';
import type { OptionSpec } from '../spec/types.ts';
import { listRoles, loadFile, loadRole } from './roles.ts';
import { keepRole, readRole, roleKey, type RoleCache } from './role-cache.ts';
import { describeNode, Errors, getBool, getChoice, getInt, getString, getStringList, getVars, isNull, mapEntries, suggest, type Entry, type YamlFile, type YNode } from './yaml.ts';

export { loadExtraVars } from './extra-vars.ts';

export interface LoadOptions {
  modules: Map<string, Module>;
  roleDirs?: string[];
  /** Roles loaded before, kept as JSON (role-cache.ts): the CLI passes installedRoleCache(). */
  cache?: RoleCache;
}

const STAGE_KEYS = [
  'name',
  'hosts',
  'roles',
  'vars',
  'serial',
  'max_fail_percentage',
  'any_errors_fatal',
  'reboot',
  'reboot_timeout',
  'guests',
  'ha_maintenance',
  'max_down_per_cluster',
  'tags',
] as const;
const ROLE_REF_KEYS = ['role', 'vars', 'tags'] as const;

/** What each stage key holds (the editor schema, schemas/playbook.json, is made from this). */
export const STAGE_OPTIONS: Record<(typeof STAGE_KEYS)[number], OptionSpec> = {
  name: { type: 'str', description: 'What the stage does (shown in the report).' },
  hosts: { type: 'list', elements: 'str', required: true, description: "The hosts: a group, a host, 'all', a pattern, or a list of them." },
  roles: { type: 'list', elements: 'raw', required: true, description: 'The roles to apply, in order: a role name, or a map with role:, vars: and tags:.' },
  vars: { type: 'dict', description: 'Variables of this stage (above the inventory, below role reference vars and -e).' },
  serial: { type: 'list', elements: 'raw', description: 'Hosts per batch: a number, a percentage like "30%", or a list of them (batch sizes in turn).' },
  max_fail_percentage: { type: 'float', min: 0, max: 100, description: 'Stop the stage when more than this percentage of a batch failed.' },
  any_errors_fatal: { type: 'bool', default: false, description: 'Stop the whole run when one host fails.' },
  reboot: { type: 'str', default: 'if-needed', choices: ['never', 'if-needed', 'always'], description: 'Reboot hosts at the end of the stage.' },
  reboot_timeout: { type: 'int', default: 600, min: 1, description: 'Seconds a rebooting host has to come back.' },
  guests: { type: 'str', default: 'refuse', choices: ['refuse', 'shutdown', 'ignore'], description: 'Running guests on a host to reboot: refuse the reboot, shut them down first, or ignore them.' },
  ha_maintenance: { type: 'bool', default: false, description: 'Put a host in HA maintenance mode around its reboot.' },
  max_down_per_cluster: { type: 'int', default: 1, min: 1, description: 'Most members of one cluster rebooting at a time.' },
  tags: { type: 'list', elements: 'str', description: "Tags added to each of the stage's role references." },
};

/** What each key of a role reference holds. */
export const ROLE_REF_OPTIONS: Record<(typeof ROLE_REF_KEYS)[number], OptionSpec> = {
  role: { type: 'str', required: true, description: 'The role: a folder roles/<name>/.' },
  vars: { type: 'dict', description: "Variables for this role reference (above the stage's, below -e)." },
  tags: { type: 'list', elements: 'str', description: "Tags of the role's tasks, for --tags and --skip-tags." },
};
// ---------------------------------------------------------------- stages

function parseSerial(yf: YamlFile, e: Entry, errs: Errors): Array<number | string> | undefined {
  const one = (node: YNode, pos: Pos): number | string | undefined => {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v === 'number' && Number.isInteger(v) && v >= 1) return v;
    if (typeof v === 'string' && /^\d+(\.\d+)?%$/.test(v.trim()) && parseFloat(v) > 0 && parseFloat(v) <= 100) return v.trim();
    if (typeof v === 'string' && /^\d+$/.test(v.trim()) && Number(v) >= 1) return Number(v);
    errs.add(`'serial' must be a number of hosts (1 or more), a percentage like "30%", or a list of them; found ${describeNode(node)}`, pos);
    return undefined;
  };
  if (isSeq(e.node)) {
    const out = (e.node.items as YNode[]).map((n) => one(n, yf.pos(n, e.pos)));
    if (!out.length) errs.add("'serial' must not be an empty list", e.pos);
    return out.every((x) => x !== undefined) && out.length ? (out as Array<number | string>) : undefined;
  }
  const v = one(e.node, e.pos);
  return v === undefined ? undefined : [v];
}

function parseRoleRef(yf: YamlFile, node: YNode, errs: Errors, stageTags: string[]): RoleRef | undefined {
  const pos = yf.pos(node);
  if (isScalar(node) && typeof node.value === 'string' && node.value.trim()) {
    return { name: node.value.trim(), vars: {}, tags: [...stageTags], pos };
  }
  if (!isMap(node)) {
    errs.add(`a role reference must be a role name or a map with 'role:', found ${describeNode(node)}`, pos);
    return undefined;
  }
  const entries = mapEntries(yf, node, errs, 'a role reference', {
    allowed: ROLE_REF_KEYS,
    allowedHint: 'a role reference holds role:, vars: and tags: (role variables go under vars:)',
  });
  if (!entries) return undefined;
  const ref: RoleRef = { name: '', vars: {}, tags: [], pos };
  for (const e of entries) {
    if (e.key === 'role') {
      const s = getString(yf, e, errs);
      if (s !== undefined) {
        ref.name = s.trim();
        ref.pos = e.pos;
      }
    } else if (e.key === 'vars') ref.vars = getVars(yf, e.node, errs, 'role reference vars', e.pos) ?? {};
    else if (e.key === 'tags') ref.tags = getStringList(yf, e, errs) ?? [];
  }
  if (!entries.some((e) => e.key === 'role')) {
    errs.add("a role reference needs 'role:'", pos, 'e.g. `- role: vfio`');
    return undefined;
  }
  if (!ref.name) return undefined;
  ref.tags = [...new Set([...ref.tags, ...stageTags])];
  return ref;
}

function parseStage(yf: YamlFile, node: YNode, index: number, errs: Errors): Stage | undefined {
  const pos = yf.pos(node);
  if (!isMap(node)) {
    errs.add(`stage ${index + 1} must be a map (name:, hosts:, roles:), found ${describeNode(node)}`, pos);
    return undefined;
  }
  const entries = mapEntries(yf, node, errs, 'a stage', { allowed: STAGE_KEYS });
  if (!entries) return undefined;
  const stage: Stage = {
    name: '',
    hosts: '',
    roles: [],
    vars: {},
    anyErrorsFatal: false,
    reboot: 'if-needed',
    rebootTimeoutS: 600,
    guestPolicy: 'refuse',
    haMaintenance: false,
    maxDownPerCluster: 1,
    pos,
  };
  const by = new Map(entries.map((e) => [e.key, e]));
  const stageTags = by.has('tags') ? (getStringList(yf, by.get('tags')!, errs) ?? []) : [];
  for (const e of entries) {
    switch (e.key) {
      case 'name':
        stage.name = getString(yf, e, errs) ?? '';
        break;
      case 'hosts':
        if (isSeq(e.node)) stage.hosts = (getStringList(yf, e, errs) ?? []).join(',');
        else stage.hosts = getString(yf, e, errs) ?? '';
        if (!stage.hosts.trim() && !errs.list.some((x) => x.pos === e.pos)) errs.add("'hosts' must not be empty", e.pos, "use a group, a host, or 'all'");
        break;
      case 'roles':
        if (isNull(e.node)) break;
        if (!isSeq(e.node)) {
          errs.add(`'roles' must be a list, found ${describeNode(e.node)}`, e.pos, 'write each role as `- name` on its own line');
          break;
        }
        for (const r of e.node.items as YNode[]) {
          const ref = parseRoleRef(yf, r, errs, stageTags);
          if (ref) stage.roles.push(ref);
        }
        break;
      case 'vars':
        stage.vars = getVars(yf, e.node, errs, 'stage vars', e.pos) ?? {};
        break;
      case 'serial': {
        const s = parseSerial(yf, e, errs);
        if (s) stage.serial = s;
        break;
      }
      case 'max_fail_percentage': {
        const v = isScalar(e.node) ? e.node.value : undefined;
        if (typeof v === 'number' && v >= 0 && v <= 100) stage.maxFailPercentage = v;
        else errs.add(`'max_fail_percentage' must be a number from 0 to 100, found ${describeNode(e.node)}`, e.pos);
        break;
      }
      case 'any_errors_fatal':
        stage.anyErrorsFatal = getBool(yf, e, errs) ?? false;
        break;
      case 'reboot':
        stage.reboot = getChoice<RebootPolicy>(yf, e, errs, ['never', 'if-needed', 'always']) ?? stage.reboot;
        break;
      case 'reboot_timeout':
        stage.rebootTimeoutS = getInt(yf, e, errs, { min: 1 }) ?? stage.rebootTimeoutS;
        break;
      case 'guests':
        stage.guestPolicy = getChoice<GuestPolicy>(yf, e, errs, ['refuse', 'shutdown', 'ignore']) ?? stage.guestPolicy;
        break;
      case 'ha_maintenance':
        stage.haMaintenance = getBool(yf, e, errs) ?? false;
        break;
      case 'max_down_per_cluster':
        stage.maxDownPerCluster = getInt(yf, e, errs, { min: 1 }) ?? stage.maxDownPerCluster;
        break;
      case 'tags':
        break; // read above, applied to each role reference
    }
  }
  if (!by.has('hosts')) errs.add(`stage ${stage.name ? `'${stage.name}'` : index + 1} has no 'hosts'`, pos, "add `hosts: <pattern>` (a group, a host, or 'all')");
  if (!by.has('roles')) errs.add(`stage ${stage.name ? `'${stage.name}'` : index + 1} has no 'roles'`, pos, 'add `roles:` with the roles to apply');
  if (!stage.name) stage.name = stage.hosts ? `stage ${index + 1} (${stage.hosts})` : `stage ${index + 1}`;
  return stage;
}

// ---------------------------------------------------------------- playbook

/**
 * A role from the cache when its files are as when it was kept; else loaded, and kept when it
 * loaded without an error and its files did not change while it loaded.
 */
async function loadRoleKept(name: string, dir: string, refPos: Pos, opts: LoadOptions, errs: Errors): Promise<Role> {
  const key = opts.cache && roleKey(opts.cache, dir);
  const kept = key ? readRole(opts.cache!, key) : undefined;
  if (kept && kept.name === name) return kept;
  const before = errs.list.length;
  const role = await loadRole(name, dir, refPos, opts.modules, errs);
  if (key && errs.list.length === before && roleKey(opts.cache!, dir) === key) keepRole(opts.cache!, key, role);
  return role;
}

export async function loadPlaybook(path: string, opts: LoadOptions): Promise<Playbook> {
  const errs = new Errors();
  const yf = await loadFile(path, errs);
  errs.throwIfAny();
  const pbDir = dirname(resolve(path));
  const roleDirs = [...(opts.roleDirs ?? []).map((d) => resolve(d)), join(pbDir, 'roles'), resolve(pbDir, '..', 'roles')];
  const pb: Playbook = { file: path, stages: [], roles: new Map() };
  const root = yf!.root;
  if (isNull(root)) {
    errs.add('the playbook is empty', { file: path, line: 1, col: 1 }, 'a playbook is a list of stages: `- name: ...` with hosts: and roles:');
  } else if (!isSeq(root)) {
    errs.add(`a playbook must be a list of stages, found ${describeNode(root)}`, yf!.pos(root), 'start each stage with `- name: ...`');
  } else {
    (root.items as YNode[]).forEach((item, i) => {
      const s = parseStage(yf!, item, i, errs);
      if (s) pb.stages.push(s);
    });
  }
  let available: string[] | undefined;
  for (const stage of pb.stages) {
    for (const ref of stage.roles) {
      if (pb.roles.has(ref.name)) continue;
      const dir = roleDirs.map((d) => join(d, ref.name)).find((d) => existsSync(d) && statSync(d).isDirectory());
      if (!dir) {
        available ??= listRoles(roleDirs);
        const near = suggest(ref.name, available);
        errs.add(
          `unknown role '${ref.name}'`,
          ref.pos,
          near ? `did you mean '${near}'?` : available.length ? `roles: ${available.join(', ')}` : `no roles found in ${roleDirs.join(', ')}`,
        );
        continue;
      }
      pb.roles.set(ref.name, await loadRoleKept(ref.name, dir, ref.pos, opts, errs));
    }
  }
  errs.throwIfAny();
  return pb;
}
