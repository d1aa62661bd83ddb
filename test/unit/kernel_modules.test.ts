import test from 'ava';
import { editModulesList, kernelModulesModule } from '../../src/modules/kernel_modules.ts';
import type { FileState, Observer } from '../../src/modules/contract.ts';
import { labFacts } from '../fixtures/facts/hosts.ts';

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
  const a = { path: '/etc/modules', present: ['vfio', 'vfio_pci'], absent: ['vfio_virqfd'] };
  const ctx = (files: Record<string, string>) => ({ host: 'h', facts: labFacts(), vars: {}, observe: obs(files), check: false });
  const p = await kernelModulesModule.plan(a, ctx({ '/etc/modules': 'vfio_virqfd\n' }));
  t.is(p.kind, 'change');
  if (p.kind !== 'change') return;
  t.is(p.msg, '/etc/modules: +vfio +vfio_pci -vfio_virqfd');
  t.deepEqual(p.actions, [{ kind: 'write', path: '/etc/modules', content: 'vfio\nvfio_pci\n', mode: undefined }]);
  const q = await kernelModulesModule.plan(a, ctx({ '/etc/modules': 'vfio\nvfio_pci\n' }));
  t.is(q.kind, 'noop');
  const created = await kernelModulesModule.plan({ path: '/etc/modules-load.d/vfio.conf', present: ['vfio'], absent: [] }, ctx({}));
  t.like(created, { kind: 'change' });
});

test('validate rejects odd names and contradictions', (t) => {
  t.truthy(kernelModulesModule.validate!({ path: '/etc/modules', present: ['a b'], absent: [] }));
  t.truthy(kernelModulesModule.validate!({ path: '/etc/modules', present: ['vendor-reset'], absent: ['vendor_reset'] }));
  t.is(kernelModulesModule.validate!({ path: '/etc/modules', present: ['vfio'], absent: ['vfio_virqfd'] }), undefined);
});
