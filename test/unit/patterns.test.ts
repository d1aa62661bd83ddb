import test from 'ava';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInventory, matchHosts } from '../../src/inventory/index.ts';
import { ConfigError } from '../../src/model/errors.ts';
import type { Inventory } from '../../src/model/types.ts';

const here = dirname(fileURLToPath(import.meta.url));
const fx = (...p: string[]): string => join(here, '..', 'fixtures', 'config', 'inventory', ...p);
// hosts: solo (all only), pve1 (gpu), pve2 (gpu, storage, alpha, zeta), pve3 (storage); proxmox = gpu + storage
let inv: Inventory;
test.before(async () => {
  inv = await loadInventory(fx('basic', 'inventory.yaml'));
});

const pos = { file: 'play.yaml', line: 3, col: 10 };

test('names, groups (with children), all and *', (t) => {
  t.deepEqual(matchHosts(inv, 'pve2'), ['pve2']);
  t.deepEqual(matchHosts(inv, 'gpu'), ['pve1', 'pve2']);
  t.deepEqual(matchHosts(inv, 'proxmox'), ['pve1', 'pve2', 'pve3']);
  t.deepEqual(matchHosts(inv, 'all'), ['solo', 'pve1', 'pve2', 'pve3']);
  t.deepEqual(matchHosts(inv, '*'), ['solo', 'pve1', 'pve2', 'pve3']);
});

test('wildcards on host and group names', (t) => {
  t.deepEqual(matchHosts(inv, 'pve*'), ['pve1', 'pve2', 'pve3']);
  t.deepEqual(matchHosts(inv, 'pve?'), ['pve1', 'pve2', 'pve3']);
  t.deepEqual(matchHosts(inv, 'sto*'), ['pve2', 'pve3']); // group storage
  t.deepEqual(matchHosts(inv, 's*'), ['solo', 'pve2', 'pve3']); // host solo + group storage
  t.deepEqual(matchHosts(inv, '~^pve[13]$'), ['pve1', 'pve3']);
});

test('union with : and , in inventory order without duplicates', (t) => {
  t.deepEqual(matchHosts(inv, 'pve3:solo'), ['solo', 'pve3']);
  t.deepEqual(matchHosts(inv, 'gpu,storage'), ['pve1', 'pve2', 'pve3']);
  t.deepEqual(matchHosts(inv, 'pve2, gpu'), ['pve1', 'pve2']);
});

test('intersection and exclusion, in Ansible order', (t) => {
  t.deepEqual(matchHosts(inv, 'gpu:&storage'), ['pve2']);
  t.deepEqual(matchHosts(inv, 'proxmox:!gpu'), ['pve3']);
  t.deepEqual(matchHosts(inv, 'all:!proxmox'), ['solo']);
  // exclusions apply after unions, wherever they are written
  t.deepEqual(matchHosts(inv, '!pve2:gpu'), ['pve1']);
  // intersections apply after all unions
  t.deepEqual(matchHosts(inv, 'gpu:&storage:solo'), ['pve2']);
  // a pattern of only exclusions starts from all
  t.deepEqual(matchHosts(inv, '!proxmox'), ['solo']);
  t.deepEqual(matchHosts(inv, 'proxmox:&gpu:!pve1'), ['pve2']);
});

test('@file: one host per line, comments and blank lines ignored, relative to cwd', (t) => {
  const rel = relative(process.cwd(), fx('basic', 'hosts.txt'));
  t.deepEqual(matchHosts(inv, `@${rel}`), ['solo', 'pve3']);
  t.deepEqual(matchHosts(inv, `@${rel}:pve1`), ['solo', 'pve1', 'pve3']);
  t.deepEqual(matchHosts(inv, `all:!@${rel}`), ['pve1', 'pve2']);
});

test('@file with an unknown host names the file and line', (t) => {
  const rel = relative(process.cwd(), fx('basic', 'bad-hosts.txt'));
  const e = t.throws(() => matchHosts(inv, `@${rel}`, pos), { instanceOf: ConfigError });
  t.true(e!.format().startsWith(`${rel}:3:1: unknown host 'pve9' in host list`), e!.format());
  t.regex(e!.hint!, /did you mean 'pve[123]'\?/);
});

test('@file that does not exist', (t) => {
  const e = t.throws(() => matchHosts(inv, '@no/such/file.txt', pos), { instanceOf: ConfigError });
  t.true(e!.format().startsWith('play.yaml:3:10: cannot read host list @no/such/file.txt'));
});

test('a part that matches nothing is an error with the closest name', (t) => {
  let e = t.throws(() => matchHosts(inv, 'gpux', pos), { instanceOf: ConfigError });
  t.true(e!.format().startsWith("play.yaml:3:10: host pattern 'gpux' matches no host or group"), e!.format());
  t.is(e!.hint, "did you mean 'gpu'?");
  e = t.throws(() => matchHosts(inv, 'gpu:!storag', pos), { instanceOf: ConfigError });
  t.regex(e!.message, /host pattern 'storag' \(in 'gpu:!storag'\) matches no host/);
  t.is(e!.hint, "did you mean 'storage'?");
  e = t.throws(() => matchHosts(inv, 'web*'), { instanceOf: ConfigError });
  t.regex(e!.message, /'web\*' matches no host/);
});

test('an empty result after intersection or exclusion is an error', (t) => {
  const e = t.throws(() => matchHosts(inv, 'solo:&gpu', pos), { instanceOf: ConfigError });
  t.true(e!.format().startsWith("play.yaml:3:10: host pattern 'solo:&gpu' matches no host"));
  t.regex(e!.hint!, /intersections/);
  t.throws(() => matchHosts(inv, '  ', pos), { message: /empty host pattern/ });
});
