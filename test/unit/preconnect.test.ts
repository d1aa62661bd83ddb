/**
 * Check mode opens the next stage's connections while a stage runs; apply opens a host's
 * connection only when its stage reaches it (a stage may reboot or create what the next logs into).
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
    });
    const report = await runPlaybook({
      playbook, inventory, modules, check, forks: 10, extraVars: {}, noReboot: true, bus,
      connect: async (host) => {
        seen.push(`connect ${host.name}`);
        return new LocalConnection(host.name);
      },
      probe: async () => parseProbe(''),
    });
    return { seen, exit: report.exitCode };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('check: the next stage\'s host is connected while the first stage runs', async (t) => {
  const { seen, exit } = await order(true);
  t.deepEqual(seen, ['connect b', 'stage A', 'connect a', 'stage B']);
  t.is(exit, 0);
});

test('apply: a host is connected when its stage reaches it, not before', async (t) => {
  const { seen, exit } = await order(false);
  t.deepEqual(seen, ['stage A', 'connect a', 'stage B', 'connect b']);
  t.is(exit, 0);
});
