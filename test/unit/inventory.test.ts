import test from 'ava';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInventory } from '../../src/inventory/index.ts';
import { ConfigError, ConfigErrors } from '../../src/model/errors.ts';

const here = dirname(fileURLToPath(import.meta.url));
const fx = (...p: string[]): string => join(here, '..', 'fixtures', 'config', 'inventory', ...p);
const basic = fx('basic', 'inventory.yaml');

test('hosts keep inventory order and group membership includes parents and all', async (t) => {
  const inv = await loadInventory(basic);
  t.deepEqual([...inv.hosts.keys()], ['solo', 'pve1', 'pve2', 'pve3']);
  t.deepEqual(inv.hosts.get('pve2')!.groups, ['all', 'alpha', 'proxmox', 'zeta', 'gpu', 'storage']);
  t.deepEqual(inv.hosts.get('solo')!.groups, ['all', 'ungrouped']); // as in Ansible: in no group but all
  t.deepEqual(inv.groups.get('proxmox')!.children, ['gpu', 'storage']);
  t.deepEqual(inv.groups.get('gpu')!.hosts, ['pve1', 'pve2']);
  t.deepEqual(inv.hosts.get('pve1')!.pos, { file: basic, line: 23, col: 13 });
});

test('variable precedence: all < parent < child < host, siblings alphabetical', async (t) => {
  const inv = await loadInventory(basic);
  const v = (h: string) => inv.hosts.get(h)!.vars;
  t.is(v('solo').level, 'all');
  t.is(v('pve3').level, 'storage'); // child of proxmox overrides proxmox and all
  t.is(v('pve2').level, 'storage'); // gpu and storage at the same depth: storage (later) wins
  t.is(v('pve2').sibling, 'zeta'); // alpha and zeta at the same depth: zeta wins
  t.is(v('pve1').level, 'host_file'); // host_vars file > inline host vars > groups
  t.is(v('pve1').from_all, 1);
  t.is(v('pve1').from_proxmox, 1);
  t.is(v('solo').from_proxmox, undefined);
});

test('group_vars files and folders, host_vars files', async (t) => {
  const inv = await loadInventory(basic);
  const pve1 = inv.hosts.get('pve1')!.vars;
  t.is(pve1.gpu_inline, 'from_group_vars'); // group_vars file overrides the group's inline vars
  t.is(pve1.gpu_file, true); // YAML 1.1 as Ansible reads it: `yes` is a boolean
  t.is(pve1.from_dir, 'b'); // group_vars/all/*.yaml merged in name order
  t.is(pve1.dir_only_a, 1);
  t.is(pve1.from_host_file, true);
  t.is(inv.hosts.get('pve3')!.vars.gpu_file, undefined);
  t.is(inv.hosts.get('solo')!.vars.from_dir, 'b');
});

test('connection settings with defaults and Ansible aliases', async (t) => {
  const inv = await loadInventory(basic);
  const solo = inv.hosts.get('solo')!.conn;
  t.is(solo.host, '10.0.0.9');
  t.is(solo.port, 2200);
  t.is(solo.user, 'admin');
  t.true(solo.become); // not root
  t.is(solo.identityFile, resolve(fx('basic'), 'keys/id_ed25519'));
  t.is(solo.hostKeyChecking, 'accept-new');
  t.is(solo.transport, 'ssh');

  const pve1 = inv.hosts.get('pve1')!.conn;
  t.deepEqual(pve1, {
    host: '127.0.0.1',
    port: 2222,
    user: 'root',
    become: false,
    hostKeyChecking: 'strict',
    transport: 'ssh',
    knownHostsFile: resolve(fx('basic'), '../known_hosts'),
  });

  const pve2 = inv.hosts.get('pve2')!.conn;
  t.is(pve2.host, 'pve2');
  t.is(pve2.port, 22);

  const pve3 = inv.hosts.get('pve3')!.conn;
  t.is(pve3.transport, 'local');
  t.false(pve3.become); // ansible_become: false beats the non-root default
  t.is(pve3.connectTimeoutMs, 5000);
});

async function configError(t: import('ava').ExecutionContext, file: string): Promise<ConfigError[]> {
  const e = await t.throwsAsync(loadInventory(fx('bad', file)));
  if (e instanceof ConfigErrors) return e.errors;
  t.true(e instanceof ConfigError, String(e));
  return [e as ConfigError];
}

test('malformed YAML points at the parser position', async (t) => {
  const [e] = await configError(t, 'malformed.yaml');
  t.true(e!.format().startsWith(`${fx('bad', 'malformed.yaml')}:4:13: invalid YAML: this "quoted string is never closed`), e!.format());
  t.truthy(e!.hint);
});

test('unknown key under a group, with a hint', async (t) => {
  const [e] = await configError(t, 'unknown-key.yaml');
  t.true(e!.format().startsWith(`${fx('bad', 'unknown-key.yaml')}:4:3: unknown key 'childs' in group 'all'`));
  t.is(e!.hint, "did you mean 'children'?");
});

test('bad port and bad host_key_checking are both reported', async (t) => {
  const errs = await configError(t, 'bad-port.yaml');
  t.is(errs.length, 2);
  t.true(errs[0]!.format().startsWith(`${fx('bad', 'bad-port.yaml')}:4:13: host 'pve1': 'port' must be an integer port`));
  t.true(errs[1]!.format().startsWith(`${fx('bad', 'bad-port.yaml')}:6:26: host 'pve2': 'host_key_checking' must be one of`));
  t.is(errs[1]!.hint, "did you mean 'accept-new'?");
});

test('a list where a map of hosts is expected', async (t) => {
  const [e] = await configError(t, 'not-a-map.yaml');
  t.true(e!.format().startsWith(`${fx('bad', 'not-a-map.yaml')}:3:5: hosts of group 'all' must be a map`));
  t.truthy(e!.hint);
});

test('a host followed by a scalar instead of its vars', async (t) => {
  const [e] = await configError(t, 'host-scalar.yaml');
  t.true(e!.format().startsWith(`${fx('bad', 'host-scalar.yaml')}:5:15: host 'pve1' must be followed by a map`));
});
