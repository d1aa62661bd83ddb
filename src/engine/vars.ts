/**
 * Variable layering for one task, lowest precedence first:
 * role defaults < inventory (group vars all < parent < child, then host vars) < stage vars
 * < role-ref vars < registered results < extra vars. `facts`, `inventory_hostname`,
 * `group_names`, `groups` and `ansible_check_mode` are always present and cannot be overridden by
 * inventory.
 */
import type { Host, Inventory, Role, RoleRef, Stage, Vars } from '../model/types.ts';
import type { Facts } from '../facts/types.ts';
import { ConfigError } from '../model/errors.ts';
import { containsTemplate, isSecretName, render, TemplateError } from '../template/index.ts';

export interface VarLayers {
  role?: Role;
  ref?: RoleRef;
  stage: Stage;
  host: Host;
  inventory: Inventory;
  facts: Facts | null;
  registered: Vars;
  extra: Vars;
  /** The run is `check`: exposed as Ansible's magic variable `ansible_check_mode`. */
  check?: boolean;
}

/**
 * `groups` and `hostvars` of an inventory: the same for every task of every host, so made once
 * per inventory (building them per task made a run's work grow with hosts × hosts). Shared,
 * frozen: a template reads them and never writes.
 */
const perInventory = new WeakMap<Inventory, { groups: Record<string, string[]>; hostvars: Record<string, Vars> }>();
function inventoryVars(inv: Inventory): { groups: Record<string, string[]>; hostvars: Record<string, Vars> } {
  let v = perInventory.get(inv);
  if (!v) {
    const groups: Record<string, string[]> = {};
    for (const [name] of inv.groups) groups[name] = Object.freeze(groupMembers(inv, name)) as string[];
    groups.all ??= Object.freeze([...inv.hosts.keys()]) as string[];
    v = { groups: Object.freeze(groups), hostvars: Object.freeze(Object.fromEntries([...inv.hosts].map(([n, h]) => [n, h.vars]))) };
    perInventory.set(inv, v);
  }
  return v;
}

export function taskVars(l: VarLayers): Vars {
  const { groups, hostvars } = inventoryVars(l.inventory);
  const written: Vars = {
    ...(l.role?.defaults ?? {}),
    ...l.host.vars,
    ...l.stage.vars,
    ...(l.ref?.vars ?? {}),
  };
  const vars: Vars = {
    ...written,
    ...l.registered,
    ...l.extra,
    facts: l.facts ?? {},
    inventory_hostname: l.host.name,
    group_names: l.host.groups.filter((g) => g !== 'all'),
    groups,
    ansible_check_mode: l.check === true,
    // Every host's inventory variables (not its facts), as Ansible's hostvars: what a role that acts
    // once for a cluster (pci-mapping) needs to know of the other members.
    hostvars,
  };
  // Values written in YAML (defaults, inventory, stage, role reference, -e) may hold templates
  // themselves: render them when first used, as Ansible does, with the final variables.
  for (const [k, v] of Object.entries({ ...written, ...l.extra })) {
    if (vars[k] === v && containsTemplate(v)) lazy(vars, k, v);
  }
  return vars;
}

function lazy(vars: Vars, key: string, raw: unknown): void {
  let state: 'raw' | 'busy' | 'done' = 'raw';
  let value: unknown;
  Object.defineProperty(vars, key, {
    enumerable: true,
    configurable: true,
    get() {
      if (state === 'done') return value;
      if (state === 'busy') throw new TemplateError(`variable '${key}' refers to itself`, undefined, 'a variable cannot be defined from its own value');
      state = 'busy';
      try {
        value = render(raw, vars);
      } catch (e) {
        state = 'raw';
        if (e instanceof ConfigError && isSecretName(key)) throw new TemplateError(`in variable '${key}': the template does not render (not shown: a secret)`, e.pos, 'check the {{ }} in that value');
        if (e instanceof ConfigError) throw new TemplateError(`in variable '${key}': ${e.message}`, e.pos, () => e.hint);
        throw e;
      }
      state = 'done';
      return value;
    },
  });
}

/** Hosts of a group, its children included, in inventory order. */
export function groupMembers(inv: Inventory, group: string): string[] {
  const seen = new Set<string>();
  const members = new Set<string>();
  const walk = (g: string): void => {
    if (seen.has(g)) return;
    seen.add(g);
    const grp = inv.groups.get(g);
    if (!grp) return;
    for (const h of grp.hosts) members.add(h);
    for (const c of grp.children) walk(c);
  };
  walk(group);
  return [...inv.hosts.keys()].filter((h) => members.has(h));
}
