/**
 * Checks of the iGPU given to an LXC container (roles igpu-host and igpu-lxc): the iGPU stays with
 * its host DRM driver and has a render node (preflight, before the container stage changes
 * anything), and the container's config gives exactly the node that the iGPU's stable name
 * resolves to now (gate: card numbering can change between boots, and a config that names
 * `renderD128` then gives the container another device).
 */
import { effectiveConfig } from '../../facts/guests.ts';
import { fullFunction } from '../selection.ts';
import { devKeyFor, devKeys, driNodeFor, lxcSatisfied, parseDev, parseDeviceAllow, parseMountEntry } from '../lxc-dev.ts';
import { normalizeSlot } from '../selection.ts';
import { asList } from '../vars.ts';
import { fail, pass, type CheckInput, type CheckResult } from './check.ts';

const slotVar = (vars: Record<string, unknown>) => String(vars.igpu_slot ?? '00:02.0');
const nodeKind = (vars: Record<string, unknown>) => (vars.lxc_dri_node === 'card' ? 'card' : 'render');

/** The iGPU is on its host DRM driver with a DRM node, and no passthrough variable takes it to vfio-pci. Data: the node. */
export function preflightIgpuHost({ facts: f, vars }: CheckInput): CheckResult {
  const addr = fullFunction(slotVar(vars));
  if (!addr) return fail(`expected igpu_slot to be a PCI function (00:02.0), found '${slotVar(vars)}'`, 'a DRM node belongs to one function');
  const fn = f.pci.find((p) => p.address === addr);
  if (!fn) return fail(`expected the iGPU at ${addr}, found no such PCI function (GPUs: ${f.pci.filter((p) => p.class.startsWith('03')).map((p) => p.address).join(', ') || 'none'})`, 'set igpu_slot to the iGPU\'s function (lspci -D; usually 00:02.0). Nothing was changed.');
  const chosen =
    asList(vars.passthrough_slots).some((s) => {
      const n = normalizeSlot(s);
      return !!n && (n.fn === null ? addr.startsWith(`${n.slot}.`) : addr === `${n.slot}.${n.fn}`);
    }) || asList(vars.vfio_ids).some((id) => id.toLowerCase() === `${fn.vendor}:${fn.device}`.toLowerCase());
  if (chosen) return fail(`expected the iGPU ${addr} to stay with the host, found it chosen for vfio-pci (passthrough_slots / vfio_ids)`, 'a container shares the host\'s driver: take the iGPU out of passthrough_slots and vfio_ids. Nothing was changed.');
  if (fn.driver === 'vfio-pci') return fail(`expected the iGPU ${addr} on its DRM driver, found vfio-pci`, 'undo its vfio binding (passthrough: absent, or remove it from the vfio options) and reboot. Nothing was changed.');
  const node = driNodeFor(f.dri, addr, nodeKind(vars));
  if (!node)
    return fail(
      `expected a ${nodeKind(vars)} node in /dev/dri/by-path for ${addr} (${fn.name}), found ${f.dri.map((d) => `${d.name}${d.pciAddress ? ` (${d.pciAddress})` : ''}`).join(', ') || 'no /dev/dri'}; driver ${fn.driver ?? 'none'}`,
      `load and bind its DRM driver (${fn.vendor === '8086' ? 'i915 or xe' : 'amdgpu'}): check lsmod, the blacklists in /etc/modprobe.d and the kernel log. Nothing was changed.`,
    );
  return pass(`iGPU ${addr} on ${fn.driver ?? 'no driver'}: ${node.byPath ?? node.path} → ${node.path} (${node.major}:${node.minor}, group ${node.group} ${node.gid})`, node);
}

/**
 * The container's config gives the iGPU's DRM node as it is now: a `devN` whose path is the node
 * the by-path name resolves to (with the wanted gid), or the raw lines with its major:minor and a
 * bind mount of its path. An entry for another GPU's node is named in the result, not failed
 * (it may be deliberate, or left from before the numbering changed).
 */
export function gateIgpuLxc({ facts: f, vars }: CheckInput): CheckResult {
  const id = String(vars.lxc_id ?? 0);
  const addr = fullFunction(slotVar(vars));
  if (!addr) return fail(`expected igpu_slot to be a PCI function (00:02.0), found '${slotVar(vars)}'`, 'a DRM node belongs to one function');
  const ct = f.containers.find((c) => c.id === id);
  if (!ct) return fail(`expected container ${id} on ${f.hostname}, found none (${f.containers.map((c) => c.id).join(', ') || 'no containers'})`, 'check lxc_id');
  const node = driNodeFor(f.dri, addr, nodeKind(vars));
  if (!node) return fail(`expected a ${nodeKind(vars)} node for ${addr} on ${f.hostname}, found ${f.dri.map((d) => d.name).join(', ') || 'no /dev/dri'}`, 'the iGPU lost its DRM driver: check lsmod and the kernel log');
  const eff = effectiveConfig(ct);
  const stale: string[] = [];
  // devN entries and mount entries that name a /dev/dri node that is now another device
  for (const k of devKeys(eff)) {
    const p = parseDev(eff[k]!)?.path ?? '';
    const d = f.dri.find((x) => x.path === p);
    if (p.startsWith('/dev/dri/') && d && d.pciAddress && d.pciAddress !== addr && d.name.startsWith(node.name.replace(/\d+$/, ''))) stale.push(`${k} ${p} is now ${d.pciAddress}`);
  }
  const wantGid = vars.lxc_dev_gid === null || vars.lxc_dev_gid === undefined ? node.gid : Number(vars.lxc_dev_gid);
  const dev = devKeyFor(eff, node);
  const sat = lxcSatisfied(ct.lxc, node);
  const data = { ctid: id, path: node.path, byPath: node.byPath, major: node.major, minor: node.minor, gid: node.gid };
  if (dev) {
    const p = parseDev(eff[dev]!)!;
    const gid = p.gid === undefined ? null : Number(p.gid);
    if (gid !== wantGid) return fail(`expected ${dev} of container ${id} with gid=${wantGid}, found '${eff[dev]}'`, 'rerun the igpu-lxc role', data);
    // another GPU's node given too may be deliberate (two GPUs in one container): said, not failed
    const also = stale.length ? `; also ${stale.join('; ')} (another GPU: remove it if that was the iGPU before the numbering changed)` : '';
    return pass(`container ${id}: ${dev} ${eff[dev]}; ${node.byPath ?? addr} → ${node.path} (${node.major}:${node.minor})${dev in ct.pending ? ' (pending until its next start)' : ''}${also}`, { ...data, otherGpus: stale });
  }
  if (sat.allow && sat.mount) return pass(`container ${id}: lxc.cgroup2.devices.allow c ${node.major}:${node.minor} rwm and a bind mount of ${node.path}; ${node.byPath ?? addr} → ${node.path}`, data);
  const had = [
    ...devKeys(eff).filter((k) => (parseDev(eff[k]!)?.path ?? '').startsWith('/dev/dri/')).map((k) => `${k} ${eff[k]}`),
    ...ct.lxc.filter(([k, v]) => (k === 'lxc.cgroup2.devices.allow' && parseDeviceAllow(v)?.major === 226) || (k === 'lxc.mount.entry' && (parseMountEntry(v)?.source ?? '').startsWith('/dev/dri/'))).map(([k, v]) => `${k}: ${v}`),
  ];
  return fail(
    `expected container ${id} to be given ${node.path} (${node.byPath ?? addr}, ${node.major}:${node.minor}), found ${had.length ? had.join('; ') : 'no DRM device entry'}`,
    had.length ? 'the node was renumbered since the entry was written (card numbering changes between boots): rerun the igpu-lxc role' : 'run the igpu-lxc role',
    data,
  );
}
