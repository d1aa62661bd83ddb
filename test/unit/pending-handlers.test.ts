import test from 'ava';
import { formatPendingHandlers, parsePendingHandlers, pendingHandlersPath } from '../../src/engine/pending-handlers.ts';
import type { Host } from '../../src/model/types.ts';

test('pending handlers: role<TAB>handler lines round-trip; junk lines are ignored', (t) => {
  const keys = ['vfio\0update initramfs', 'iommu\0refresh bootloader'];
  const text = formatPendingHandlers([...keys, keys[0]!]);
  t.is(text, 'vfio\tupdate initramfs\niommu\trefresh bootloader\n');
  t.deepEqual(parsePendingHandlers(text), keys);
  t.deepEqual(parsePendingHandlers('garbage\n\nrole\thandler\textra\n'), []);
  t.is(formatPendingHandlers([]), '');
});

test('pending handlers: the state dir comes from passthru_state_dir', (t) => {
  const host = (vars: Record<string, unknown>) => ({ name: 'h', vars, groups: [], conn: {} }) as unknown as Host;
  t.is(pendingHandlersPath(host({})), '/var/lib/passthru/pending-handlers');
  t.is(pendingHandlersPath(host({ passthru_state_dir: '/srv/pt' })), '/srv/pt/pending-handlers');
});
