import test from 'ava';
import { editModulesList, kernelModulesModule, MODULES_RECORD, undoModulesList, type KernelModulesArgs } from '../../src/modules/kernel_modules.ts';
import type { FileState, Observer, Plan } from '../../src/modules/contract.ts';
import { labFacts } from '../fixtures/facts/hosts.ts';
import { filesAfter } from './modules-fake.ts';

const DEBIAN_MODULES = `# /etc/modules: kernel modules to load at boot time.
#
# This file contains the names of kernel modules that should be loaded
# at boot time, one per line. Lines beginning with "#" are ignored.
# Parameters can be specified after the module name.

`;

test('appends missing modules, keeps comments and blank lines', (t) => {
  const out = editModulesList(DEBIAN_MODULES, ['vfio', 'vfio_iommu_type1', 'vfio_pci'], []);
  t.is(out, `${DEBIAN_MODULES}vfio\nvfio_iommu_type1\nvfio_pci\n`);
  t.is(editModulesList(out, ['vfio', 'vfio_iommu_type1', 'vfio_pci'], []), out);
});

test('removes absent modules only (vfio_virqfd on 6.2+), keeps order and parameters', (t) => {
  const before = 'vfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n# vfio_virqfd stays as a comment\nloop max_loop=8\n';
  t.is(editModulesList(before, ['vfio', 'vfio_pci'], ['vfio_virqfd']), 'vfio\nvfio_iommu_type1\nvfio_pci\n# vfio_virqfd stays as a comment\nloop max_loop=8\n');
});

test('- and _ are the same module; missing final newline kept when nothing changes', (t) => {
  t.is(editModulesList('vendor_reset', ['vendor-reset'], []), 'vendor_reset');
  t.is(editModulesList('vendor-reset\n', [], ['vendor_reset']), '');
  t.is(editModulesList('', ['vfio'], []), 'vfio\n');
  t.is(editModulesList('a', ['b'], []), 'a\nb\n');
});

const obs = (files: Record<string, string>): Observer => {
  const file = async (p: string): Promise<FileState> => (p in files ? { exists: true, content: files[p] } : { exists: false, content: '' });
  return { file, stat: file, cmd: async () => ({ code: 0, stdout: '', stderr: '' }) };
};

test('plan: change with diff, then no-op', async (t) => {
  const a = { path: '/etc/modules', present: ['vfio', 'vfio_pci'], absent: ['vfio_virqfd'], state: 'present' as const, record: '' };
  const ctx = (files: Record<string, string>) => ({ host: 'h', facts: labFacts(), vars: {}, observe: obs(files), check: false });
  const p = await kernelModulesModule.plan(a, ctx({ '/etc/modules': 'vfio_virqfd\n' }));
  t.is(p.kind, 'change');
  if (p.kind !== 'change') return;
  t.is(p.msg, '/etc/modules: +vfio +vfio_pci -vfio_virqfd');
  t.deepEqual(p.actions, [{ kind: 'write', path: '/etc/modules', content: 'vfio\nvfio_pci\n', mode: undefined }]);
  const q = await kernelModulesModule.plan(a, ctx({ '/etc/modules': 'vfio\nvfio_pci\n' }));
  t.is(q.kind, 'noop');
  const created = await kernelModulesModule.plan({ path: '/etc/modules-load.d/vfio.conf', present: ['vfio'], absent: [], state: 'present', record: '' }, ctx({}));
  t.like(created, { kind: 'change' });
});

test('validate rejects odd names and contradictions', (t) => {
  t.truthy(kernelModulesModule.validate!({ path: '/etc/modules', present: ['a b'], absent: [], state: 'present', record: '' }));
  t.truthy(kernelModulesModule.validate!({ path: '/etc/modules', present: ['vendor-reset'], absent: ['vendor_reset'], state: 'present', record: '' }));
  t.is(kernelModulesModule.validate!({ path: '/etc/modules', present: ['vfio'], absent: ['vfio_virqfd'], state: 'present', record: '' }), undefined);
});

/** Plan with the default record, then "apply" the writes and deletes on the fake files. */
async function step(files: Record<string, string>, a: Partial<KernelModulesArgs>): Promise<{ plan: Plan; files: Record<string, string> }> {
  const args: KernelModulesArgs = { path: '/etc/modules', present: [], absent: [], state: 'present', record: MODULES_RECORD, ...a };
  const plan = await kernelModulesModule.plan(args, { host: 'h', facts: labFacts(), vars: {}, observe: obs(files), check: false });
  return { plan, files: filesAfter(files, plan) };
}

test('undo: only the lines it appended go (the user\'s own vfio stays), byte for byte the start; second undo no-op', async (t) => {
  const start = { '/etc/modules': `${DEBIAN_MODULES}vfio\nloop max_loop=8` };
  const added = await step(start, { present: ['vfio', 'vfio_iommu_type1', 'vfio_pci'] });
  t.is(added.files['/etc/modules'], `${DEBIAN_MODULES}vfio\nloop max_loop=8\nvfio_iommu_type1\nvfio_pci\n`);
  t.deepEqual(JSON.parse(added.files[MODULES_RECORD]!).files, { '/etc/modules': { added: ['vfio_iommu_type1', 'vfio_pci'], noFinalNewline: true } });
  const more = await step(added.files, { present: ['vendor-reset'] });
  t.deepEqual(JSON.parse(more.files[MODULES_RECORD]!).files['/etc/modules'].added, ['vfio_iommu_type1', 'vfio_pci', 'vendor-reset']);
  const undone = await step(more.files, { state: 'absent' });
  t.is(undone.plan.kind, 'change');
  t.deepEqual(undone.files, start);
  t.is((await step(undone.files, { state: 'absent' })).plan.kind, 'noop');
});

test('undo: a list it created is deleted when nothing else is in it; a module later made absent leaves the record', async (t) => {
  const added = await step({}, { path: '/etc/modules-load.d/vfio.conf', present: ['vfio', 'vfio_virqfd'] });
  const moved = await step(added.files, { path: '/etc/modules-load.d/vfio.conf', absent: ['vfio_virqfd'] });
  t.deepEqual(JSON.parse(moved.files[MODULES_RECORD]!).files['/etc/modules-load.d/vfio.conf'], { added: ['vfio'], created: true });
  const undone = await step(moved.files, { path: '/etc/modules-load.d/vfio.conf', state: 'absent' });
  t.deepEqual(undone.files, {});
  t.is(undoModulesList('# mine\nvfio\n', { added: ['vfio'], created: true }), '# mine\n');
});
