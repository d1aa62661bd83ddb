/**
 * The GPU passthrough domain: from a host's facts and variables to what gets configured, and the
 * checks that refuse before a change (preflights) or prove the result after the reboot (gates).
 * Pure functions only; nothing here touches a host. The roles reach it through the read-only
 * `passthrough_check` module (src/modules/passthrough_check.ts): a preflight's data is the
 * computed configuration, registered for the role's later tasks (`register: vfio_plan`, then
 * `content: "{{ vfio_plan.data.vfioConf }}"`).
 *
 *   vars.ts          the host variables (PassthroughVars), Problem, list/switch readings
 *   selection.ts     which functions to bind (passthrough_slots, vfio_ids) and how: ids= or by
 *                    address, and what ids= would capture that was not chosen
 *   drivers.ts       which host drivers to keep away: blacklist and softdep lines
 *   isolation.ts     IOMMU group isolation and the ACS override decision
 *   vendor-reset.ts  which devices need vendor-reset, its kernels and packages
 *   kernel.ts        kernel version questions, vfio modules, headers package, IOMMU parameters
 *   hugepages.ts     the hugepages request, its fit and how it is reserved
 *   sriov.ts         SR-IOV: the VFs asked for, the boot unit that creates them, now or at the reboot
 *   config-text.ts   the text of vfio.conf, the blacklist, the init-top driver_override script
 *                    and the reset_method udev rules
 *   config.ts        passthroughConfig(): all of the above for one host, the data roles register
 *   assignable.ts    gate-assignable's VFIO probe (a fixed Perl script), its command line and
 *                    the parser of its output; which running VM holds a group
 *   gates/           one named function per preflight and gate, and CHECKS_BY_NAME
 *
 * Adding a check (a preflight or a gate):
 *   1. write `export function gateSomething(input: CheckInput): CheckResult` in
 *      gates/preflight.ts (before changes) or gates/booted.ts (after the reboot): pass(reason,
 *      data?) or fail('expected …, found …', hint);
 *   2. add `'gate-something': gateSomething` to CHECKS_BY_NAME in gates/index.ts (that is also
 *      the module's list of `check:` choices);
 *   3. add its fixture test to test/unit/passthrough-gates.test.ts (facts from
 *      test/fixtures/facts/hosts.ts), and call it from a role's tasks.yaml or gates.yaml.
 *   A check that needs a command's output on the host (as gate-container-toolkit reads
 *   nvidia-smi, or gate-assignable its VFIO probe) also gets the command in passthrough_check's
 *   reads() and plan(); reads() gets the task's variables too, so a command built from the
 *   facts and the variables is read ahead with the gates' other reads.
 *
 * Adding a fact: see src/facts/index.ts.
 */
export * from './config.ts';
export * from './config-text.ts';
export * from './drivers.ts';
export * from './hugepages.ts';
export * from './isolation.ts';
export * from './kernel.ts';
export * from './selection.ts';
export * from './sriov.ts';
export * from './vars.ts';
export * from './vendor-reset.ts';
export { CHECK_NAMES, CHECKS_BY_NAME, type Check, type CheckInput, type CheckName, type CheckResult } from './gates/index.ts';
