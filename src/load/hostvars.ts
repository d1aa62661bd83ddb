/**
 * The load-time check of host variables: for every stage, every host it targets and every role it
 * runs, the variables the role's argument spec describes, merged as the engine will merge them
 * (role defaults < inventory < stage vars < role reference vars < -e), are checked against the
 * spec. Each bad value is reported once, at the file:line:col where it was written, with the hosts
 * it applies to; nothing connects before this passes. Values holding templates are checked when
 * rendered, on the host (engine/host.ts).
 */
import type { Inventory, Playbook, Pos, Stage, Vars } from '../model/types.ts';
import { checkValue, holdsTemplate } from '../spec/check.ts';
import { positionOf } from './positions.ts';
import { Errors } from './yaml.ts';

export interface StageHosts {
  stage: Stage;
  hosts: string[];
}

export function checkHostVars(pb: Playbook, inv: Inventory, extra: Vars, plan: StageHosts[]): void {
  const found = new Map<string, { msg: string; pos?: Pos; hint?: string; hosts: string[]; role: string }>();
  for (const { stage, hosts } of plan) {
    for (const ref of stage.roles) {
      const role = pb.roles.get(ref.name);
      const spec = role?.argSpec;
      if (!role || !spec) continue;
      for (const hn of hosts) {
        const host = inv.hosts.get(hn);
        if (!host) continue;
        const layers: Vars[] = [role.defaults, host.vars, stage.vars, ref.vars, extra];
        for (const [name, o] of Object.entries(spec.options)) {
          let layer: Vars | undefined;
          for (const l of layers) if (Object.prototype.hasOwnProperty.call(l, name)) layer = l;
          if (!layer) continue;
          const v = layer[name];
          if (holdsTemplate(v)) continue;
          for (const bad of checkValue(o, v, name)) {
            const pos = positionOf(layer, bad.path) ?? (layer === host.vars ? host.pos : layer === extra ? undefined : stage.pos);
            const key = `${pos ? `${pos.file}:${pos.line}:${pos.col}` : ''}\0${bad.msg}`;
            const hit = found.get(key);
            if (hit) {
              if (!hit.hosts.includes(hn)) hit.hosts.push(hn);
            } else found.set(key, { msg: bad.msg, pos, hint: bad.hint, hosts: [hn], role: role.name });
          }
        }
      }
    }
  }
  const errs = new Errors();
  for (const f of found.values()) {
    const hosts = f.hosts.length > 3 ? `${f.hosts.slice(0, 3).join(', ')} and ${f.hosts.length - 3} more` : f.hosts.join(', ');
    errs.add(`${f.msg} (host ${hosts}; read by role '${f.role}')`, f.pos, f.hint ?? `the variables of role '${f.role}' are described in roles/${f.role}/argument_specs.yaml and README.md`);
  }
  errs.throwIfAny();
}
