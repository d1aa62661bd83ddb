/**
 * pci_mapping: one cluster-wide PCI resource mapping (`/cluster/mapping/pci`, Proxmox VE 8+)
 * whose entries come from each member's hardware for the slot that member chose. It acts once
 * per cluster: of the members that want this mapping (inventory hosts whose `gpu_mapping` names
 * it), the first by node name writes it, on a quorate cluster, reading every member's devices
 * through the API (`pvesh get /nodes/N/hardware/pci`) and writing with `pvesh create`, or
 * `pvesh set --digest` so that an edit made meanwhile is refused rather than overwritten. The
 * other members report who writes it. Entries of nodes it does not manage are kept.
 *
 * pci_mapping_check (read-only, a gate): `pvesh get /cluster/mapping/pci --check-node NODE`
 * reports nothing for the mapping on this node (Proxmox's own start-time check).
 */
import { parsePciMappingCfg, printMapEntry, printPciMappingCfg, slotOf, type PciMapEntry, type PciMapping } from '../facts/guests.ts';
import { shq } from '../model/shell.ts';
import type { Module, Plan, PlanContext, Read, ArgumentSpec, InferArgs } from './contract.ts';

const pciMappingSpec = {
  options: {
    name: { type: 'str', required: true, description: 'mapping id (a Proxmox config id: a letter, then letters, digits, - and _)' },
    members: {
      type: 'list',
      elements: 'dict',
      default: [],
      options: {
        node: { type: 'str', required: true, description: 'the node (inventory host name)' },
        slot: { type: 'str', required: true, description: 'the PCI slot on that node' },
      },
      description: 'explicit members [{node, slot}]; default: inventory hosts whose gpu_mapping is this name',
    },
    description: { type: 'str', default: '', description: 'description of the mapping' },
    standalone: { type: 'bool', default: false, description: 'also on a node that is not in a cluster' },
  },
} as const satisfies ArgumentSpec;
export type PciMappingArgs = InferArgs<typeof pciMappingSpec>;

const MAPFILE = '/etc/pve/mapping/pci.cfg';
const hwCmd = (node: string) => `pvesh get /nodes/${shq(node)}/hardware/pci --pci-class-blacklist '' --output-format json`;

/** Members from the inventory: hosts whose gpu_mapping is this name; node = pve_node or the host name; slot = gpu_mapping_slot or the first passthrough slot. */
export function membersFromInventory(name: string, hostvars: Record<string, Record<string, unknown>>): Array<{ node: string; slot: string; host: string }> {
  const out: Array<{ node: string; slot: string; host: string }> = [];
  for (const [host, v] of Object.entries(hostvars ?? {})) {
    if (v?.gpu_mapping !== name) continue;
    const slot = (typeof v.gpu_mapping_slot === 'string' && v.gpu_mapping_slot) || (Array.isArray(v.passthrough_slots) ? String(v.passthrough_slots[0] ?? '') : '');
    out.push({ host, node: typeof v.pve_node === 'string' && v.pve_node ? v.pve_node : host, slot });
  }
  return out.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

interface HwDev {
  id: string;
  vendor: string;
  device: string;
  subsystem_vendor?: string;
  subsystem_device?: string;
  iommugroup?: number;
}
const x = (s: string | undefined) => (s ?? '').replace(/^0x/i, '').toLowerCase();

/** The entry Proxmox expects for a whole device (`path` = the slot): the attributes of function .0. */
export function entryFor(node: string, slot: string, hw: HwDev[]): Omit<PciMapEntry, 'raw'> | string {
  const s = slotOf(slot);
  const f0 = hw.find((d) => d.id.toLowerCase() === `${s}.0`);
  if (!f0) return `no PCI device ${s}.0 on node ${node} (its devices: ${hw.map((d) => d.id).slice(0, 12).join(', ') || 'none'})`;
  return {
    node,
    path: [s],
    id: `${x(f0.vendor)}:${x(f0.device)}`,
    subsystemId: f0.subsystem_vendor && f0.subsystem_device ? `${x(f0.subsystem_vendor)}:${x(f0.subsystem_device)}` : null,
    iommugroup: typeof f0.iommugroup === 'number' && f0.iommugroup >= 0 ? f0.iommugroup : null,
    description: null,
  };
}

export const pciMappingModule: Module<PciMappingArgs> = {
  name: 'pci_mapping',
  doc: 'One cluster-wide PCI resource mapping built from each member\'s hardware for its chosen slot; written once per cluster by the first member (by node name) that wants it, on a quorate cluster, with `pvesh create` or `pvesh set --digest` (an edit made meanwhile is refused, not overwritten). Entries of other nodes are kept.',
  spec: pciMappingSpec,
  validate(a) {
    if (!/^[a-z][a-z0-9_-]+$/i.test(a.name ?? '')) return `mapping name '${a.name}' is not a Proxmox config id (a letter, then letters, digits, - and _; at least 2 characters)`;
    return undefined;
  },
  reads(a, facts): Read[] {
    return [{ kind: 'file', path: MAPFILE }];
  },
  async plan(a, ctx: PlanContext): Promise<Plan> {
    const f = ctx.facts;
    if (f.pveVersion === null) return { kind: 'fail', msg: `expected a Proxmox VE node, found none on ${ctx.host}`, hint: 'pci_mapping runs on Proxmox VE nodes' };
    if ((f.pveMajor ?? 0) < 8) return { kind: 'fail', msg: `expected Proxmox VE 8 or later for PCI resource mappings, found ${f.pveVersion}`, hint: 'upgrade the node, or pass the device by address (passthrough-vm does when gpu_mapping is unset)' };
    if (!f.cluster.name && !a.standalone) return { kind: 'noop', reason: 'standalone node: no mapping (set pci_mapping_standalone: true to make one anyway)' };
    const all = a.members?.length ? a.members.map((m) => ({ ...m, host: m.node })) : membersFromInventory(a.name, (ctx.vars.hostvars ?? {}) as Record<string, Record<string, unknown>>);
    const known = new Set(f.pveNodes.length ? f.pveNodes : [f.hostname]);
    const members = all.filter((m) => known.has(m.node));
    if (!members.length) return { kind: 'fail', msg: `expected members of mapping '${a.name}' in this cluster (${[...known].join(', ')}), found none`, hint: 'set gpu_mapping on the members (and pve_node when the inventory name is not the node name)' };
    const noSlot = members.filter((m) => !m.slot);
    if (noSlot.length) return { kind: 'fail', msg: `expected a slot for ${noSlot.map((m) => m.node).join(', ')}, found none`, hint: 'set gpu_mapping_slot or passthrough_slots on those hosts' };
    const writer = members[0].node;
    if (f.hostname !== writer) return { kind: 'noop', reason: `mapping '${a.name}' is written once for the cluster, by ${writer}`, data: { writer } };
    if (f.cluster.name && !f.cluster.quorate) return { kind: 'fail', msg: `expected a quorate cluster to write mapping '${a.name}', found ${f.cluster.name} not quorate`, hint: 'the cluster filesystem is read-only without quorum: bring members back. Nothing was changed.' };
    const cfgFile = await ctx.observe.file(MAPFILE);
    const cfg = parsePciMappingCfg(cfgFile.content);
    const existing = cfg.mappings.find((m) => m.id === a.name) ?? null;
    const wanted: PciMapEntry[] = [];
    for (const m of members) {
      const r = await ctx.observe.cmd(hwCmd(m.node));
      let hw: HwDev[];
      try {
        if (r.code !== 0) throw new Error(r.stderr.trim() || `exit ${r.code}`);
        hw = JSON.parse(r.stdout) as HwDev[];
      } catch (e) {
        return { kind: 'fail', msg: `expected the PCI devices of node ${m.node} through the API, found an error: ${(e as Error).message}`, hint: 'the member must be up and in the cluster. Nothing was changed.' };
      }
      const e = entryFor(m.node, m.slot, hw);
      if (typeof e === 'string') return { kind: 'fail', msg: `expected the slot chosen for ${m.node}: ${e}`, hint: 'fix gpu_mapping_slot / passthrough_slots of that host. Nothing was changed.' };
      wanted.push({ ...e, raw: printMapEntry(e) });
    }
    const names = new Set(members.map((m) => m.node));
    const keep = (existing?.map ?? []).filter((e) => !names.has(e.node));
    const nextMap = [...keep, ...wanted];
    const next: PciMapping = {
      id: a.name,
      description: a.description || existing?.description || null,
      mdev: existing?.mdev ?? false,
      liveMigrationCapable: existing?.liveMigrationCapable ?? false,
      map: existing ? orderLike(existing.map, nextMap) : nextMap,
    };
    const same = existing && existing.map.length === next.map.length && existing.map.every((e, i) => e.raw === next.map[i].raw) && (existing.description ?? null) === (next.description ?? null);
    if (same) return { kind: 'noop', reason: `mapping '${a.name}' has ${next.map.map((e) => `${e.node} ${e.path.join(';')}`).join(', ')}`, data: { writer, mapping: next } };
    const after = printPciMappingCfg(existing ? cfg.mappings.map((m) => (m.id === a.name ? next : m)) : [...cfg.mappings, next]);
    const maps = next.map.map((e) => `--map ${shq(e.raw)}`).join(' ');
    const desc = next.description ? ` --description ${shq(next.description)}` : '';
    const cmd = existing
      ? `pvesh set /cluster/mapping/pci/${shq(a.name)} ${maps}${desc} --digest ${cfg.digest}`
      : `pvesh create /cluster/mapping/pci --id ${shq(a.name)} ${maps}${desc}`;
    return {
      kind: 'change',
      msg: `${existing ? 'update' : 'create'} mapping '${a.name}': ${wanted.map((e) => `${e.node} ${e.path.join(';')} ${e.id}`).join(', ')}`,
      diff: [{ path: MAPFILE, before: cfgFile.content, after }],
      actions: [{ kind: 'exec', command: cmd }],
      data: { writer, mapping: next },
    };
  },
};

/** Keep the existing order of nodes; new nodes after them. */
function orderLike(old: PciMapEntry[], next: PciMapEntry[]): PciMapEntry[] {
  const pos = new Map(old.map((e, i) => [e.node, i]));
  return [...next].sort((a, b) => (pos.get(a.node) ?? 1e9) - (pos.get(b.node) ?? 1e9));
}

/** The gate takes the same mapping id as the module that writes the mapping (one declaration of it). */
const pciMappingCheckSpec = { options: { name: pciMappingSpec.options.name } } as const satisfies ArgumentSpec;
export type PciMappingCheckArgs = InferArgs<typeof pciMappingCheckSpec>;

export const pciMappingCheckModule: Module<PciMappingCheckArgs> = {
  name: 'pci_mapping_check',
  doc: 'Gate: `pvesh get /cluster/mapping/pci --check-node NODE` reports no warning or error for the mapping on this node (what Proxmox checks when a VM using it starts).',
  readOnly: true,
  spec: pciMappingCheckSpec,
  reads(): Read[] {
    return [];
  },
  async plan(a, ctx: PlanContext): Promise<Plan> {
    const node = ctx.facts.hostname;
    const r = await ctx.observe.cmd(`pvesh get /cluster/mapping/pci --check-node ${shq(node)} --output-format json`);
    if (r.code !== 0) return { kind: 'fail', msg: `expected the mapping checks of ${node}, found an error: ${r.stderr.trim()}`, hint: 'is this node a Proxmox VE 8+ cluster member?' };
    let list: Array<{ id: string; checks?: Array<{ severity: string; message: string }> }>;
    try {
      list = JSON.parse(r.stdout);
    } catch {
      return { kind: 'fail', msg: `expected JSON from pvesh, found ${r.stdout.slice(0, 200)}`, hint: '' };
    }
    const m = list.find((x) => x.id === a.name);
    if (!m) return { kind: 'fail', msg: `expected mapping '${a.name}' in /cluster/mapping/pci, found ${list.map((x) => x.id).join(', ') || 'none'}`, hint: 'the pci-mapping role creates it' };
    const checks = m.checks ?? [];
    if (checks.length) return { kind: 'fail', msg: `mapping '${a.name}' on ${node}: ${checks.map((c) => `${c.severity}: ${c.message.trim()}`).join('; ')}`, hint: 'the hardware changed or the entry is stale: rerun the pci-mapping role' };
    return { kind: 'noop', reason: `mapping '${a.name}' is valid on ${node} (--check-node reports nothing)` };
  },
};
