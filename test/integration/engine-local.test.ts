/**
 * The whole engine through the CLI entry point on the local transport, against a temporary
 * directory: apply, idempotence (second run 0 changed), check mode (0 bytes changed, drift exit
 * code, diffs), handlers, tags, registered variables, the JSON report and invalid input.
 */
import test from 'ava';
import { mkdtemp, mkdir, readFile, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import os from 'node:os';
import { main } from '../../src/cli/main.ts';
import { EXIT, type RunReport } from '../../src/model/types.ts';
import { captureIo as capture, runCli, tempReportPath } from '../helpers/cli.ts';

async function project(): Promise<{ dir: string; target: string; pb: string; inv: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'passthru-engine-'));
  const target = path.join(dir, 'target');
  await mkdir(target);
  await mkdir(path.join(dir, 'roles/demo'), { recursive: true });
  await mkdir(path.join(dir, 'playbooks'));
  await writeFile(path.join(target, 'existing.conf'), '# keep me\nalpha=1\nbeta=2\n');
  await writeFile(
    path.join(dir, 'roles/demo/defaults.yaml'),
    `greeting: hello\nmodules_wanted: [vfio, vfio_pci]\n`,
  );
  await writeFile(
    path.join(dir, 'roles/demo/tasks.yaml'),
    `- name: Write a templated file
  file:
    path: "{{ target }}/greeting.conf"
    content: "{{ greeting }} from {{ inventory_hostname }}\\n"
    mode: "0640"
  tags: [files]
  notify: [mark]
- name: Replace a line by regexp
  line:
    path: "{{ target }}/existing.conf"
    regexp: "^beta="
    line: "beta={{ beta }}"
  tags: [lines]
  register: beta_line
- name: A guarded command
  command:
    cmd: "touch {{ target }}/made-by-command"
    creates: "{{ target }}/made-by-command"
  tags: [cmd]
- name: Only when the line changed
  file:
    path: "{{ target }}/beta-changed"
    content: "yes\\n"
  when: beta_line.changed
  tags: [lines]
- name: Never unless asked
  file:
    path: "{{ target }}/never"
    content: "x\\n"
  tags: [never, special]
`,
  );
  await writeFile(
    path.join(dir, 'roles/demo/handlers.yaml'),
    `- name: mark
  command:
    cmd: "sh -c 'echo ran >> {{ target }}/handler-runs'"
`,
  );
  await writeFile(
    path.join(dir, 'roles/demo/gates.yaml'),
    `- name: The greeting is there
  assert:
    that: ["greeting == 'hello'"]
    fail_msg: greeting is wrong
  tags: [verify]
`,
  );
  const pb = path.join(dir, 'playbooks/site.yaml');
  await writeFile(
    pb,
    `- name: Demo stage
  hosts: local
  reboot: never
  roles:
    - role: demo
      tags: [demo]
`,
  );
  const inv = path.join(dir, 'inventory.yaml');
  await writeFile(
    inv,
    `all:
  vars:
    target: ${JSON.stringify(target)}
    beta: 3
    passthru_state_dir: ${JSON.stringify(path.join(dir, 'state'))}
  children:
    local:
      hosts:
        box1:
          transport: local
`,
  );
  return { dir, target, pb, inv };
}

async function treeHash(dir: string): Promise<string> {
  const h = createHash('sha256');
  for (const name of (await readdir(dir)).sort()) {
    h.update(name);
    h.update(await readFile(path.join(dir, name)));
  }
  return h.digest('hex');
}

async function run(args: string[]): Promise<{ code: number; out: string; report: RunReport }> {
  const json = tempReportPath();
  const r = await runCli([...args, '--failed-hosts', `${json}.failed`], { json, keep: false });
  return { code: r.code, out: r.text, report: r.report };
}

test('apply converges, the second run changes nothing, check mode changes no byte', async (t) => {
  const p = await project();
  const first = await run(['apply', p.pb, '-i', p.inv]);
  t.is(first.code, EXIT.ok, first.out);
  t.is(first.report.recap.box1!.changed, 5, first.out); // file, line, command, when-task, handler
  t.is(await readFile(path.join(p.target, 'greeting.conf'), 'utf8'), 'hello from box1\n');
  t.is(await readFile(path.join(p.target, 'existing.conf'), 'utf8'), '# keep me\nalpha=1\nbeta=3\n');
  t.is(await readFile(path.join(p.target, 'handler-runs'), 'utf8'), 'ran\n');
  await t.throwsAsync(readFile(path.join(p.target, 'never')));
  const tasks = first.report.hosts.box1!.tasks;
  t.deepEqual(
    tasks.map((x) => [x.kind, x.task, x.status]),
    [
      ['task', 'Write a templated file', 'changed'],
      ['task', 'Replace a line by regexp', 'changed'],
      ['task', 'A guarded command', 'changed'],
      ['task', 'Only when the line changed', 'changed'],
      ['handler', 'mark', 'changed'],
      ['gate', 'The greeting is there', 'ok'],
    ],
  );

  const second = await run(['apply', p.pb, '-i', p.inv]);
  t.is(second.code, EXIT.ok, second.out);
  t.is(second.report.recap.box1!.changed, 0, second.out);
  t.is(await readFile(path.join(p.target, 'handler-runs'), 'utf8'), 'ran\n', 'handler not run again');

  const before = await treeHash(p.target);
  const check = await run(['check', p.pb, '-i', p.inv]);
  t.is(check.code, EXIT.ok, check.out);
  t.is(await treeHash(p.target), before);
});

test('check finds a hand-made drift with a diff, touches nothing, and apply fixes exactly that', async (t) => {
  const p = await project();
  t.is((await run(['apply', p.pb, '-i', p.inv])).code, EXIT.ok);
  await writeFile(path.join(p.target, 'existing.conf'), '# keep me\nalpha=1\nbeta=9\n');
  const before = await treeHash(p.target);
  const check = await run(['check', p.pb, '-i', p.inv]);
  t.is(check.code, EXIT.drift, check.out);
  t.is(await treeHash(p.target), before, 'check mode changed no byte');
  t.regex(check.out, /-beta=9\n\+beta=3/);
  const drifted = check.report.hosts.box1!.tasks.filter((x) => x.changed).map((x) => x.task);
  // The when-task runs (the line would change) but its file is already as wanted: no drift there.
  t.deepEqual(drifted, ['Replace a line by regexp']);
  const fix = await run(['apply', p.pb, '-i', p.inv]);
  t.is(fix.code, EXIT.ok, fix.out);
  t.is(await readFile(path.join(p.target, 'existing.conf'), 'utf8'), '# keep me\nalpha=1\nbeta=3\n');
  t.is((await run(['check', p.pb, '-i', p.inv])).code, EXIT.ok);
});

test('--tags runs only the tagged tasks; never-tagged tasks run only when asked', async (t) => {
  const p = await project();
  const r = await run(['apply', p.pb, '-i', p.inv, '--tags', 'lines']);
  t.is(r.code, EXIT.ok, r.out);
  t.deepEqual(
    r.report.hosts.box1!.tasks.filter((x) => x.kind === 'task').map((x) => x.task),
    ['Replace a line by regexp', 'Only when the line changed'],
  );
  await t.throwsAsync(readFile(path.join(p.target, 'greeting.conf')));
  const special = await run(['apply', p.pb, '-i', p.inv, '--tags', 'special']);
  t.is(special.code, EXIT.ok, special.out);
  t.is(await readFile(path.join(p.target, 'never'), 'utf8'), 'x\n');
});

test('extra vars override inventory vars', async (t) => {
  const p = await project();
  const r = await run(['apply', p.pb, '-i', p.inv, '-e', 'beta=7', '-e', 'greeting=hi']);
  t.is(r.code, EXIT.hostFailed, r.out); // the gate expects greeting == 'hello'
  t.is(await readFile(path.join(p.target, 'existing.conf'), 'utf8'), '# keep me\nalpha=1\nbeta=7\n');
  const gate = r.report.hosts.box1!.tasks.find((x) => x.kind === 'gate')!;
  t.is(gate.status, 'failed');
  t.regex(gate.msg, /greeting is wrong/);
});

test('invalid input: exit 4 with file:line:col, and no host is touched', async (t) => {
  const p = await project();
  await writeFile(
    path.join(p.dir, 'roles/demo/tasks.yaml'),
    `- name: Typo in module
  fiel:
    path: /nowhere
`,
  );
  const io = capture();
  const code = await main(['apply', p.pb, '-i', p.inv], io);
  t.is(code, EXIT.invalidInput);
  t.regex(io.text(), new RegExp(`${path.join(p.dir, 'roles/demo/tasks.yaml').replace(/[.]/g, '\\.')}:2:3: .*fiel`));
  t.regex(io.text(), /file/); // the closest module name as a hint
  t.deepEqual((await readdir(p.target)).sort(), ['existing.conf']);
});

test('a --limit pattern that matches nothing is invalid input', async (t) => {
  const p = await project();
  const io = capture();
  t.is(await main(['apply', p.pb, '-i', p.inv, '--limit', 'bx1'], io), EXIT.invalidInput);
  t.regex(io.text(), /box1/);
});

test('variables written with templates are rendered when used, with the final variables', async (t) => {
  const p = await project();
  await writeFile(
    path.join(p.dir, 'playbooks/site.yaml'),
    `- name: Demo stage
  hosts: local
  reboot: never
  vars:
    greeting: "hello"
    message: "{{ greeting }} from {{ inventory_hostname }} (beta {{ beta_twice }})"
    beta_twice: "{{ beta * 2 }}"
  roles:
    - role: demo
      tags: [demo]
`,
  );
  await writeFile(
    path.join(p.dir, 'roles/demo/tasks.yaml'),
    `- name: Uses a templated variable
  file:
    path: "{{ target }}/message"
    content: "{{ message }}\\n"
`,
  );
  await writeFile(path.join(p.dir, 'roles/demo/handlers.yaml'), '[]\n');
  const r = await run(['apply', p.pb, '-i', p.inv]);
  t.is(r.code, EXIT.ok, r.out);
  t.is(await readFile(path.join(p.target, 'message'), 'utf8'), 'hello from box1 (beta 6)\n');
});

test('a task failure still runs the handlers notified before it; the host is failed and exits 2', async (t) => {
  const p = await project();
  await writeFile(
    path.join(p.dir, 'roles/demo/tasks.yaml'),
    `- name: Write a templated file
  file:
    path: "{{ target }}/greeting.conf"
    content: "hello\\n"
  notify: [mark]
- name: Fails
  command:
    cmd: "false"
- name: Never reached
  file:
    path: "{{ target }}/never"
    content: "x\\n"
`,
  );
  const r = await run(['apply', p.pb, '-i', p.inv]);
  t.is(r.code, EXIT.hostFailed, r.out);
  t.is(await readFile(path.join(p.target, 'handler-runs'), 'utf8'), 'ran\n');
  await t.throwsAsync(readFile(path.join(p.target, 'never')));
  t.deepEqual(
    r.report.hosts.box1!.tasks.map((x) => [x.kind, x.task, x.status]),
    [
      ['task', 'Write a templated file', 'changed'],
      ['task', 'Fails', 'failed'],
      ['handler', 'mark', 'changed'],
    ],
  );
  t.deepEqual(r.report.failedHosts, ['box1']);
});

test('--command-timeout and --forks are validated before anything runs', async (t) => {
  const p = await project();
  for (const bad of [['--command-timeout', 'abc'], ['--forks', '0']]) {
    const io = capture();
    t.is(await main(['apply', p.pb, '-i', p.inv, ...bad], io), EXIT.invalidInput, io.text());
  }
  t.deepEqual((await readdir(p.target)).sort(), ['existing.conf']);
});

test('a stage where every host failed does not stop a later stage on other hosts', async (t) => {
  const p = await project();
  await writeFile(
    p.inv,
    `all:
  vars:
    target: ${JSON.stringify(p.target)}
    beta: 3
    transport: local
    passthru_state_dir: ${JSON.stringify(path.join(p.dir, 'state'))}
  children:
    first: { hosts: { box1: {} } }
    second: { hosts: { box2: {} } }
`,
  );
  await writeFile(
    p.pb,
    `- name: Fails everywhere
  hosts: first
  reboot: never
  roles: [demo]
  vars: { greeting: wrong }
- name: Runs anyway
  hosts: second
  reboot: never
  roles: [demo]
`,
  );
  const r = await run(['apply', p.pb, '-i', p.inv]);
  t.is(r.code, EXIT.hostFailed, r.out);
  t.deepEqual(r.report.failedHosts, ['box1']);
  t.true(r.report.recap.box2!.changed > 0, r.out);
  t.is(r.report.recap.box2!.failed, 0);
});

test('handlers notified by a run that stopped before they ran are run by the next run (and check reports them)', async (t) => {
  const p = await project();
  const first = await run(['apply', p.pb, '-i', p.inv]);
  t.is(first.code, EXIT.ok, first.out);
  const state = path.join(p.dir, 'state', 'pending-handlers');
  await t.throwsAsync(readFile(state), undefined, 'no record left once the handlers ran');
  // As an interrupted run leaves it: the task changed and notified, the handler never ran.
  await mkdir(path.dirname(state), { recursive: true });
  await writeFile(state, 'demo\tmark\n');
  const check = await run(['check', p.pb, '-i', p.inv]);
  t.is(check.code, EXIT.drift, check.out);
  t.deepEqual(
    check.report.hosts.box1!.tasks.filter((x) => x.changed).map((x) => [x.kind, x.task]),
    [['handler', 'mark']],
  );
  t.is(await readFile(state, 'utf8'), 'demo\tmark\n', 'check mode leaves the record');
  const again = await run(['apply', p.pb, '-i', p.inv]);
  t.is(again.code, EXIT.ok, again.out);
  t.is(await readFile(path.join(p.target, 'handler-runs'), 'utf8'), 'ran\nran\n');
  await t.throwsAsync(readFile(state));
  t.is((await run(['apply', p.pb, '-i', p.inv])).report.recap.box1!.changed, 0);
});

test.serial('Ctrl-C (a serial test: the signal reaches this whole process): no new work starts, the running command finishes, exit 130, unfinished hosts listed for --limit @file', async (t) => {
  const p = await project();
  await writeFile(
    path.join(p.dir, 'roles/demo/tasks.yaml'),
    `- name: Slow
  command:
    cmd: "touch {{ target }}/slow-started; sleep 1.5; touch {{ target }}/slow-done"
- name: After the interrupt
  file:
    path: "{{ target }}/never"
    content: "x\\n"
`,
  );
  const pending = run(['apply', p.pb, '-i', p.inv]);
  // The interrupt lands while the slow command runs: wait until it has started (a fixed delay
  // raced the run's start on a loaded machine).
  for (let i = 0; i < 600 && !existsSync(path.join(p.target, 'slow-started')); i++) await new Promise((r) => setTimeout(r, 50));
  process.kill(process.pid, 'SIGINT');
  const r = await pending;
  t.is(r.code, EXIT.interrupted, r.out);
  t.regex(r.out, /interrupted: starting no new work/);
  t.is(await readFile(path.join(p.target, 'slow-done'), 'utf8'), '', 'the running command finished');
  await t.throwsAsync(readFile(path.join(p.target, 'never')));
  t.deepEqual(r.report.failedHosts, ['box1']);
});

test('list: stages, hosts and the tasks a --tags selection runs, without touching the host', async (t) => {
  const p = await project();
  const before = await treeHash(p.target);
  const io = capture();
  t.is(await main(['list', p.pb, '-i', p.inv, '--tags', 'lines'], io), EXIT.ok, io.text());
  const out = io.text();
  t.regex(out, /stage: Demo stage/);
  t.regex(out, /hosts \(1\): box1/);
  t.regex(out, /demo › Replace a line by regexp {2}\[line\]/);
  t.notRegex(out, /Write a templated file/);
  t.notRegex(out, /gates:/, 'the gate is not tagged lines');
  const gates = capture();
  t.is(await main(['list', p.pb, '-i', p.inv, '--tags', 'verify'], gates), EXIT.ok);
  t.regex(gates.text(), /gates:\n {4}demo › The greeting is there {2}\[assert\]/);
  t.notRegex(gates.text(), / {2}tasks:/);
  t.is(await treeHash(p.target), before);
});

test('modules: every registered module with its arguments', async (t) => {
  const { modules } = await import('../../src/modules/index.ts');
  const io = capture();
  t.is(await main(['modules'], io), EXIT.ok);
  for (const name of modules.keys()) t.regex(io.text(), new RegExp(`^${name}( \\(read-only\\))?$`, 'm'));
  t.regex(io.text(), /^ {4}path: string \(required\)/m);
});

test('apply --check --diff is check mode; -v shows unchanged tasks; plain output has no colour codes', async (t) => {
  const p = await project();
  const before = await treeHash(p.target);
  const dry = await run(['apply', p.pb, '-i', p.inv, '--check', '--diff', '--progress', 'plain']);
  t.is(dry.code, EXIT.drift, dry.out);
  t.is(await treeHash(p.target), before);
  t.regex(dry.out, /\+hello from box1/);
  t.false(dry.out.includes('\x1b['));
  t.is((await run(['apply', p.pb, '-i', p.inv])).code, EXIT.ok);
  const quiet = await run(['apply', p.pb, '-i', p.inv, '--progress', 'plain']);
  const verbose = await run(['apply', p.pb, '-i', p.inv, '--progress', 'plain', '-v']);
  t.notRegex(quiet.out, /^ok +box1 \| Demo stage › demo › Write a templated file/m);
  t.regex(verbose.out, /^ok +box1 \| Demo stage › demo › Write a templated file/m);
});

test('two roles notifying the same handler (same name, listen) share one run of it', async (t) => {
  const p = await project();
  await mkdir(path.join(p.dir, 'roles/demo2'));
  await writeFile(
    path.join(p.dir, 'roles/demo2/tasks.yaml'),
    `- name: Another file
  file:
    path: "{{ target }}/other.conf"
    content: "x\\n"
  notify: [mark]
`,
  );
  // Both roles ship the handler and announce that it is shared (listen), as iommu, acs-override and hugepages do.
  const shared = `${await readFile(path.join(p.dir, 'roles/demo/handlers.yaml'), 'utf8')}  listen: mark\n`;
  await writeFile(path.join(p.dir, 'roles/demo/handlers.yaml'), shared);
  await writeFile(path.join(p.dir, 'roles/demo2/handlers.yaml'), shared);
  await writeFile(p.pb, `- name: Demo stage\n  hosts: local\n  reboot: never\n  roles: [demo, demo2]\n`);
  const r = await run(['apply', p.pb, '-i', p.inv]);
  t.is(r.code, EXIT.ok, r.out);
  t.is(await readFile(path.join(p.target, 'handler-runs'), 'utf8'), 'ran\n');
  const handlers = r.report.hosts.box1!.tasks.filter((x) => x.kind === 'handler');
  t.deepEqual(handlers.map((x) => [x.role, x.status]), [['demo', 'changed'], ['demo2', 'ok']]);
  t.regex(handlers[1]!.msg, /already ran for demo/);
});

test('a stage whose hosts: names a group this inventory lacks is skipped with a warning, as in Ansible; the run goes on', async (t) => {
  const p = await project();
  const pb = await readFile(p.pb, 'utf8');
  await writeFile(p.pb, `${pb}- name: Guests
  hosts: gpu_guests
  roles: [demo]
`);
  const r = await run(['apply', p.pb, '-i', p.inv, '--progress', 'plain']);
  t.is(r.code, EXIT.ok, r.out);
  t.regex(r.out, /warning: .*site\.yaml:7:3: stage "Guests": host pattern 'gpu_guests' matches no host or group.*; skipped/);
  t.true(r.report.recap.box1!.changed > 0);
  // validate and list say it without connecting
  const io = capture();
  t.is(await main(['validate', p.pb, '-i', p.inv], io), EXIT.ok, io.text());
  t.regex(io.text(), /warning: .*stage "Guests".*skipped/);
  t.regex(io.text(), /^ok: .*2 stage\(s\), 1 role\(s\).*1 stage\(s\) would run on 1 host\(s\), 1 skipped\. No host was contacted\.$/m);
});

test('no stage with any host is invalid input (exit 4), nothing runs', async (t) => {
  const p = await project();
  await writeFile(p.pb, `- name: Guests only
  hosts: gpu_guests
  roles: [demo]
`);
  const io = capture();
  t.is(await main(['apply', p.pb, '-i', p.inv], io), EXIT.invalidInput, io.text());
  t.regex(io.text(), /site\.yaml:1:3: no stage has a host to run on: "Guests only" \(hosts: gpu_guests\)/);
  t.regex(io.text(), /hint: the inventory .* has the groups local/);
  t.deepEqual((await readdir(p.target)).sort(), ['existing.conf']);
  const io2 = capture();
  t.is(await main(['validate', p.pb, '-i', p.inv], io2), EXIT.invalidInput);
});

test('the recap counts as Ansible does: ok includes changed', async (t) => {
  const p = await project();
  const r = await run(['apply', p.pb, '-i', p.inv, '--progress', 'plain']);
  const rc = r.report.recap.box1!;
  t.true(rc.ok >= rc.changed && rc.changed > 0, JSON.stringify(rc));
  t.regex(r.out, /RECAP \(ok counts changed tasks too, as Ansible does\)/);
  t.regex(r.out, new RegExp(`box1\\s+ok=${rc.ok}\\s+changed=${rc.changed}`));
});
