/**
 * Handlers shared on purpose: Ansible's `listen`. Loading (a handler may listen, a task may not;
 * a notify may name a topic of its role), which handlers a notification reaches (handlers.ts),
 * and a host's stage through the local transport: each notified handler runs once, in definition
 * order, and same-named handlers that listen run once for every role that ships them.
 */
import test from 'ava';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlaybook } from '../../src/load/playbook.ts';
import { ConfigErrors } from '../../src/model/errors.ts';
import { modules } from '../../src/modules/index.ts';
import { LocalConnection } from '../../src/transport/local.ts';
import { EventBus } from '../../src/engine/events.ts';
import { runHostStage } from '../../src/engine/host.ts';
import { handlerKey, handlerRuns, notifyTargets, stageHandlers } from '../../src/engine/handlers.ts';
import type { Host, Inventory, Playbook } from '../../src/model/types.ts';
import type { Facts } from '../../src/facts/types.ts';

const mark = (what: string) => `  command:\n    cmd: "echo ${what} >> {{ dir }}/log"\n`;

/** Roles a and b ship the same listening handler "refresh"; role c has two handlers on topic "web". */
async function project(roles: string[] = ['a', 'b', 'c'], files: Record<string, string> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'passthru-listen-'));
  const all: Record<string, string> = {
    'roles/a/tasks.yaml': `- name: a writes\n  file:\n    path: "{{ dir }}/a.conf"\n    content: "a\\n"\n  notify: [refresh, own]\n`,
    'roles/a/handlers.yaml': `- name: refresh\n  listen: refresh\n${mark('refresh-a')}- name: own\n${mark('own-a')}`,
    'roles/b/tasks.yaml': `- name: b writes\n  file:\n    path: "{{ dir }}/b.conf"\n    content: "b\\n"\n  notify: refresh\n`,
    'roles/b/handlers.yaml': `- name: refresh\n  listen: [refresh]\n${mark('refresh-b')}`,
    'roles/c/tasks.yaml': `- name: c writes\n  file:\n    path: "{{ dir }}/c.conf"\n    content: "c\\n"\n  notify: web\n`,
    'roles/c/handlers.yaml': `- name: restart php\n  listen: web\n${mark('php')}- name: restart nginx\n  listen: [web, other]\n${mark('nginx')}- name: unrelated\n${mark('unrelated')}`,
    ...files,
  };
  all['site.yaml'] = `- name: Stage\n  hosts: all\n  reboot: never\n  roles: [${roles.join(', ')}]\n`;
  for (const [f, text] of Object.entries(all)) {
    await mkdir(join(dir, f, '..'), { recursive: true });
    await writeFile(join(dir, f), text);
  }
  return { dir, pb: join(dir, 'site.yaml') };
}

test('load: a handler may listen (a string or a list); a notify may name a topic of its role', async (t) => {
  const p = await project();
  const pb = await loadPlaybook(p.pb, { modules });
  t.deepEqual(pb.roles.get('a')!.handlers.map((h) => [h.name, h.listen]), [['refresh', ['refresh']], ['own', undefined]]);
  t.deepEqual(pb.roles.get('b')!.handlers[0]!.listen, ['refresh']);
  t.deepEqual(pb.roles.get('c')!.handlers.map((h) => h.listen), [['web'], ['web', 'other'], undefined]);
  t.deepEqual(pb.roles.get('c')!.tasks[0]!.notify, ['web'], 'a topic is a valid notify target');
});

test('load: listen on a task is refused at its position; a topic of another role is not a target', async (t) => {
  const p = await project(['a'], {
    'roles/a/tasks.yaml': `- name: a writes\n  file:\n    path: /tmp/x\n  listen: refresh\n  notify: web\n`,
  });
  const err = await t.throwsAsync(loadPlaybook(p.pb, { modules }));
  t.true(err instanceof ConfigErrors);
  const msgs = (err as ConfigErrors).errors.map((e) => `${e.pos?.line}:${e.pos?.col} ${e.message}`);
  t.true(msgs.includes('4:3 only a handler can listen'), msgs.join('\n'));
  t.true(msgs.some((m) => m.includes("notify target 'web' is not a handler of role 'a'")), msgs.join('\n'));
});

test('dispatch: by name within the role; by topic to every listener of the stage; same-named listeners are one', async (t) => {
  const p = await project();
  const pb = await loadPlaybook(p.pb, { modules });
  const hs = stageHandlers(pb, pb.stages[0]!);
  t.deepEqual(hs.map((h) => h.key), ['a\0refresh', 'a\0own', 'b\0refresh', 'c\0restart php', 'c\0restart nginx', 'c\0unrelated']);
  t.deepEqual(notifyTargets(hs, 'a', 'own'), ['a\0own']);
  t.deepEqual(notifyTargets(hs, 'a', 'refresh'), ['a\0refresh'], "a's own, not b's as well");
  t.deepEqual(notifyTargets(hs, 'b', 'refresh'), ['b\0refresh']);
  t.deepEqual(notifyTargets(hs, 'c', 'refresh'), ['a\0refresh'], 'a topic reaches listeners of other roles: the first defined');
  t.deepEqual(notifyTargets(hs, 'c', 'web'), ['c\0restart php', 'c\0restart nginx'], 'every listener of the topic');
  t.deepEqual(notifyTargets(hs, 'c', 'other'), ['c\0restart nginx']);
  t.deepEqual(notifyTargets(hs, 'a', 'nothing'), []);

  // Runs in definition order, each once; the second "refresh" says it already ran.
  const runs = handlerRuns(hs, new Set(['c\0restart nginx', 'b\0refresh', 'a\0refresh', 'c\0restart php']));
  t.deepEqual(runs.map((r) => [r.key, r.ranFor]), [
    ['a\0refresh', undefined],
    ['b\0refresh', 'a'],
    ['c\0restart php', undefined],
    ['c\0restart nginx', undefined],
  ]);
  // Handlers without listen keep their role's name to themselves.
  const plain = handlerRuns(
    hs.map((h) => ({ ...h, handler: { ...h.handler, listen: undefined } })),
    new Set([handlerKey('a', 'refresh'), handlerKey('b', 'refresh')]),
  );
  t.deepEqual(plain.map((r) => r.ranFor), [undefined, undefined]);
});

async function runStage(pb: Playbook, dir: string) {
  const host: Host = { name: 'box', vars: { passthru_state_dir: join(dir, 'state') }, groups: ['all'], conn: { host: 'box', port: 22, user: 'root', become: false, hostKeyChecking: 'off', transport: 'local' } as Host['conn'] };
  const inventory: Inventory = { file: 'inv', hosts: new Map([['box', host]]), groups: new Map() };
  const bus = new EventBus();
  return runHostStage({
    playbook: pb, inventory, modules, check: false, forks: 1, extraVars: { dir }, noReboot: true,
    bus, stage: pb.stages[0]!, host, conn: new LocalConnection('box'), facts: { hostname: 'box' } as unknown as Facts,
  });
}

test('a stage on a host: shared handlers run once, topics reach every listener, in definition order', async (t) => {
  const p = await project();
  const pb = await loadPlaybook(p.pb, { modules });
  const r = await runStage(pb, p.dir);
  t.is(r.status, 'ok', JSON.stringify(r.results));
  t.is(await readFile(join(p.dir, 'log'), 'utf8'), 'refresh-a\nown-a\nphp\nnginx\n');
  const handlers = r.results.filter((x) => x.kind === 'handler');
  t.deepEqual(handlers.map((x) => [x.role, x.task, x.status]), [
    ['a', 'refresh', 'changed'],
    ['a', 'own', 'changed'],
    ['b', 'refresh', 'ok'],
    ['c', 'restart php', 'changed'],
    ['c', 'restart nginx', 'changed'],
  ]);
  t.regex(handlers[2]!.msg, /^the same handler already ran for a \(listen: refresh\)$/);

  // Nothing changed the second time: no handler runs.
  const again = await runStage(pb, p.dir);
  t.deepEqual(again.results.filter((x) => x.kind === 'handler'), []);
  t.is(await readFile(join(p.dir, 'log'), 'utf8'), 'refresh-a\nown-a\nphp\nnginx\n');
});

test('a stage with only the second role: its own copy of the shared handler runs', async (t) => {
  const p = await project(['b']);
  const pb = await loadPlaybook(p.pb, { modules });
  const r = await runStage(pb, p.dir);
  t.is(r.status, 'ok');
  t.is(await readFile(join(p.dir, 'log'), 'utf8'), 'refresh-b\n');
});

test('the shipped roles share "refresh bootloader" and "update initramfs" through listen', async (t) => {
  const pb = await loadPlaybook(join(import.meta.dirname, '../../playbooks/gpu-passthrough.yaml'), { modules });
  const hs = stageHandlers(pb, pb.stages[0]!);
  const listening = (name: string) => hs.filter((h) => h.handler.name === name && h.handler.listen?.includes(name)).map((h) => h.role.name);
  t.deepEqual(listening('refresh bootloader'), ['iommu', 'acs-override', 'hugepages']);
  t.deepEqual(listening('update initramfs'), ['blacklist', 'vfio', 'vendor-reset']);
  const all = new Set(['iommu', 'acs-override', 'hugepages'].flatMap((r) => notifyTargets(hs, r, 'refresh bootloader')));
  t.deepEqual(handlerRuns(hs, all).filter((h) => h.handler.name === 'refresh bootloader').map((h) => [h.role.name, h.ranFor]), [
    ['iommu', undefined],
    ['acs-override', 'iommu'],
    ['hugepages', 'iommu'],
  ]);
  t.is(hs.filter((h) => h.handler.name === 'reboot' && h.handler.listen).length, 0, 'each role keeps its own reboot (its own reason)');
});
