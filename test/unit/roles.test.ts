/**
 * The seven roles and the playbook, loaded with the real loader and planned with the real
 * modules and templates against fixture facts and an in-memory host: converge, then a second
 * run plans nothing; refusals stop before any write.
 */
import test from 'ava';
import { taskVars } from '../../src/engine/vars.ts';
import { whenFalse } from '../../src/engine/speculative-reads.ts';
import { fileURLToPath } from 'node:url';
import { loadPlaybook } from '../../src/load/playbook.ts';
import { checkArgs } from '../../src/spec/check.ts';
import { modules } from '../../src/modules/index.ts';
import { evaluate, render, truthy } from '../../src/template/index.ts';
import type { Action, CmdState, FileState, Observer, Plan } from '../../src/modules/contract.ts';
import type { Host, Inventory, Playbook, Role, Task, Vars } from '../../src/model/types.ts';
import type { Facts } from '../../src/facts/types.ts';
import { labFacts, pveNvidiaFacts } from '../fixtures/facts/hosts.ts';
import { PROBE } from '../fixtures/vfio-probe.ts';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/gpu-passthrough.yaml', import.meta.url));
const STAGE1 = ['iommu', 'acs-override', 'blacklist', 'vfio', 'vendor-reset', 'hugepages'];

const DEBIAN_GRUB = 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n';
const DEBIAN_MODULES = '# /etc/modules: kernel modules to load at boot time.\n';

/** An in-memory host: files, sysctl values; commands other than the known reads exit 1. */
class MemHost {
  files: Record<string, string>;
  sysctl: Record<string, string> = { 'vm.nr_hugepages': '0' };
  writes: string[] = [];
  /** Answers to commands the test gives (before the built-in ones). */
  commands?: (c: string) => CmdState | undefined;
  constructor(files: Record<string, string>) {
    this.files = { ...files };
  }
  observer(): Observer {
    const file = async (p: string): Promise<FileState> => (p in this.files ? { exists: true, content: this.files[p], mode: 0o644 } : { exists: false, content: '' });
    return {
      file,
      stat: file,
      cmd: async (c: string): Promise<CmdState> => {
        const given = this.commands?.(c);
        if (given) return given;
        const dropDir = /for f in (\S+)\/\*\.cfg/.exec(c)?.[1];
        if (dropDir) {
          const list = Object.keys(this.files).filter((p) => p.startsWith(`${dropDir}/`) && p.endsWith('.cfg')).sort();
          return { code: 0, stdout: list.map((p) => `${p}\n`).join(''), stderr: '' };
        }
        const sc = /^sysctl -n (\S+)$/.exec(c);
        if (sc) return { code: 0, stdout: `${this.sysctl[sc[1]] ?? ''}\n`, stderr: '' };
        return { code: 1, stdout: '', stderr: '' };
      },
    };
  }
  apply(actions: Action[]): void {
    for (const a of actions) {
      if (a.kind === 'write') {
        this.files[a.path] = a.content;
        this.writes.push(a.path);
      } else if (a.kind === 'delete') delete this.files[a.path];
      else if (a.kind === 'exec' && a.command.startsWith('sysctl -p ')) {
        for (const m of (this.files[a.command.slice(10)] ?? '').matchAll(/^\s*([\w.]+)\s*=\s*(\S+)/gm)) this.sysctl[m[1]] = m[2];
      }
    }
  }
}

interface RunResult {
  changed: string[];
  failed: Array<{ task: string; msg: string }>;
  notified: Set<string>;
  plans: Map<string, Plan>;
}

/** Plan (and apply to the in-memory host) every task of the given roles, like a run with no tag filter. */
async function runRoles(pb: Playbook, names: string[], facts: Facts, hostVars: Vars, host: MemHost, opts: { tags?: string[] } = {}): Promise<RunResult> {
  const out: RunResult = { changed: [], failed: [], notified: new Set(), plans: new Map() };
  const registered: Vars = {};
  for (const name of names) {
    const role = pb.roles.get(name)!;
    const ref = pb.stages.flatMap((s) => s.roles).find((r) => r.name === name)!;
    for (const task of role.tasks) {
      const tags = [...task.tags, ...ref.tags];
      if (opts.tags && !tags.some((t) => opts.tags!.includes(t))) continue;
      const vars: Vars = { ...role.defaults, ...hostVars, ...registered, facts, inventory_hostname: 'h' };
      const key = `${name}: ${task.name}`;
      if (task.when !== undefined && !truthy(evaluate(task.when, vars, task.pos))) {
        if (task.register) registered[task.register] = { changed: false, failed: false, skipped: true, msg: '', data: null };
        continue;
      }
      const mod = modules.get(task.module)!;
      const args = checkArgs(mod.spec, render(task.args, vars, task.pos) as Record<string, unknown>, { pos: task.pos, module: mod.name });
      const invalid = mod.validate?.(args);
      if (invalid) throw new Error(`${key}: ${invalid}`);
      const plan = await mod.plan(args, { host: 'h', facts, vars, observe: host.observer(), check: false });
      out.plans.set(key, plan);
      if (task.register) registered[task.register] = { changed: plan.kind === 'change', failed: plan.kind === 'fail', skipped: false, msg: '', data: plan.data ?? null };
      if (plan.kind === 'fail') {
        out.failed.push({ task: key, msg: plan.msg });
        return out;
      }
      if (plan.kind === 'change') {
        out.changed.push(key);
        host.apply(plan.actions);
        for (const n of task.notify) out.notified.add(`${name}/${n}`);
      }
    }
  }
  return out;
}

const load = () => loadPlaybook(PLAYBOOK, { modules });

test('the playbook and its seven roles load with the real loader', async (t) => {
  const pb = await load();
  t.deepEqual(pb.stages.map((s) => s.hosts), ['proxmox', 'gpu_guests']);
  t.deepEqual(pb.stages[0].roles.map((r) => r.name), STAGE1);
  t.is(pb.stages[0].reboot, 'if-needed');
  t.deepEqual([...pb.roles.keys()].sort(), [...STAGE1, 'nvidia-container-toolkit'].sort());
  for (const role of pb.roles.values()) {
    t.true(role.tasks.length > 0, role.name);
    t.true(role.gates.length > 0, `${role.name} has gates`);
    for (const g of role.gates) t.true(g.tags.includes('verify') && g.tags.includes(role.name), `${role.name}: ${g.name}`);
    // Preflight checks come first and are tagged with the role's name.
    const firstChange = role.tasks.findIndex((x: Task) => !x.tags.includes('preflight'));
    t.true(role.tasks.slice(0, firstChange).every((x) => x.module === 'passthrough_check' && x.tags.includes(role.name)), role.name);
    t.true(role.tasks.slice(firstChange).every((x) => !x.tags.includes('preflight')), role.name);
  }
});

test('lab guest (Debian 12, GRUB BIOS, bochs + HDA in 00:05, 2M hugepages): converge, then 0 changed', async (t) => {
  const pb = await load();
  const host = new MemHost({ '/etc/default/grub': DEBIAN_GRUB, '/etc/modules': DEBIAN_MODULES });
  const facts = labFacts();
  const vars = { passthrough_slots: ['00:05'], hugepages: { size: '2M', count: 64 } };
  const first = await runRoles(pb, STAGE1, facts, vars, host);
  t.deepEqual(first.failed, []);
  t.deepEqual(first.changed, [
    'iommu: IOMMU parameters on the kernel command line',
    'blacklist: Blacklist the host drivers of the passed-through cards',
    'vfio: VFIO modules load at boot',
    'vfio: vfio-pci claims the chosen devices before their host drivers (ids, disable_vga, softdeps)',
    'hugepages: 2M hugepages reserved at runtime (sysctl)',
  ]);
  t.regex(host.files['/etc/default/grub'], /GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"/);
  t.regex(host.files['/etc/modprobe.d/vfio.conf'], /options vfio-pci ids=1234:1111,8086:293e disable_vga=1\nsoftdep bochs pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci/);
  t.is(host.files['/etc/modprobe.d/blacklist-passthru.conf'].split('\n').filter((l) => l.startsWith('blacklist')).join(), 'blacklist bochs');
  // Debian 12 runs 6.1: vfio_virqfd is still its own module there.
  t.is(host.files['/etc/modules'], `${DEBIAN_MODULES}vfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n`);
  t.regex(host.files['/etc/sysctl.d/80-passthru-hugepages.conf'], /vm.nr_hugepages = 64|vm.nr_hugepages=64/);
  t.deepEqual([...first.notified].sort(), ['blacklist/reboot', 'blacklist/update initramfs', 'iommu/reboot', 'iommu/refresh bootloader', 'vfio/reboot', 'vfio/update initramfs']);
  // Nothing for a Debian kernel: no ACS patch needed, no AMD card.
  t.is(first.plans.get('acs-override: ACS override on the kernel command line'), undefined);

  // After the reboot: the devices are bound to vfio-pci, bochs unloaded. Same files, 0 changed.
  const second = await runRoles(pb, STAGE1, labFacts({ bound: true, cmdline: 'quiet intel_iommu=on iommu=pt' }), vars, host);
  t.deepEqual(second.failed, []);
  t.deepEqual(second.changed, []);
});

test('a hand-made drift is found and fixed: edited /etc/default/grub and vfio.conf', async (t) => {
  const pb = await load();
  const host = new MemHost({ '/etc/default/grub': DEBIAN_GRUB, '/etc/modules': DEBIAN_MODULES });
  const vars = { passthrough_slots: ['00:05'] };
  await runRoles(pb, STAGE1, labFacts(), vars, host);
  host.files['/etc/default/grub'] = host.files['/etc/default/grub'].replace(' iommu=pt', '');
  host.files['/etc/modprobe.d/vfio.conf'] += 'options vfio-pci ids=dead:beef\n';
  const drift = await runRoles(pb, STAGE1, labFacts(), vars, host);
  t.deepEqual(drift.changed, ['iommu: IOMMU parameters on the kernel command line', 'vfio: vfio-pci claims the chosen devices before their host drivers (ids, disable_vga, softdeps)']);
  t.deepEqual((await runRoles(pb, STAGE1, labFacts(), vars, host)).changed, []);
});

test('--tags vfio touches only the vfio role', async (t) => {
  const pb = await load();
  const host = new MemHost({ '/etc/default/grub': DEBIAN_GRUB, '/etc/modules': DEBIAN_MODULES });
  const r = await runRoles(pb, STAGE1, labFacts(), { passthrough_slots: ['00:05'], hugepages: { size: '2M', count: 8 } }, host, { tags: ['vfio'] });
  t.true(r.changed.length > 0);
  t.true(r.changed.every((c) => c.startsWith('vfio: ')));
  // The undo records (module lines appended, what vfio.conf held before) are the vfio role's writes too.
  t.deepEqual(host.writes.sort(), ['/etc/modprobe.d/vfio.conf', '/etc/modules', '/var/lib/passthru/undo/files.json', '/var/lib/passthru/undo/kernel_modules.json']);
});

test('Proxmox node (systemd-boot, NVIDIA, SATA in the group, 1G hugepages): /etc/kernel/cmdline gets IOMMU, ACS and hugepages', async (t) => {
  const pb = await load();
  const host = new MemHost({ '/etc/kernel/cmdline': 'root=ZFS=rpool/ROOT/pve-1 boot=zfs\n', '/etc/default/grub': DEBIAN_GRUB, '/etc/modules': 'vfio_virqfd\n' });
  const facts = pveNvidiaFacts({ sataInGroup: true });
  const vars = { passthrough_slots: ['01:00'], hugepages: { size: '1G', count: 8 } };
  const r = await runRoles(pb, STAGE1, facts, vars, host);
  t.deepEqual(r.failed, []);
  // Every installed kernel is 6.8+: the Intel IOMMU is on by default, no intel_iommu=on.
  t.is(host.files['/etc/kernel/cmdline'], 'root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt pcie_acs_override=downstream,multifunction default_hugepagesz=1G hugepagesz=1G hugepages=8\n');
  t.is(host.files['/etc/default/grub'], DEBIAN_GRUB, 'the file the host does not boot from is untouched');
  t.is(host.files['/etc/modules'], 'vfio\nvfio_iommu_type1\nvfio_pci\n', 'vfio_virqfd removed on 6.8');
  t.regex(host.files['/etc/modprobe.d/blacklist-passthru.conf'], /blacklist nouveau\nblacklist nvidia\nblacklist nvidiafb\nblacklist nvidia_drm\n/);
  t.deepEqual((await runRoles(pb, STAGE1, facts, vars, host)).changed, []);
  // A 6.5 kernel still installed (a fallback entry): intel_iommu=on is written for it.
  const old = new MemHost({ '/etc/kernel/cmdline': 'root=ZFS=rpool/ROOT/pve-1 boot=zfs\n', '/etc/default/grub': DEBIAN_GRUB, '/etc/modules': '' });
  await runRoles(pb, ['iommu'], { ...facts, kernelsInstalled: ['6.8.12-4-pve', '6.5.13-6-pve'] }, vars, old);
  t.is(old.files['/etc/kernel/cmdline'], 'root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n');
});

test('undo (passthrough: absent): every file back byte for byte, the user\'s own parameter and vfio.conf kept; handlers notified; second undo 0 changed', async (t) => {
  const pb = await load();
  // GRUB host; the user had iommu=pt and a vfio.conf of their own before passthru.
  const start = { '/etc/default/grub': DEBIAN_GRUB.replace('"quiet"', '"quiet iommu=pt"'), '/etc/modules': DEBIAN_MODULES, '/etc/modprobe.d/vfio.conf': '# mine\n' };
  const host = new MemHost(start);
  const vars = { passthrough_slots: ['00:05'], hugepages: { size: '2M', count: 8 } };
  t.deepEqual((await runRoles(pb, STAGE1, labFacts(), vars, host)).failed, []);
  t.regex(host.files['/etc/default/grub']!, /"quiet iommu=pt intel_iommu=on"/);
  t.truthy(host.files['/etc/sysctl.d/80-passthru-hugepages.conf']);
  const undo = await runRoles(pb, STAGE1, labFacts(), { ...vars, passthrough: 'absent' }, host);
  t.deepEqual(undo.failed, []);
  t.deepEqual(host.files, start, 'every file as it was, the records gone');
  t.true(['iommu/refresh bootloader', 'iommu/reboot', 'vfio/update initramfs', 'vfio/reboot'].every((n) => undo.notified.has(n)), [...undo.notified].join(', '));
  t.false([...undo.plans.keys()].some((k) => /Preflight - the chosen devices/.test(k)), 'configure preflights skipped');
  t.deepEqual((await runRoles(pb, STAGE1, labFacts(), { ...vars, passthrough: 'absent' }, host)).changed, []);

  // systemd-boot, ACS and 1G hugepages on the command line; vfio_virqfd was the user's (6.8 removes it: that stays removed).
  const sd = { '/etc/kernel/cmdline': 'root=ZFS=rpool/ROOT/pve-1 boot=zfs\n', '/etc/modules': 'vfio_virqfd\n' };
  const pve = new MemHost(sd);
  const facts = pveNvidiaFacts({ sataInGroup: true });
  const pv = { passthrough_slots: ['01:00'], hugepages: { size: '1G', count: 8 } };
  t.deepEqual((await runRoles(pb, STAGE1, facts, pv, pve)).failed, []);
  const u2 = await runRoles(pb, STAGE1, facts, { ...pv, passthrough: 'absent' }, pve);
  t.deepEqual(u2.failed, []);
  t.is(pve.files['/etc/kernel/cmdline'], sd['/etc/kernel/cmdline']);
  t.is(pve.files['/etc/modules'], '', 'passthru\'s lines go; vfio_virqfd, removed for 6.8, is not put back');
  t.deepEqual(Object.keys(pve.files).sort(), ['/etc/kernel/cmdline', '/etc/modules']);
});

test('refusals stop the host before any write', async (t) => {
  const pb = await load();
  const files = { '/etc/default/grub': DEBIAN_GRUB, '/etc/modules': DEBIAN_MODULES };
  // Twin GPU, ids binding forced: ids= would capture 02:00.0 too.
  const twin = new MemHost({ '/etc/kernel/cmdline': 'root=ZFS=rpool/ROOT/pve-1 boot=zfs\n', ...files });
  const r1 = await runRoles(pb, ['blacklist', 'vfio'], pveNvidiaFacts({ twin: true }), { passthrough_slots: ['01:00'], vfio_bind: 'ids' }, twin);
  t.regex(r1.failed[0].msg, /also bind 0000:02:00.0/);
  t.deepEqual(twin.writes, []);
  // Hugepages above 75% of MemTotal.
  const big = new MemHost(files);
  const r2 = await runRoles(pb, ['hugepages'], labFacts(), { passthrough_slots: ['00:05'], hugepages: { size: '1G', count: 4096 } }, big);
  t.regex(r2.failed[0].msg, /expected at most .* GiB of hugepages/);
  t.deepEqual(big.writes, []);
  // ACS override forced on a Debian kernel.
  const acs = new MemHost(files);
  const r3 = await runRoles(pb, ['acs-override'], labFacts(), { passthrough_slots: ['00:05'], acs_override: 'on' }, acs);
  t.regex(r3.failed[0].msg, /ACS override patch/);
  t.deepEqual(acs.writes, []);
});

test('gates: every gate is a read-only passthrough_check and renders on lab facts', async (t) => {
  const pb = await load();
  const facts = labFacts({ bound: true, cmdline: 'quiet intel_iommu=on iommu=pt' });
  const gates = async (vars: Vars, host: MemHost) => {
    const results: Record<string, string> = {};
    for (const name of STAGE1) {
      const role: Role = pb.roles.get(name)!;
      for (const g of role.gates) {
        const v: Vars = { ...role.defaults, ...vars, facts, ansible_check_mode: false };
        const mod = modules.get(g.module)!;
        t.true(mod.readOnly, g.name);
        // As the engine does: a gate whose when: is false is skipped.
        if (g.when !== undefined && !truthy(evaluate(g.when, v, g.pos))) {
          results[`${name}: ${g.name}`] = 'skipped';
          continue;
        }
        const args = checkArgs(mod.spec, render(g.args, v, g.pos) as Record<string, unknown>, { pos: g.pos, module: mod.name });
        const p = await mod.plan(args, { host: 'h', facts, vars: v, observe: host.observer(), check: false });
        results[`${name}: ${g.name}`] = p.kind === 'fail' ? `fail: ${p.msg}` : p.kind;
        t.not(p.kind, 'change');
      }
    }
    return results;
  };
  const off = await gates({ passthrough_slots: ['00:05'] }, new MemHost({}));
  const assignable = 'vfio: The chosen devices can be assigned to a VM (the VFIO sequence a VM start runs)';
  t.is(off[assignable], 'skipped', 'gate-assignable runs only when asked (vfio_assignable_gate)');
  t.true(Object.entries(off).every(([k, v]) => v === 'noop' || k === assignable), JSON.stringify(off));
  // Asked: it reads the probe; a host that answers as the real-kernel guest did passes.
  const host = new MemHost({});
  host.commands = (c) => (c.startsWith('perl -e ') ? { code: 0, stdout: PROBE.pass, stderr: '' } : undefined);
  const on = await gates({ passthrough_slots: ['00:05'], vfio_assignable_gate: true }, host);
  t.true(Object.values(on).every((k) => k === 'noop'), JSON.stringify(on));
  // And a host without VFIO (MemHost answers any other command with exit 1, no output) fails it.
  const bare = await gates({ passthrough_slots: ['00:05'], vfio_assignable_gate: true }, new MemHost({}));
  t.regex(bare[assignable], /^fail: expected the VFIO probe \(perl\) to finish/);
});

test('handlers render: the refresh matches the bootloader, initramfs is guarded, reboots have reasons', async (t) => {
  const pb = await load();
  const seen: Record<string, unknown> = {};
  for (const [facts, label] of [[labFacts(), 'lab'], [pveNvidiaFacts(), 'pve']] as const) {
    for (const name of [...STAGE1, 'nvidia-container-toolkit']) {
      const role = pb.roles.get(name)!;
      for (const h of role.handlers) {
        const mod = modules.get(h.module)!;
        const args = checkArgs(mod.spec, render(h.args, { ...role.defaults, facts }, h.pos) as Record<string, unknown>, { pos: h.pos, module: mod.name });
        t.is(mod.validate?.(args), undefined, `${name}: ${h.name}`);
        seen[`${label} ${name}/${h.name}`] = args.cmd ?? args.reason ?? args.name;
      }
    }
  }
  t.is(seen['lab iommu/refresh bootloader'], 'update-grub');
  t.is(seen['pve iommu/refresh bootloader'], 'proxmox-boot-tool refresh');
  t.is(seen['pve hugepages/refresh bootloader'], 'proxmox-boot-tool refresh');
  t.is(seen['lab vfio/update initramfs'], 'update-initramfs -u -k all');
  t.is(seen['lab vfio/reboot'], 'vfio-pci binding changed');
  t.is(seen['lab nvidia-container-toolkit/restart docker'], 'docker');
});

test('gate-assignable runs when asked, never in check mode (opening a device resets it): ansible_check_mode', async (t) => {
  const pb = await load();
  const gate = pb.roles.get('vfio')!.gates.find((g) => (g.args as { check?: string }).check === 'gate-assignable')!;
  t.truthy(gate.when);
  const vars = (check: boolean, on: boolean) =>
    taskVars({
      stage: pb.stages[0]!,
      host: { name: 'h', vars: { vfio_assignable_gate: on }, groups: ['all'] } as unknown as Host,
      inventory: { hosts: new Map(), groups: new Map() } as unknown as Inventory,
      facts: null,
      registered: {},
      extra: {},
      check,
    });
  t.is(vars(true, true).ansible_check_mode, true);
  t.is(vars(false, true).ansible_check_mode, false);
  t.false(whenFalse(gate.when!, vars(false, true), gate.pos), 'apply with the gate asked for: it runs');
  t.true(whenFalse(gate.when!, vars(true, true), gate.pos), 'check: skipped');
  t.true(whenFalse(gate.when!, vars(false, false), gate.pos), 'not asked: skipped');
});
