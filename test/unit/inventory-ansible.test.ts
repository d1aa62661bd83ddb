/**
 * Inventory reading with Ansible's semantics, beyond the differential corpus: deliberate
 * differences (each a positioned error where Ansible would warn, run code, or read outside the
 * inventory), connection settings from ansible_* variables, repeatable -i, and the INI twin of
 * inventory.example.yaml.
 */
import test from 'ava';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInventory } from '../../src/inventory/index.ts';
import { jumpFromSshArgs } from '../../src/inventory/load.ts';
import { expandHostPattern } from '../../src/inventory/hostpattern.ts';
import { literalEval, shlexSplit } from '../../src/inventory/pyliteral.ts';
import { ConfigError, ConfigErrors } from '../../src/model/errors.ts';
import { runOracle } from '../helpers/ansible.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const bad = (f: string) => join(here, '..', 'fixtures', 'config', 'inventory', 'bad', 'ansible', f);

async function errorsOf(t: import('ava').ExecutionContext, src: string): Promise<string[]> {
  const e = await t.throwsAsync(loadInventory(src));
  if (e instanceof ConfigErrors) return e.errors.map((x) => x.format());
  t.true(e instanceof ConfigError, String(e));
  return [(e as ConfigError).format()];
}

const refused: [string, string][] = [
  ['dotdot-host.yaml', `${bad('dotdot-host.yaml')}:4:5: host name '../../etc/x' holds a '..' path segment`],
  ['dotdot-host.ini', `${bad('dotdot-host.ini')}:3:1: host name '../../etc/x' holds a '..' path segment`],
  ['dotdot-group.ini', `${bad('dotdot-group.ini')}:1:1: group name '..' holds a '..' path segment`],
  ['bad-section.ini', `${bad('bad-section.ini')}:1:1: section [web:hosts2] has unknown type: hosts2`],
  ['undefined-child.ini', `${bad('undefined-child.ini')}:2:1: section [parent:children] includes undefined group: missing`],
  ['unclosed.ini', `${bad('unclosed.ini')}:2:6: error parsing host definition 'h1 a="unclosed': No closing quotation`],
  ['no-equals.ini', `${bad('no-equals.ini')}:2:4: expected key=value host variable assignment, got: novalue`],
  ['vars-no-equals.ini', `${bad('vars-no-equals.ini')}:4:1: expected key=value, got: justakey`],
  ['vault.yaml', `${bad('vault.yaml')}:3:`],
  ['plugin.yaml', `${bad('plugin.yaml')}:1:1: inventory plugin configurations are not supported`],
  ['script', `${bad('script')}:1:1: inventory scripts are not run`],
  ['zero-step.ini', `${bad('zero-step.ini')}:2:1: host 'h[1:3:0]': host range step must not be 0`],
  ['cycle.yaml', `${bad('cycle.yaml')}:8:9: adding group 'a' as child to 'b' creates a recursive dependency loop`],
];
for (const [file, start] of refused) {
  test(`refused with a positioned error: ${file}`, async (t) => {
    const errs = await errorsOf(t, bad(file));
    t.true(errs[0]!.startsWith(start), errs.join('\n'));
    t.regex(errs[0]!, /\n {2}hint: /, 'every refusal carries a hint');
  });
}

test('a host named ../../x is refused before any file is read (Ansible would read host_vars/../../x)', async (t) => {
  // the same inventory without the bad name loads: only the name is refused
  const errs = await errorsOf(t, bad('dotdot-host.yaml'));
  t.is(errs.length, 1);
  t.regex(errs[0]!, /host_vars/);
});

test('connection settings from ansible_* variables, jump hosts from ansible_ssh_common_args', async (t) => {
  const src = join(here, '..', 'fixtures', 'config', 'inventory', 'conn', 'hosts.ini');
  const errs = await errorsOf(t, src);
  // pve6's ProxyCommand is not an ssh -W jump: refused with the host and position
  t.is(errs.length, 1);
  t.regex(errs[0]!, /hosts\.ini:7:\d+: host 'pve6': ansible_ssh_common_args: ProxyCommand "nc -x proxy:1080 %h %p" is not an ssh -W jump/);
  t.deepEqual(jumpFromSshArgs('-o ProxyJump=admin@bastion.example:2222'), { jump: 'admin@bastion.example:2222' });
  t.deepEqual(jumpFromSshArgs('-J jump1,jump2'), { jump: 'jump1' });
  t.deepEqual(jumpFromSshArgs('-o ProxyCommand="ssh -W %h:%p -q -p 2200 ops@gw.example"'), { jump: 'ops@gw.example:2200' });
  t.deepEqual(jumpFromSshArgs('-o StrictHostKeyChecking=no -C'), {});
  t.deepEqual(jumpFromSshArgs('-oProxyJump=gw'), { jump: 'gw' });
});

test('ansible_become_password and ansible_ssh_private_key_file reach the connection', async (t) => {
  const inv = await loadInventory('pve5,'); // a host list source
  t.deepEqual([...inv.hosts.keys()], ['pve5']);
  const src = join(here, '..', 'fixtures', 'config', 'inventory', 'conn', 'hosts.ini');
  const { readSources } = await import('../../src/inventory/ansible.ts');
  const ai = await readSources([src]);
  t.true(ai.errs.empty);
  const inv2 = await loadInventory([bad('../../basic/inventory.yaml')]);
  t.truthy(inv2.hosts.get('pve1'));
  // pve5 alone (pve6 is refused above): through a copy of its line
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const dir = mkdtempSync(join((await import('node:os')).tmpdir(), 'passthru-inv-'));
  writeFileSync(join(dir, 'hosts'), 'pve5 ansible_user=admin ansible_become=true ansible_become_password=s3cret ansible_ssh_private_key_file=~/.ssh/id_pve\npve1 ansible_ssh_common_args=\'-o ProxyJump=admin@bastion.example:2222\'\n');
  const inv3 = await loadInventory(join(dir, 'hosts'));
  const c = inv3.hosts.get('pve5')!.conn;
  t.is(c.user, 'admin');
  t.true(c.become);
  t.is(c.becomePassword, 's3cret');
  t.is(c.identityFile, join(homedir(), '.ssh/id_pve'));
  t.is(inv3.hosts.get('pve1')!.conn.jump, 'admin@bastion.example:2222');
});

test('several sources merge in order: the later source wins a host variable', async (t) => {
  const ms = join(here, '..', 'fixtures', 'ansible-inventory', 'multi-source');
  const inv = await loadInventory([join(ms, 'site-a', 'hosts.ini'), join(ms, 'site-b', 'hosts.yaml')]);
  t.is(inv.hosts.get('shared')!.vars.who, 'b');
  t.is(inv.hosts.get('shared')!.vars.only_a, 1);
  const rev = await loadInventory([join(ms, 'site-b', 'hosts.yaml'), join(ms, 'site-a', 'hosts.ini')]);
  t.is(rev.hosts.get('shared')!.vars.who, 'a');
  t.deepEqual(inv.hosts.get('shared')!.groups, ['all', 'gpu', 'proxmox']);
});

test('host patterns: ranges, strides, letters, ports', (t) => {
  t.deepEqual(expandHostPattern('pve[01:03].lab').names, ['pve01.lab', 'pve02.lab', 'pve03.lab']);
  t.deepEqual(expandHostPattern('n[1:10:4]').names, ['n1', 'n5', 'n9']);
  t.deepEqual(expandHostPattern('g[a:c]').names, ['ga', 'gb', 'gc']);
  t.deepEqual(expandHostPattern('h:2222'), { names: ['h'], port: 2222 });
  t.deepEqual(expandHostPattern('[2001:db8::1]:2222'), { names: ['2001:db8::1'], port: 2222 });
  t.throws(() => expandHostPattern('x[1:100000000]'), { message: /more than 100000/ });
});

test('Python literals and shell words as ansible-core reads INI values', (t) => {
  t.deepEqual(shlexSplit(`h a="x y" b='c d' e=f\\ g # comment`), ['h', 'a=x y', 'b=c d', 'e=f g']);
  t.deepEqual(literalEval('[1, 0x10, 1_000, -2.5, True, None]'), { value: [1, 16, 1000, -2.5, true, null] });
  t.deepEqual(literalEval("{'a': (1, 2)}"), { value: { a: [1, 2] } });
  t.is(literalEval('007'), undefined);
  t.is(literalEval('hello'), undefined);
  t.is(literalEval("__import__('os')"), undefined);
  t.throws(() => literalEval('{1, 2}'), { message: /sets have no JSON form/ });
});

test('inventory.example.ini is the INI twin of inventory.example.yaml (passthru and ansible-inventory)', async (t) => {
  const yaml = await loadInventory(join(root, 'inventory.example.yaml'));
  const ini = await loadInventory(join(root, 'inventory.example.ini'));
  t.deepEqual([...ini.hosts.keys()].sort(), [...yaml.hosts.keys()].sort());
  for (const [name, h] of yaml.hosts) {
    const other = ini.hosts.get(name)!;
    t.deepEqual(other.vars, h.vars, name);
    t.deepEqual(other.groups, h.groups, name);
    t.deepEqual(other.conn, h.conn, name);
  }
  t.true(yaml.hosts.size >= 4);
  const o = runOracle({
    inventory: [
      { id: 'yaml', sources: [join(root, 'inventory.example.yaml')] },
      { id: 'ini', sources: [join(root, 'inventory.example.ini')] },
    ],
  });
  t.truthy(o.inventory.yaml!.list, o.inventory.yaml!.error);
  t.deepEqual(o.inventory.ini!.list, o.inventory.yaml!.list);
});
