/**
 * Check mode connects and probes the next stage's hosts while a stage runs (their facts are shown
 * when their stage starts); apply reaches a host only when its stage does (a stage may reboot or
 * create what the next logs into).
 */
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPlaybook } from '../../src/engine/run.ts';
import { EventBus } from '../../src/engine/events.ts';
import { loadPlaybook } from '../../src/load/playbook.ts';
import { loadInventory } from '../../src/inventory/index.ts';
import { modules } from '../../src/modules/index.ts';
import { parseProbe } from '../../src/facts/probe.ts';
import { LocalConnection } from '../../src/transport/local.ts';

async function order(check: boolean): Promise<{ seen: string[]; exit: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-preconnect-'));
  try {
    await mkdir(join(dir, 'roles/r'), { recursive: true });
    await writeFile(join(dir, 'roles/r/tasks.yaml'), `- name: Say\n  command:\n    cmd: "true"\n    creates: /\n`);
    await writeFile(join(dir, 'site.yaml'), `- name: A\n  hosts: a\n  roles: [r]\n- name: B\n  hosts: b\n  roles: [r]\n`);
    await writeFile(join(dir, 'inv.yaml'), `all:\n  hosts:\n    a: {}\n    b: {}\n`);
    const playbook = await loadPlaybook(join(dir, 'site.yaml'), { modules });
    const inventory = await loadInventory(join(dir, 'inv.yaml'));
    const seen: string[] = [];
    const bus = new EventBus();
    bus.on((e) => {
      if (e.type === 'stage-start') seen.push(`stage ${e.stage}`);
      if (e.type === 'facts') seen.push(`facts ${e.host}`);
    });
    const report = await runPlaybook({
      playbook, inventory, modules, check, forks: 10, extraVars: {}, noReboot: true, bus,
      connect: async (host) => {
        seen.push(`connect ${host.name}`);
        return new LocalConnection(host.name);
      },
      probe: async (conn) => {
        seen.push(`probe ${conn.host}`);
        return parseProbe('');
      },
    });
    return { seen, exit: report.exitCode };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const before = (seen: string[], a: string, b: string) => seen.indexOf(a) >= 0 && seen.indexOf(a) < seen.indexOf(b);

test('check: the next stage\'s host is connected and probed while the first stage runs; its facts shown in its stage', async (t) => {
  const { seen, exit } = await order(true);
  t.is(exit, 0);
  t.deepEqual(seen.filter((s) => s.startsWith('stage')), ['stage A', 'stage B']);
  t.true(before(seen, 'connect b', 'stage A'), seen.join(', '));
  t.true(before(seen, 'probe b', 'stage B'), seen.join(', '));
  t.true(before(seen, 'stage B', 'facts b'), seen.join(', '));
  t.is(seen.filter((s) => s === 'probe b').length, 1, 'probed once');
});

test('apply: a host is connected and probed when its stage reaches it, not before', async (t) => {
  const { seen, exit } = await order(false);
  t.is(exit, 0);
  t.deepEqual(seen, ['stage A', 'connect a', 'probe a', 'facts a', 'stage B', 'connect b', 'probe b', 'facts b']);
});
