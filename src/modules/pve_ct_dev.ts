/**
 * pve_ct_dev: a Proxmox VE container gets a PCI function's DRM node (the iGPU's render node by
 * default), chosen through `/dev/dri/by-path/pci-<address>-render` with the major:minor and group
 * the node reports (facts `dri`), never assumed. See src/passthrough/lxc-dev.ts for the two forms:
 * `devN` through `pct set` (pve-container 5.0.7+, so Proxmox validates it; compared with the
 * config file, pending changes applied), else the `lxc.cgroup2.devices.allow` + `lxc.mount.entry`
 * lines written into `/etc/pve/lxc/<id>.conf` (pct cannot set `lxc.*` keys).
 *
 * A running container, as pct does it: a new `devN` is hot-plugged (pve-container
 * vmconfig_hotplug_pending); a changed `devN` waits as a pending change, and raw `lxc.*` lines take
 * effect at the next start. Those two are refused unless `pending: allow`.
 *
 * Refusals, before anything changes: not Proxmox VE (or older than 7), no such container, no DRM
 * node for the slot (with what the slot's driver is and the nodes there are), no free devN.
 */
import { createHash } from 'node:crypto';
import { configText, effectiveConfig, parseGuestConfig } from '../facts/guests.ts';
import { fullFunction } from '../passthrough/selection.ts';
import type { Facts } from '../facts/types.ts';
import { shq } from '../model/shell.ts';
import { devKeyFor, devMethod, devSatisfies, devValue, driNodeFor, freeDevKey, lxcLines, lxcSatisfied, withLxcLines } from '../passthrough/lxc-dev.ts';
import type { ArgumentSpec, InferArgs, Module, Plan, PlanContext, Read } from './contract.ts';

const pveCtDevSpec = {
  options: {
    ctid: { type: 'int', required: true, description: 'container id (100-999999999)' },
    slot: { type: 'str', required: true, description: 'PCI function whose DRM node the container gets (00:02.0 or 0000:00:02.0)' },
    node: { type: 'str', default: 'render', choices: ['render', 'card'], description: 'its render node (renderD*, for VA-API/QSV transcoding) or its card node (card*, display)' },
    gid: { type: 'int', default: null, description: 'gid of the device node in the container; null = the gid of the group that owns the node on the host' },
    mode: { type: 'str', default: '', description: 'access mode of the device node in the container (0660); empty = pct\'s default' },
    method: { type: 'str', default: 'auto', choices: ['auto', 'dev', 'lxc'], description: 'auto (devN where pve-container has it, 5.0.7+ / Proxmox VE 8.2+ when unknown), dev, or lxc (raw lxc.* lines)' },
    pending: { type: 'str', default: 'refuse', choices: ['refuse', 'allow'], description: 'a running container whose change would wait for its next start: refuse, or let it wait' },
  },
} as const satisfies ArgumentSpec;
export type PveCtDevArgs = InferArgs<typeof pveCtDevSpec>;

const confPath = (id: number | string) => `/etc/pve/lxc/${id}.conf`;


/** Why a slot has no DRM node, in words: the slot's driver, and the DRM nodes the node has. */
function noNodeMsg(facts: Facts, addr: string, kind: string): { msg: string; hint: string } {
  const fn = facts.pci.find((p) => p.address === addr);
  const nodes = facts.dri.map((d) => `${d.name}${d.pciAddress ? ` (${d.pciAddress})` : ''}`).join(', ') || 'none';
  const found = !fn ? `no PCI function ${addr}` : `${addr} (${fn.name}) on driver ${fn.driver ?? 'none'}`;
  const hint = !fn
    ? 'check igpu_slot (lspci -D lists the functions; the iGPU is usually 00:02.0). Nothing was changed.'
    : fn.driver === 'vfio-pci'
      ? 'the iGPU is bound to vfio-pci, so the host has no DRM node for it: take it out of passthrough_slots / vfio_ids, undo the binding and reboot. Nothing was changed.'
      : `its DRM driver (i915, xe, amdgpu) must be loaded and bound: check lsmod, the blacklists in /etc/modprobe.d and the kernel log. Nothing was changed.`;
  return { msg: `expected a ${kind} node in /dev/dri/by-path for ${addr} on ${facts.hostname}, found ${found}; DRM nodes: ${nodes}`, hint };
}

export function planCtDev(a: PveCtDevArgs, facts: Facts, raw: { exists: boolean; content: string }, host = facts.hostname): Plan {
  const id = String(a.ctid);
  const path = confPath(id);
  if (facts.pveVersion === null) return { kind: 'fail', msg: `expected a Proxmox VE node, found no pveversion on ${host}`, hint: 'pve_ct_dev runs on Proxmox VE nodes' };
  const auto = devMethod(facts);
  if (!auto) return { kind: 'fail', msg: `expected Proxmox VE 7 or later (cgroup v2) on ${host}, found ${facts.pveVersion}`, hint: 'upgrade the node; Proxmox VE 6 needs lxc.cgroup.devices.allow lines by hand. Nothing was changed.' };
  const method = a.method === 'auto' ? auto : a.method;
  if (method === 'dev' && auto !== 'dev')
    return { kind: 'fail', msg: `expected pve-container 5.0.7 or later for devN on ${host}, found ${facts.packages['pve-container'] ?? 'unknown'} (Proxmox VE ${facts.pveVersion})`, hint: 'use lxc_dev_method: lxc (or auto) on this node, or upgrade it. Nothing was changed.' };
  if (!raw.exists) return { kind: 'fail', msg: `expected container ${id} on ${host}, found no ${path}`, hint: `create the container first, or fix lxc_id (pct list shows the containers of this node). Nothing was changed.` };
  const addr = fullFunction(a.slot);
  if (!addr) return { kind: 'fail', msg: `expected a PCI function address (00:02.0), found '${a.slot}'`, hint: 'a DRM node belongs to one function: give the function (00:02.0)' };
  const kind = a.node === 'card' ? 'card' : 'render';
  const node = driNodeFor(facts.dri, addr, kind);
  if (!node) return { kind: 'fail', ...noNodeMsg(facts, addr, kind) };
  const gid = a.gid ?? node.gid;
  const want = { path: node.path, alsoPath: node.byPath, gid, mode: a.mode || null };
  const cur = parseGuestConfig(raw.content, 'pct', path);
  const eff = effectiveConfig(cur);
  const running = facts.guests.some((g) => g.kind === 'pct' && g.id === id && g.status === 'running');
  const data = { ctid: id, method, path: node.path, byPath: node.byPath, major: node.major, minor: node.minor, gid, group: node.group };

  if (method === 'dev') {
    const key = devKeyFor(eff, node);
    if (key && devSatisfies(eff[key]!, want)) return { kind: 'noop', reason: `container ${id}: ${key} ${eff[key]} (${node.byPath ?? addr}, ${node.major}:${node.minor})`, data: { ...data, key } };
    const newKey = key ?? freeDevKey(cur.config, cur.pending);
    if (!newKey) return { kind: 'fail', msg: `expected a free devN (dev0-dev255) in container ${id}, found all used`, hint: 'remove a device entry. Nothing was changed.' };
    const value = devValue(want);
    // pct: a new devN is hot-plugged into a running container; a changed one waits for its next start
    const waits = running && !!key && newKey in cur.config;
    if (waits && a.pending !== 'allow')
      return {
        kind: 'fail',
        msg: `container ${id} is running: ${newKey} would change from '${eff[newKey]}' to '${value}', which pct applies only at its next start`,
        hint: 'restart the container after the run (set lxc_apply_pending: true to let the change wait), or stop it first. Nothing was changed.',
      };
    const after = { ...eff, [newKey]: value };
    const cmd = `pct set ${shq(id)} --${newKey} ${shq(value)} --digest ${cur.digest}`;
    return {
      kind: 'change',
      msg: `container ${id}: ${newKey} ${value} (${node.byPath ?? addr}, ${node.major}:${node.minor})${waits ? ' (pending until its next start)' : running ? ' (hot-plugged into the running container)' : ''}`,
      diff: [{ path, before: configText(eff), after: configText(after) }],
      actions: [{ kind: 'exec', command: cmd }],
      data: { ...data, key: newKey, pending: waits },
    };
  }

  const sat = lxcSatisfied(cur.lxc, node);
  if (sat.allow && sat.mount) return { kind: 'noop', reason: `container ${id}: lxc.cgroup2.devices.allow c ${node.major}:${node.minor} and a bind mount of ${node.path}`, data };
  const lines = lxcLines(node).filter(([k]) => (k === 'lxc.cgroup2.devices.allow' ? !sat.allow : !sat.mount));
  if (running && a.pending !== 'allow')
    return {
      kind: 'fail',
      msg: `container ${id} is running: ${lines.map(([k, v]) => `${k}: ${v}`).join('; ')} would take effect only at its next start`,
      hint: 'restart the container after the run (set lxc_apply_pending: true to let the change wait), or stop it first. Nothing was changed.',
    };
  // pct refuses to change a locked container (backup, snapshot, migrate): so does this write.
  if (cur.config.lock) return { kind: 'fail', msg: `container ${id} is locked (lock: ${cur.config.lock})`, hint: `wait for the ${cur.config.lock} to finish (or \`pct unlock ${id}\` if it is stale), then run again. Nothing was changed.` };
  const after = withLxcLines(raw.content, lines);
  return {
    kind: 'change',
    msg: `container ${id}: ${lines.map(([k, v]) => `${k}: ${v}`).join('; ')}${running ? ' (at its next start)' : ''}`,
    diff: [{ path, before: raw.content, after }],
    // pct cannot set lxc.* keys: the file is written, under pct's own config lock and only if it
    // still is what this plan was made from (an edit made meanwhile is never overwritten).
    actions: [{ kind: 'write', path, content: after, expectSha256: createHash('sha256').update(raw.content).digest('hex'), lockFile: `/run/lock/lxc/pve-config-${id}.lock` }],
    data: { ...data, pending: running },
  };
}

export const pveCtDevModule: Module<PveCtDevArgs> = {
  name: 'pve_ct_dev',
  doc: "A Proxmox VE container gets a PCI function's DRM node (render node by default), found through /dev/dri/by-path with the node's own major:minor and group: `devN: PATH,gid=G` through `pct set` where pve-container has it (5.0.7+), else the `lxc.cgroup2.devices.allow` and `lxc.mount.entry` lines in the config file. Compared with the config (pending applied) for idempotence. A running container: a new devN is hot-plugged as pct does; a change that waits for its next start is refused unless `pending: allow`. Refuses (changing nothing) when the container or the DRM node is missing.",
  spec: pveCtDevSpec,
  validate(a) {
    if (!Number.isInteger(a.ctid) || a.ctid < 100 || a.ctid > 999999999) return `ctid must be a whole number from 100 to 999999999, got ${a.ctid}`;
    if (!fullFunction(a.slot ?? '')) return `slot must be a PCI function address (00:02.0 or 0000:00:02.0), got '${a.slot}'`;
    if (a.gid !== null && a.gid !== undefined && (!Number.isInteger(a.gid) || a.gid < 0 || a.gid > 4294967294)) return `gid must be a whole number from 0 to 4294967294, got ${a.gid}`;
    if (a.mode && !/^0[0-7]{3}$/.test(a.mode)) return `mode must be an octal mode of 4 digits (0660), got '${a.mode}'`;
    return undefined;
  },
  reads(a): Read[] {
    return [{ kind: 'file', path: confPath(a.ctid) }];
  },
  async plan(a, ctx: PlanContext): Promise<Plan> {
    const f = await ctx.observe.file(confPath(a.ctid));
    return planCtDev(a, ctx.facts, f, ctx.host);
  },
};
