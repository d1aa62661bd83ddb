/**
 * The SR-IOV checks: the preflight (before anything changes: the devices exist, can do SR-IOV,
 * and have that many VFs) and the gate (after the run and the reboot: `sriov_numvfs` is N and the
 * N VFs exist, each a PCI device of its own, in an IOMMU group when the IOMMU is on).
 */
import { SRIOV_UNIT, SRIOV_UNIT_PATH, sriovConfig, sriovExecStart } from '../sriov.ts';
import { fail, pass, type CheckInput, type CheckResult } from './check.ts';

/** Every device of sriov_devices exists, is SR-IOV capable, has a driver and at least numvfs VFs. Data: the SR-IOV plan. */
export function preflightSriov({ facts, vars }: CheckInput): CheckResult {
  const s = sriovConfig(facts, vars);
  if (s.problems.length) return fail(s.problems.map((p) => p.msg).join('; '), s.problems.map((p) => p.hint).join(' '), s);
  if (s.devices.length === 0) return pass('no SR-IOV device asked (sriov_devices is empty)', s);
  const what = s.devices.map((d) => `${d.address}: ${d.numvfs} of ${d.totalvfs} VFs (now ${d.current}${d.action === 'none' ? '' : `, ${d.action === 'create' ? 'created now' : 'at the reboot'}`})`);
  return pass(what.join('; '), s);
}

/**
 * `sriov_numvfs` of every device is its numvfs, and that many VFs exist (`virtfnN` links to PCI
 * devices the host lists), each in an IOMMU group when the IOMMU is on. A count that differs
 * while the unit on the host already asks for it is a reboot pending.
 */
export function gateSriov({ facts: f, vars, sriovUnit }: CheckInput): CheckResult {
  const s = sriovConfig(f, vars);
  if (s.problems.length) return fail(s.problems.map((p) => p.msg).join('; '), s.problems.map((p) => p.hint).join(' '));
  if (s.devices.length === 0) return pass('no SR-IOV device asked');
  const byAddr = new Map(f.pci.map((d) => [d.address, d]));
  // SRIOV_UNIT_READ: the unit's text, then `@@failed` and what `systemctl is-failed` says.
  const [unitText = '', state = ''] = (sriovUnit?.stdout ?? '').split('\n@@failed\n');
  const unitLines = new Set(unitText.split('\n'));
  const unitFailed = state.trim() === 'failed';
  const problems: string[] = [];
  const hints: string[] = [];
  let pending = true;
  for (const d of s.devices) {
    if (d.current !== d.numvfs) {
      problems.push(`${d.address} with sriov_numvfs ${d.current}`);
      const configured = unitLines.has(sriovExecStart(d.address, d.numvfs));
      if (!configured) {
        pending = false;
        hints.push(`${SRIOV_UNIT_PATH} does not write ${d.numvfs} for ${d.address}: run apply again`);
      } else if (unitFailed) {
        // It ran in this boot and the kernel (or the driver wait) refused: a reboot would not help.
        pending = false;
        hints.push(`${SRIOV_UNIT} failed in this boot: \`systemctl status ${SRIOV_UNIT}\` and \`journalctl -b -u ${SRIOV_UNIT}\` show why (no PF driver, i915.max_vfs, or the count refused)`);
      } else {
        hints.push(`${d.address}: the unit asks for ${d.numvfs}: reboot the host (or run without --no-reboot); if it stays, \`systemctl status passthru-sriov\` and \`journalctl -b -u passthru-sriov\` show why the kernel refused`);
      }
      continue;
    }
    const missing = d.vfs.filter((a) => !byAddr.has(a));
    if (d.vfs.length !== d.numvfs || missing.length) {
      pending = false;
      problems.push(`${d.address} with ${d.vfs.length} virtfn links${missing.length ? ` (${missing.join(', ')} not a PCI device)` : ''}`);
      hints.push(`ls -l ${`/sys/bus/pci/devices/${d.address}`}/virtfn* and lspci -D show the VFs; write 0 then ${d.numvfs} to sriov_numvfs (systemctl restart passthru-sriov)`);
      continue;
    }
    if (f.iommu.active) {
      const ungrouped = d.vfs.filter((a) => byAddr.get(a)?.iommuGroup === null || byAddr.get(a)?.iommuGroup === undefined);
      if (ungrouped.length) {
        pending = false;
        problems.push(`${ungrouped.join(', ')} in no IOMMU group`);
        hints.push('a VF without an IOMMU group cannot be passed through: check the kernel log for the VFs (dmesg | grep iommu)');
      }
    }
  }
  if (problems.length === 0) {
    return pass(
      s.devices.map((d) => `${d.address}: ${d.numvfs} VFs${d.vfs.length ? ` (${d.vfs.join(' ')}${f.iommu.active ? `, groups ${d.vfs.map((a) => byAddr.get(a)?.iommuGroup).join(' ')}` : ''})` : ''}`).join('; '),
      s.devices.map((d) => ({ address: d.address, numvfs: d.numvfs, vfs: d.vfs })),
    );
  }
  const msg = `expected ${s.devices.map((d) => `${d.numvfs} VFs on ${d.address}`).join(', ')}, found ${problems.join('; ')}`;
  return { ok: false, msg, hint: hints.join('; '), data: s.devices, ...(pending ? { pending: true } : {}) };
}
