import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkShellSyntax, CMDLINE_RECORD, dropInListCommand, editCmdline, editGrubDefault, kernelCmdlineModule, recordEdit, setsVar, undoEdit, type KernelCmdlineArgs } from '../../src/modules/kernel_cmdline.ts';
import type { CmdState, FileState, Observer, Plan, PlanContext } from '../../src/modules/contract.ts';
import type { Facts } from '../../src/facts/types.ts';
import { labFacts, pveNvidiaFacts } from '../fixtures/facts/hosts.ts';
import { filesAfter } from './modules-fake.ts';

const DEBIAN_GRUB = `# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
# For full documentation of the options in this file, see:
#   info -f grub -n 'Simple configuration'

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=\`lsb_release -i -s 2> /dev/null || echo Debian\`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""

# Uncomment to enable BadRAM filtering, modify to suit your needs
#GRUB_BADRAM="0x01234567,0xfefefefe,0x89abcdef,0xefefefef"
`;

test('editCmdline adds, keeps others and spacing, replaces by key', (t) => {
  t.is(editCmdline('root=ZFS=rpool/ROOT/pve-1 boot=zfs', { add: ['intel_iommu=on', 'iommu=pt'] }), 'root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt');
  t.is(editCmdline('quiet  hugepages=4 splash', { add: ['hugepages=8'] }), 'quiet  hugepages=8 splash');
  t.is(editCmdline('', { add: ['iommu=pt'] }), 'iommu=pt');
  t.is(editCmdline('a iommu=pt b', { add: ['iommu=pt'] }), 'a iommu=pt b');
});

test('editCmdline removes by key or exact key=value', (t) => {
  t.is(editCmdline('quiet pcie_acs_override=downstream,multifunction iommu=pt', { remove: ['pcie_acs_override'] }), 'quiet iommu=pt');
  t.is(editCmdline('console=tty0 console=ttyS0', { remove: ['console=ttyS0'] }), 'console=tty0');
  t.is(editCmdline('quiet', { remove: ['nothere'] }), 'quiet');
  t.is(editCmdline('foo="a b" quiet', { add: ['iommu=pt'] }), 'foo="a b" quiet iommu=pt');
});

test('editCmdline is idempotent: twice = once', (t) => {
  const edit = { add: ['intel_iommu=on', 'iommu=pt', 'hugepages=16'], remove: ['nomodeset'] };
  for (const line of ['quiet nomodeset', 'root=/dev/sda1 ro hugepages=2', '', '  spaced   out  ']) {
    const once = editCmdline(line, edit);
    t.is(editCmdline(once, edit), once, line);
  }
});

test('editGrubDefault: Debian file, only the value changes', (t) => {
  const out = editGrubDefault(DEBIAN_GRUB, { add: ['intel_iommu=on', 'iommu=pt'] });
  t.is(out, DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX_DEFAULT="quiet"', 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"'));
  t.is(editGrubDefault(out, { add: ['intel_iommu=on', 'iommu=pt'] }), out);
});

test('editGrubDefault keeps quoting style; bare value gets quotes when it grows', (t) => {
  t.is(editGrubDefault("GRUB_CMDLINE_LINUX_DEFAULT='quiet'\n", { add: ['iommu=pt'] }), "GRUB_CMDLINE_LINUX_DEFAULT='quiet iommu=pt'\n");
  t.is(editGrubDefault('GRUB_CMDLINE_LINUX_DEFAULT=quiet # c\n', { add: ['iommu=pt'] }), 'GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt" # c\n');
  t.is(editGrubDefault('export GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n', { add: ['iommu=pt'] }), 'export GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"\n');
});

test('editGrubDefault edits the last assignment, keeps $VAR references, appends when missing', (t) => {
  const two = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n# later\nGRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT splash"\n';
  t.is(
    editGrubDefault(two, { add: ['iommu=pt'] }),
    'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n# later\nGRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT splash iommu=pt"\n',
  );
  t.is(editGrubDefault('GRUB_TIMEOUT=5', { add: ['iommu=pt'] }), 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="iommu=pt"\n');
  t.is(editGrubDefault('GRUB_TIMEOUT=5\n', { remove: ['x'] }), 'GRUB_TIMEOUT=5\n');
  t.throws(() => editGrubDefault('GRUB_CMDLINE_LINUX_DEFAULT="quiet\n', { add: ['a'] }), { message: /unterminated/ });
});

test('checkShellSyntax agrees with sh -n on good and broken files', (t) => {
  const cases = [DEBIAN_GRUB, 'A="x $(echo y)"\n', 'A="unterminated\n', "A='x\n", 'A=$(echo\n', 'A="$(echo ")")"\n', '# it\'s a comment\nA=1\n'];
  for (const c of cases) {
    let shOk = true;
    try {
      execFileSync('sh', ['-n'], { input: c, stdio: ['pipe', 'ignore', 'ignore'] });
    } catch {
      shOk = false;
    }
    t.is(checkShellSyntax(c) === null, shOk, JSON.stringify(c));
  }
});

// ---------------------------------------------------------------- plan() with a fake observer

function fakeObserver(files: Record<string, string>): Observer & { cmds: string[] } {
  const cmds: string[] = [];
  const file = async (p: string): Promise<FileState> => (p in files ? { exists: true, content: files[p], mode: 0o644 } : { exists: false, content: '' });
  return {
    cmds,
    file,
    stat: file,
    async cmd(c: string): Promise<CmdState> {
      cmds.push(c);
      const dir = /for f in (\S+)\/\*\.cfg/.exec(c)?.[1];
      // As the real command (tested on sh below): the drop-ins that set the variable.
      const list = dir ? Object.keys(files).filter((p) => p.startsWith(`${dir}/`) && p.endsWith('.cfg') && setsVar(files[p]!)).sort() : [];
      return { code: 0, stdout: list.map((p) => `${p}\n`).join(''), stderr: '' };
    },
  };
}

const args = (a: Partial<KernelCmdlineArgs>): KernelCmdlineArgs => ({
  add: [],
  remove: [],
  bootloader: 'auto',
  grub_file: '/etc/default/grub',
  cmdline_file: '/etc/kernel/cmdline',
  state: 'present',
  record: '',
  ...a,
});
const ctx = (facts: Facts, observe: Observer): PlanContext => ({ host: 'h', facts, vars: {}, observe, check: false });

test('plan: GRUB host edits /etc/default/grub, sh -n before the write, backup kept', async (t) => {
  const obs = fakeObserver({ '/etc/default/grub': DEBIAN_GRUB });
  const p = await kernelCmdlineModule.plan(args({ add: ['intel_iommu=on', 'iommu=pt'] }), ctx(labFacts(), obs));
  t.is(p.kind, 'change');
  if (p.kind !== 'change') return;
  t.deepEqual(p.actions.map((a) => a.kind), ['exec', 'write']);
  const [check, write] = p.actions;
  t.like(check, { command: 'sh -n' });
  t.like(write, { path: '/etc/default/grub', backup: true, keepBackups: 5 });
  t.regex(p.diff[0].after, /GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"/);
  t.regex(p.msg, /\+intel_iommu=on \+iommu=pt/);
});

test('plan: a drop-in that sets the variable is the file edited (the last one)', async (t) => {
  const obs = fakeObserver({
    '/etc/default/grub': DEBIAN_GRUB,
    '/etc/default/grub.d/10-a.cfg': 'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\n',
    '/etc/default/grub.d/20-b.cfg': 'GRUB_TIMEOUT=1\n',
    '/etc/default/grub.d/init-select.cfg': '# nothing\n',
  });
  const p = await kernelCmdlineModule.plan(args({ add: ['iommu=pt'] }), ctx(labFacts(), obs));
  t.is(p.kind, 'change');
  if (p.kind !== 'change') return;
  t.is(p.diff[0].path, '/etc/default/grub.d/10-a.cfg');
  t.is(p.diff[0].after, 'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash iommu=pt"\n');
});

test('plan: systemd-boot host edits /etc/kernel/cmdline only, no sh -n; second run is a no-op', async (t) => {
  const files = { '/etc/kernel/cmdline': 'root=ZFS=rpool/ROOT/pve-1 boot=zfs\n', '/etc/default/grub': DEBIAN_GRUB };
  const facts = pveNvidiaFacts();
  const p = await kernelCmdlineModule.plan(args({ add: ['intel_iommu=on', 'iommu=pt'] }), ctx(facts, fakeObserver(files)));
  t.is(p.kind, 'change');
  if (p.kind !== 'change') return;
  t.deepEqual(p.actions.map((a) => a.kind), ['write']);
  const after = p.diff[0].after;
  t.is(after, 'root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n');
  const again = await kernelCmdlineModule.plan(args({ add: ['intel_iommu=on', 'iommu=pt'] }), ctx(facts, fakeObserver({ ...files, '/etc/kernel/cmdline': after })));
  t.is(again.kind, 'noop');
});

test('plan: unknown bootloader fails with evidence; override wins', async (t) => {
  const facts = { ...labFacts(), bootloader: 'unknown' as const, bootloaderEvidence: ['UEFI boot, but efibootmgr is not installed'] };
  const p = await kernelCmdlineModule.plan(args({ add: ['iommu=pt'] }), ctx(facts, fakeObserver({})));
  t.is(p.kind, 'fail');
  if (p.kind === 'fail') {
    t.regex(p.msg, /expected a known bootloader/);
    t.regex(p.hint ?? '', /efibootmgr is not installed/);
  }
  const q = await kernelCmdlineModule.plan(args({ add: ['iommu=pt'], bootloader: 'grub' }), ctx(facts, fakeObserver({ '/etc/default/grub': DEBIAN_GRUB })));
  t.is(q.kind, 'change');
});

test('plan: missing /etc/kernel/cmdline on systemd-boot is a failure, not a new file', async (t) => {
  const p = await kernelCmdlineModule.plan(args({ add: ['iommu=pt'] }), ctx(pveNvidiaFacts(), fakeObserver({})));
  t.is(p.kind, 'fail');
});

test('plan: a broken GRUB file is refused before anything is written', async (t) => {
  const obs = fakeObserver({ '/etc/default/grub': 'GRUB_TIMEOUT="5\nGRUB_CMDLINE_LINUX_DEFAULT=quiet\n' });
  const p = await kernelCmdlineModule.plan(args({ add: ['iommu=pt'] }), ctx(labFacts(), obs));
  t.is(p.kind, 'fail');
});

test('validate: unsafe parameters and contradictions are config errors', (t) => {
  t.regex(kernelCmdlineModule.validate!(args({ add: ['a"b'] })) ?? '', /not a plain kernel parameter/);
  t.regex(kernelCmdlineModule.validate!(args({ add: ['$(reboot)'] })) ?? '', /not a plain/);
  t.regex(kernelCmdlineModule.validate!(args({ add: ['a=1', 'a=2'] })) ?? '', /twice/);
  t.regex(kernelCmdlineModule.validate!(args({ add: ['a=1'], remove: ['a'] })) ?? '', /both added and removed/);
  t.is(kernelCmdlineModule.validate!(args({ add: ['pcie_acs_override=downstream,multifunction'] })), undefined);
});

test('dropInListCommand on sh: lists, in order, only the drop-ins that set GRUB_CMDLINE_LINUX_DEFAULT', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-grubd-'));
  await mkdir(join(dir, 'grub.d'));
  await writeFile(join(dir, 'grub.d', '20-b.cfg'), 'GRUB_TIMEOUT=1\n');
  await writeFile(join(dir, 'grub.d', '10-a.cfg'), 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n');
  await writeFile(join(dir, 'grub.d', '30-c.cfg'), '  export GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT x"\n');
  await writeFile(join(dir, 'grub.d', 'notes.txt'), 'GRUB_CMDLINE_LINUX_DEFAULT=""\n');
  const out = execFileSync('sh', ['-c', dropInListCommand(join(dir, 'grub'))], { encoding: 'utf8' });
  t.is(out, `${join(dir, 'grub.d', '10-a.cfg')}\n${join(dir, 'grub.d', '30-c.cfg')}\n`);
  t.is(execFileSync('sh', ['-c', dropInListCommand(join(dir, 'missing'))], { encoding: 'utf8' }), '');
  await rm(dir, { recursive: true });
});

// ---------------------------------------------------------------- the undo record

test('recordEdit: records what it added or replaced, never a parameter the line had already', (t) => {
  t.deepEqual(recordEdit('quiet iommu=pt', { add: ['iommu=pt', 'intel_iommu=on'] }, {}), { intel_iommu: { value: 'intel_iommu=on', orig: null } });
  t.deepEqual(recordEdit('quiet iommu=soft', { add: ['iommu=pt'] }, {}), { iommu: { value: 'iommu=pt', orig: 'iommu=soft' } });
  // A key it recorded keeps its original when its value moves (hugepages=4 → 8).
  const prior = { hugepages: { value: 'hugepages=4', orig: null } };
  t.deepEqual(recordEdit('hugepages=4', { add: ['hugepages=8'] }, prior), { hugepages: { value: 'hugepages=8', orig: null } });
  t.deepEqual(recordEdit('quiet pcie_acs_override=downstream', { remove: ['pcie_acs_override'] }, { pcie_acs_override: { value: 'pcie_acs_override=downstream', orig: null } }), {});
});

test('undoEdit: removes what it added, puts back what it replaced, leaves values changed by hand', (t) => {
  const rec = { intel_iommu: { value: 'intel_iommu=on', orig: null }, iommu: { value: 'iommu=pt', orig: 'iommu=soft' }, hugepages: { value: 'hugepages=8', orig: null } };
  const line = 'quiet intel_iommu=on iommu=pt hugepages=16';
  const edit = undoEdit(line, rec);
  t.deepEqual(edit, { remove: ['intel_iommu=on'], add: ['iommu=soft'] });
  t.is(editCmdline(line, edit), 'quiet iommu=soft hugepages=16');
});

/** Plan, then "apply" it on the fake files (writes and deletes), returning the new files. */
async function step(files: Record<string, string>, a: Partial<KernelCmdlineArgs>, facts = labFacts()): Promise<{ plan: Plan; files: Record<string, string> }> {
  const plan = await kernelCmdlineModule.plan(args({ record: CMDLINE_RECORD, ...a }), ctx(facts, fakeObserver(files)));
  return { plan, files: filesAfter(files, plan) };
}

test('undo on GRUB: the user\'s own iommu=pt stays, what passthru added goes, the file is byte for byte the start', async (t) => {
  const start = { '/etc/default/grub': DEBIAN_GRUB.replace('"quiet"', '"quiet iommu=pt"') };
  const added = await step(start, { add: ['intel_iommu=on', 'iommu=pt'] });
  t.is(added.plan.kind, 'change');
  if (added.plan.kind !== 'change') return;
  t.deepEqual(added.plan.actions.map((x) => x.kind), ['exec', 'write', 'exec', 'write'], 'sh -n, the file, mkdir, the record (after the file)');
  t.deepEqual(JSON.parse(added.files[CMDLINE_RECORD]!).files, { '/etc/default/grub': { intel_iommu: { value: 'intel_iommu=on', orig: null } } });
  // Converged: a second add changes nothing, record included.
  t.is((await step(added.files, { add: ['intel_iommu=on', 'iommu=pt'] })).plan.kind, 'noop');

  const undone = await step(added.files, { state: 'absent' });
  t.is(undone.plan.kind, 'change');
  if (undone.plan.kind !== 'change') return;
  t.is(undone.plan.diff[0]!.before, added.files['/etc/default/grub']);
  t.is(undone.plan.diff[0]!.after, start['/etc/default/grub']);
  t.deepEqual(undone.files, start, 'the record is deleted too');
  t.is((await step(undone.files, { state: 'absent' })).plan.kind, 'noop', 'second undo: nothing recorded');
});

test('undo on systemd-boot: a replaced value comes back in place; a host without a record is left alone', async (t) => {
  const start = { '/etc/kernel/cmdline': 'root=ZFS=rpool/ROOT/pve-1 iommu=soft boot=zfs\n' };
  const added = await step(start, { add: ['amd_iommu=on', 'iommu=pt'] }, pveNvidiaFacts());
  t.is(added.files['/etc/kernel/cmdline'], 'root=ZFS=rpool/ROOT/pve-1 iommu=pt boot=zfs amd_iommu=on\n');
  const undone = await step(added.files, { state: 'absent' }, pveNvidiaFacts());
  t.deepEqual(undone.files, start);
  // Converged before records existed: nothing is provably passthru's, nothing is removed.
  const legacy = await step({ '/etc/kernel/cmdline': 'root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt\n' }, { state: 'absent' }, pveNvidiaFacts());
  t.is(legacy.plan.kind, 'noop');
});

test('undo: a corrupt record fails, naming it; state absent takes no add/remove', async (t) => {
  const p = await kernelCmdlineModule.plan(args({ record: CMDLINE_RECORD, state: 'absent' }), ctx(labFacts(), fakeObserver({ '/etc/default/grub': DEBIAN_GRUB, [CMDLINE_RECORD]: 'garbage' })));
  t.is(p.kind, 'fail');
  if (p.kind === 'fail') t.regex(p.msg, /kernel_cmdline\.json/);
  t.regex(kernelCmdlineModule.validate!(args({ state: 'absent', record: CMDLINE_RECORD, add: ['a=1'] })) ?? '', /make no sense/);
  t.regex(kernelCmdlineModule.validate!(args({ state: 'absent' })) ?? '', /needs a record/);
});
