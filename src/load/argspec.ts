/**
 * Reading a role's argument spec: `roles/<name>/argument_specs.yaml`, in Ansible's
 * `meta/argument_specs.yml` shape (`argument_specs: { main: { options: … } }`), each option in
 * the language of src/spec/types.ts, every error at its file:line:col. A default must pass its
 * own option.
 *
 * The spec is checked at load against the merged variables of every host a stage targets (role
 * defaults < inventory < stage vars < role reference vars < -e; src/load/hostvars.ts), before
 * any host is contacted; values that are templates are checked when rendered, on the host, by
 * the same checker (src/spec/check.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Pos, RoleArgSpec } from '../model/types.ts';
import { TYPES, type OptionSpec, type OptionType } from '../spec/types.ts';
import { checkValue } from '../spec/check.ts';
import { Errors, loadYamlFile, mapEntries, toJS, type YamlFile, type YNode } from './yaml.ts';

const OPTION_KEYS = ['type', 'description', 'default', 'required', 'elements', 'choices', 'pattern', 'min', 'max', 'options', 'secret', 'multiline', 'version_added', 'aliases'] as const;

// ---------------------------------------------------------------- loading

/** `roles/<name>/argument_specs.yaml` (or `.yml`, or Ansible's `meta/argument_specs.yml`), if any. */
export const ARG_SPEC_FILES = ['argument_specs.yaml', 'argument_specs.yml', 'meta/argument_specs.yaml', 'meta/argument_specs.yml'];

export function argSpecFile(roleDir: string): string | undefined {
  for (const f of ARG_SPEC_FILES) {
    const p = join(roleDir, f);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export async function loadArgSpec(role: string, file: string, errs: Errors): Promise<RoleArgSpec | undefined> {
  let yf: YamlFile;
  try {
    yf = await loadYamlFile(file);
  } catch (e) {
    errs.push(e);
    return undefined;
  }
  const top = mapEntries(yf, yf.root, errs, `argument specs of role '${role}'`, { allowed: ['argument_specs'] });
  const specs = top?.find((e) => e.key === 'argument_specs');
  if (!specs) {
    if (top) errs.add(`argument specs of role '${role}' need a top-level 'argument_specs:' map`, yf.pos(yf.root));
    return undefined;
  }
  const entry = mapEntries(yf, specs.node, errs, 'argument_specs', { allowed: ['main'] })?.find((e) => e.key === 'main');
  if (!entry) {
    errs.add(`argument specs of role '${role}' need an entry point 'main'`, specs.pos);
    return undefined;
  }
  const spec: RoleArgSpec = { role, file, options: {}, pos: new Map() };
  for (const e of mapEntries(yf, entry.node, errs, 'argument_specs.main', { allowed: ['short_description', 'description', 'author', 'options'] }) ?? []) {
    if (e.key === 'short_description') spec.short_description = String(toJS(e.node) ?? '');
    if (e.key === 'options') spec.options = readOptions(yf, e.node, errs, '', spec.pos);
  }
  return spec;
}

function readOptions(yf: YamlFile, node: YNode, errs: Errors, prefix: string, posMap: Map<string, Pos>): Record<string, OptionSpec> {
  const out: Record<string, OptionSpec> = {};
  for (const e of mapEntries(yf, node, errs, `options${prefix ? ` of ${prefix}` : ''}`) ?? []) {
    const name = prefix ? `${prefix}.${e.key}` : e.key;
    posMap.set(name, e.keyPos);
    const opt: Partial<OptionSpec> = {};
    for (const k of mapEntries(yf, e.node, errs, `option '${name}'`, { allowed: OPTION_KEYS }) ?? []) {
      if (k.key === 'options') opt.options = readOptions(yf, k.node, errs, name, posMap);
      else (opt as Record<string, unknown>)[k.key] = toJS(k.node);
    }
    const bad = (msg: string) => errs.add(`option '${name}': ${msg}`, e.keyPos);
    if (!TYPES.includes(opt.type as OptionType)) bad(`type must be one of ${TYPES.join(', ')}`);
    if (opt.elements !== undefined && !TYPES.includes(opt.elements as OptionType)) bad(`elements must be one of ${TYPES.join(', ')}`);
    if (typeof opt.description !== 'string' || !opt.description.trim()) bad('needs a description');
    if (opt.pattern !== undefined) {
      try {
        new RegExp(opt.pattern);
      } catch (x) {
        bad(`pattern is not a regular expression: ${(x as Error).message}`);
      }
    }
    if (opt.choices !== undefined && !Array.isArray(opt.choices)) bad('choices must be a list');
    out[e.key] = opt as OptionSpec;
  }
  // a default must pass its own spec
  for (const [k, o] of Object.entries(out)) {
    if (o.default === undefined || !TYPES.includes(o.type)) continue;
    const p = prefix ? `${prefix}.${k}` : k;
    for (const v of checkValue(o, o.default, p)) errs.add(`option '${p}': its default is invalid: ${v.msg}`, posMap.get(p));
  }
  return out;
}

/** Specs of a role directory; undefined when the role has none. Errors in the spec are ConfigErrors. */
export async function loadRoleArgSpec(role: string, roleDir: string, errs: Errors): Promise<RoleArgSpec | undefined> {
  const f = argSpecFile(roleDir);
  return f ? await loadArgSpec(role, f, errs) : undefined;
}
