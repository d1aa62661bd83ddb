/**
 * pve_vm: a Proxmox VE VM's configuration options, set through `qm set` (so Proxmox validates
 * them) and compared with the VM's config file (`/etc/pve/qemu-server/<vmid>.conf`, pending
 * changes applied, as `qm config` shows it) for idempotence. Property strings compare by their
 * keys, not their order. A disk option given as `STORAGE:SIZE` (a new volume, e.g. the EFI
 * disk `local-lvm:1,efitype=4m`) is satisfied by any existing volume of that option.
 *
 * Refusals, before anything changes: the VM is running and changes are not allowed to wait for
 * its next start (`pending: refuse`, the default); a device it is to get is not bound to
 * vfio-pci on this node; another VM that starts on boot uses the same device or mapping while
 * this one starts on boot too; hugepages asked for that the host has not reserved (free).
 */
import { configText, effectiveConfig, hostpciOf, parseGuestConfig, parsePropertyString, slotOf, type GuestConfig } from '../facts/guests.ts';
import { fullFunction } from '../passthrough/selection.ts';
import type { Facts } from '../facts/types.ts';
import { shq } from '../model/shell.ts';
import type { Module, Plan, PlanContext, Read, ArgumentSpec, InferArgs } from './contract.ts';

const pveVmSpec = {
  options: {
    vmid: { type: 'int', required: true, description: 'VM id (100-999999999)' },
    options: { type: 'dict', default: {}, description: 'option → value (`machine: q35`, `hostpci0: mapping=gpu,pcie=1`); null or empty skips the option' },
    delete: { type: 'list', elements: 'str', default: [], description: 'options to remove' },
    create: { type: 'bool', default: false, description: 'create the VM when it does not exist' },
    create_options: { type: 'dict', default: {}, description: 'options of a new VM besides `options` (name, memory, ostype, disks)' },
    pending: { type: 'str', default: 'refuse', choices: ['refuse', 'allow'], description: 'a running VM: refuse, or let changes wait for its next start (Proxmox pending changes)' },
    devices: { type: 'list', elements: 'str', default: [], description: 'PCI addresses (slots or functions) that must be bound to vfio-pci on this node' },
    exclusive: { type: 'bool', default: true, description: 'refuse when another onboot VM uses the same device or mapping' },
  },
} as const satisfies ArgumentSpec;
export type PveVmArgs = InferArgs<typeof pveVmSpec>;

const DEFAULT_KEY: Record<string, string> = { cpu: 'cputype', efidisk0: 'file', tpmstate0: 'file', machine: 'type', vga: 'type', net0: 'model' };
const defaultKey = (k: string) => (/^hostpci\d+$/.test(k) || /^usb\d+$/.test(k) ? 'host' : DEFAULT_KEY[k]);

/** One option's wanted value as a string (true → 1). */
export function optString(v: unknown): string {
  if (typeof v === 'boolean') return v ? '1' : '0';
  return String(v);
}

/** Whether the current value satisfies the wanted one. */
export function optSatisfied(key: string, want: string, have: string | undefined): boolean {
  if (have === undefined) return false;
  if (want === have) return true;
  const dk = defaultKey(key);
  const w = parsePropertyString(want, dk ?? 'value');
  const h = parsePropertyString(have, dk ?? 'value');
  // a new volume (STORAGE:SIZE) is satisfied by the volume it created
  if (dk === 'file' && /^[a-z][a-z0-9_.-]*:\d+(\.\d+)?$/i.test(w.file ?? '')) {
    const storage = (w.file ?? '').split(':')[0];
    if (!(h.file ?? '').startsWith(`${storage}:`)) return false;
    delete w.file;
    delete h.file;
    delete h.size;
  }
  const keys = new Set([...Object.keys(w), ...Object.keys(h)]);
  for (const k of keys) if (normBool(w[k]) !== normBool(h[k])) return false;
  return true;
}
/** Proxmox's own booleans in guest configs (`1`/`0` as written by qm, yes/on/true as accepted by its parser): not YAML's nor Ansible's, so not src/model/truth.ts. */
const normBool = (v: string | undefined) => (v === undefined ? undefined : /^(1|yes|on|true)$/i.test(v) ? '1' : /^(0|no|off|false)$/i.test(v) ? '0' : v.toLowerCase());


/** The VM's onboot, with wanted options applied. */
const onboot = (c: Record<string, string>) => normBool(c.onboot) === '1';

/** Devices (function addresses, `0000:01:00.0`) and mappings a config uses. */
function uses(c: Record<string, string>): { slots: Set<string>; mappings: Set<string> } {
  const slots = new Set<string>();
  const mappings = new Set<string>();
  for (const h of hostpciOf(c)) {
    if (h.mapping) mappings.add(h.mapping);
    for (const a of h.host ?? []) slots.add(slotOf(a));
  }
  return { slots, mappings };
}

export function planVm(args: PveVmArgs, facts: Facts, raw: { exists: boolean; content: string }, vmPath: string): Plan {
  const id = String(args.vmid);
  const want: Record<string, string> = {};
  for (const [k, v] of Object.entries(args.options ?? {})) if (v !== null && v !== undefined && v !== '') want[k] = optString(v);
  const node = facts.hostname;
  // device binding on this node
  const wantDevs = (args.devices ?? []).map((d) => d.toLowerCase());
  for (const d of wantDevs) {
    const fns = facts.pci.filter((p) => (/\.[0-7]$/.test(d) ? p.address === fullFunction(d) : slotOf(p.address) === slotOf(d)));
    if (!fns.length) return { kind: 'fail', msg: `expected PCI device ${d} on ${node}, found none`, hint: 'check the slot (lspci -D); the facts list the devices this node has' };
    const off = fns.filter((p) => p.driver !== 'vfio-pci');
    if (off.length)
      return {
        kind: 'fail',
        msg: `expected ${off.map((p) => p.address).join(', ')} bound to vfio-pci on ${node}, found ${off.map((p) => p.driver ?? 'no driver').join(', ')}`,
        hint: 'run the host stage first (roles iommu, vfio) and reboot the node; a VM start would take the device from its host driver. Nothing was changed.',
      };
  }
  let cur: GuestConfig | null = raw.exists ? parseGuestConfig(raw.content, 'qm', vmPath) : null;
  if (!cur && !args.create) {
    return { kind: 'fail', msg: `expected VM ${id} on ${node}, found no ${vmPath}`, hint: 'create it (set create: true for a minimal VM) or fix the vmid' };
  }
  const eff = cur ? effectiveConfig(cur) : {};
  const after: Record<string, string> = { ...eff };
  const set: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(want)) {
    if (!optSatisfied(k, v, eff[k])) {
      set.push([k, v]);
      after[k] = v;
    }
  }
  const del = (args.delete ?? []).filter((k) => k in eff);
  for (const k of del) delete after[k];
  // another VM starting on boot with the same device or mapping
  if (args.exclusive) {
    const mine = uses(after);
    const me = onboot(after);
    for (const other of facts.vms.filter((v) => v.id !== id)) {
      const oc = effectiveConfig(other);
      const o = uses(oc);
      const shared = [...[...mine.slots].filter((s) => o.slots.has(s)), ...[...mine.mappings].filter((m) => o.mappings.has(m)).map((m) => `mapping=${m}`)];
      if (shared.length && me && onboot(oc)) {
        return {
          kind: 'fail',
          msg: `VM ${id} and VM ${other.id} (${oc.name ?? ''}) both start on boot and both use ${shared.join(', ')}`,
          hint: `only one of them can start: set onboot 0 on one (vm_onboot: false) or give it another device. Nothing was changed.`,
        };
      }
    }
  }
  // hugepages: the VM's memory must fit in the pages the host has free
  const hp = after.hugepages;
  const running = facts.guests.some((g) => g.kind === 'qm' && g.id === id && g.status === 'running');
  if (hp && hp !== (eff.hugepages ?? '') && !running) {
    const memMb = Number(String(after.memory ?? (cur ? undefined : args.create_options?.memory) ?? '512').replace(/^current=/, ''));
    const sizeKb = hp === '1024' ? 1048576 : hp === '2' ? 2048 : facts.memory.hugepageSizeKb;
    if (hp !== 'any' && facts.memory.hugepageSizeKb !== sizeKb) {
      return { kind: 'fail', msg: `expected the host to reserve ${hp === '1024' ? '1G' : '2M'} hugepages for VM ${id}, found its default size ${facts.memory.hugepageSizeKb} kB`, hint: 'set the host variable hugepages.size to match, or the VM option. Nothing was changed.' };
    }
    const needPages = Math.ceil((memMb * 1024) / sizeKb);
    if (facts.memory.hugepagesFree < needPages) {
      return {
        kind: 'fail',
        msg: `expected ${needPages} free hugepages of ${sizeKb} kB for VM ${id} (${memMb} MB), found ${facts.memory.hugepagesFree} free of ${facts.memory.hugepagesTotal}`,
        hint: 'raise the host variable hugepages.count (the hugepages role reserves them) or lower the VM memory. Nothing was changed.',
      };
    }
  }
  if (!set.length && !del.length && cur) return { kind: 'noop', reason: `VM ${id}: ${Object.keys(want).sort().join(', ') || 'nothing asked'} as wanted`, data: { vmid: id, config: eff } };
  if (cur && running && args.pending !== 'allow') {
    return {
      kind: 'fail',
      msg: `VM ${id} is running: ${[...set.map(([k]) => k), ...del.map((k) => `-${k}`)].join(', ')} would change`,
      hint: 'stop the VM, or set vm_apply_pending: true so the changes wait as pending changes until its next start. Nothing was changed.',
    };
  }
  const before = configText(eff);
  const diff = [{ path: vmPath, before, after: configText(after) }];
  if (!cur) {
    const opts = { ...Object.fromEntries(Object.entries(args.create_options ?? {}).map(([k, v]) => [k, optString(v)])), ...want };
    const cmd = `qm create ${shq(id)} ${Object.entries(opts).map(([k, v]) => `--${shq(k)} ${shq(v)}`).join(' ')}`.trim();
    return { kind: 'change', msg: `create VM ${id}`, diff: [{ path: vmPath, before: '', after: configText(opts) }], actions: [{ kind: 'exec', command: cmd }], data: { vmid: id, created: true } };
  }
  const parts = set.map(([k, v]) => `--${shq(k)} ${shq(v)}`);
  if (del.length) parts.push(`--delete ${shq(del.join(','))}`);
  parts.push(`--digest ${cur.digest}`);
  const cmd = `qm set ${shq(id)} ${parts.join(' ')}`;
  return {
    kind: 'change',
    msg: `VM ${id}: ${[...set.map(([k]) => k), ...del.map((k) => `-${k}`)].join(', ')}${running ? ' (pending until its next start)' : ''}`,
    diff,
    actions: [{ kind: 'exec', command: cmd }],
    data: { vmid: id, set: Object.fromEntries(set), delete: del, pending: running },
  };
}

export const pveVmModule: Module<PveVmArgs> = {
  name: 'pve_vm',
  doc: 'A Proxmox VE VM\'s options through `qm set` (validated by Proxmox), compared with its config file (pending changes applied) for idempotence; property strings compare by key; `STORAGE:SIZE` disks are satisfied by an existing volume. Refuses (changing nothing) when the VM runs and pending changes are not allowed, a device is not on vfio-pci, another onboot VM uses the same device or mapping, or the host has too few free hugepages. `create: true` creates a missing VM.',
  spec: pveVmSpec,
  validate(a) {
    if (!Number.isInteger(a.vmid) || a.vmid < 100 || a.vmid > 999999999) return `vmid must be a whole number from 100 to 999999999, got ${a.vmid}`;
    for (const k of [...Object.keys(a.options ?? {}), ...Object.keys(a.create_options ?? {}), ...(a.delete ?? [])]) {
      if (!/^[a-z][a-z0-9_-]*$/.test(k)) return `option name '${k}' is not a qm option name (lowercase letters, digits, - and _)`;
    }
    return undefined;
  },
  reads(a): Read[] {
    return [{ kind: 'file', path: `/etc/pve/qemu-server/${a.vmid}.conf` }];
  },
  async plan(a, ctx: PlanContext): Promise<Plan> {
    if (ctx.facts.pveVersion === null) return { kind: 'fail', msg: `expected a Proxmox VE node, found no pveversion on ${ctx.host}`, hint: 'pve_vm runs on Proxmox VE nodes' };
    const path = `/etc/pve/qemu-server/${a.vmid}.conf`;
    const f = await ctx.observe.file(path);
    return planVm(a, ctx.facts, f, path);
  },
};
