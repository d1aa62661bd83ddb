/**
 * Input safety: the one quoting function, the argument specs of the shipped roles (complete,
 * consistent, checked at load with positions and exit 4, before any connection), and every input
 * limit (file size, YAML aliases and depth, template sizes, depth and regex time, secrets never
 * shown, --forks).
 */
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shq } from '../../src/model/shell.ts';
import { shq as transportShq } from '../../src/transport/connection.ts';
import { render } from '../../src/template/index.ts';
import { loadRoleArgSpec } from '../../src/load/argspec.ts';
import { checkValue } from '../../src/spec/check.ts';
import { toJsonSchema } from '../../src/spec/schema.ts';
import type { OptionSpec } from '../../src/spec/types.ts';
import { Errors, loadYamlFile, parseYaml } from '../../src/load/yaml.ts';
import { loadInventory } from '../../src/inventory/index.ts';
import { parseForks } from '../../src/cli/main.ts';
import { captureIo } from '../helpers/cli.ts';
import { main } from '../../src/cli/main.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ROLES = readdirSync(join(ROOT, 'roles'));
const PLAYBOOK = join(ROOT, 'playbooks/gpu-passthrough.yaml');
const tmp = () => mkdtempSync(join(tmpdir(), 'passthru-safety-'));

// ---------------------------------------------------------------- quoting

test('one quoting function: the quote filter is shq, values stay one word, NUL refused', (t) => {
  t.is(transportShq, shq);
  for (const v of ["it's", '$(id)', '`id`', 'a; b', 'a\nb', '--orphan=x', '', ' ', '*']) {
    t.is(render('{{ v | quote }}', { v }), shq(v));
    // sh reads it back as exactly one word with the same bytes
    t.is(JSON.parse(execSh(`printf '%s' ${shq(v)} | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(s)))'`)), v);
  }
  t.throws(() => shq('a\0b'), { message: /NUL/ });
  t.throws(() => render('{{ v | quote }}', { v: 'a\0b' }), { message: /NUL/ });
});

import { execSync } from 'node:child_process';
function execSh(cmd: string): string {
  return execSync(cmd, { shell: '/bin/sh', encoding: 'utf8' });
}

test('vendor-reset role: every value in its commands is quoted, git gets -- before positional arguments', (t) => {
  const tasks = readFileSync(join(ROOT, 'roles/vendor-reset/tasks.yaml'), 'utf8');
  for (const line of tasks.split('\n').filter((l) => /^\s+(cmd|unless):/.test(l))) {
    for (const m of line.matchAll(/\{\{(.*?)\}\}/g)) t.regex(m[1]!, /\|\s*quote\s*$/, `unquoted value in: ${line.trim()}`);
  }
  t.regex(tasks, /git clone -- \{\{/);
  t.regex(tasks, /checkout -q \{\{ vendor_reset_ref \| quote \}\} --/);
});

// ---------------------------------------------------------------- argument specs

let specs: Record<string, { spec: Awaited<ReturnType<typeof loadRoleArgSpec>>; errs: Errors['list'] }> = {};
test.before(async () => {
  specs = Object.fromEntries(
    await Promise.all(
      ROLES.map(async (r) => {
        const errs = new Errors();
        const s = await loadRoleArgSpec(r, join(ROOT, 'roles', r), errs);
        return [r, { spec: s, errs: errs.list }] as const;
      }),
    ),
  );
});

test('every shipped role has an argument spec that loads without error', (t) => {
  for (const r of ROLES) {
    t.truthy(specs[r]!.spec, `${r} has argument_specs.yaml`);
    t.deepEqual(specs[r]!.errs.map((e) => e.format()), [], r);
  }
});

test('every variable of defaults.yaml and every variable the tasks read is described, with the same default', async (t) => {
  const known = new Set(['facts', 'inventory_hostname', 'group_names', 'groups', 'hostvars', 'ansible_check_mode']);
  for (const r of ROLES) {
    const opts = specs[r]!.spec!.options;
    const defaults = ((await loadYamlFile(join(ROOT, 'roles', r, 'defaults.yaml'))).doc.toJSON() ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(defaults)) {
      t.truthy(opts[k], `${r}: ${k} (defaults.yaml) is in argument_specs.yaml`);
      t.deepEqual(opts[k]?.default, v, `${r}: default of ${k}`);
    }
    const registered = new Set<string>();
    let text = '';
    for (const f of ['tasks.yaml', 'handlers.yaml', 'gates.yaml']) {
      try {
        text += readFileSync(join(ROOT, 'roles', r, f), 'utf8');
      } catch {
        /* optional */
      }
    }
    for (const m of text.matchAll(/register:\s*(\w+)/g)) registered.add(m[1]!);
    const exprs = [...text.matchAll(/\{\{(.*?)\}\}/g)].map((m) => m[1]!).concat([...text.matchAll(/when:\s*(.*)/g)].map((m) => m[1]!));
    for (const e of exprs) {
      const code = e.replace(/'[^']*'|"[^"]*"/g, '');
      for (const m of code.matchAll(/(?<![.\w])([a-z_][a-z0-9_]*)\b(?!\s*\()/g)) {
        const name = m[1]!;
        if (known.has(name) || registered.has(name) || ['if', 'else', 'and', 'or', 'not', 'in', 'is', 'true', 'false', 'none', 'null'].includes(name)) continue;
        if (/\|\s*$/.test(code.slice(0, m.index))) continue; // a filter name
        t.truthy(opts[name], `${r}: '${name}' read by a task is in argument_specs.yaml`);
      }
    }
  }
});

test('a variable described by several roles is described identically', (t) => {
  const seen = new Map<string, { role: string; o: OptionSpec }>();
  for (const r of ROLES) {
    for (const [k, o] of Object.entries(specs[r]!.spec!.options)) {
      const first = seen.get(k);
      if (first) t.deepEqual(o, first.o, `${k}: ${r} vs ${first.role}`);
      else seen.set(k, { role: r, o });
    }
  }
});

test('specs become a JSON Schema (for editors)', (t) => {
  const s = toJsonSchema(specs.hugepages!.spec!.options) as { properties: Record<string, any> };
  t.is(s.properties.hugepages.anyOf[0].properties.count.type, 'integer');
  t.is(s.properties.hugepages.anyOf[0].properties.count.minimum, 0);
  t.is((toJsonSchema(specs.vfio!.spec!.options) as any).properties.vfio_ids.anyOf[0].items.pattern, specs.vfio!.spec!.options.vfio_ids!.pattern);
});

const opt = (r: string, k: string) => specs[r]!.spec!.options[k]!;
test('values by type, pattern and range', (t) => {
  const ok = (r: string, k: string, v: unknown) => t.deepEqual(checkValue(opt(r, k), v, k), [], `${k}=${JSON.stringify(v)} accepted`);
  const no = (r: string, k: string, v: unknown, re: RegExp) => {
    const bad = checkValue(opt(r, k), v, k);
    t.true(bad.length > 0, `${k}=${JSON.stringify(v)} refused`);
    t.regex(bad.map((b) => b.msg).join('; '), re);
  };
  ok('vfio', 'passthrough_slots', ['01:00', '0000:0a:1f.3', '01:00.1']);
  no('vfio', 'passthrough_slots', ['01:00; reboot'], /must match/);
  ok('vfio', 'vfio_ids', ['10de:2684', '10DE:22BA']);
  no('vfio', 'vfio_ids', ['10de:2684\ninstall vfio_pci /bin/sh'], /newline/);
  ok('blacklist', 'blacklist_drivers', ['nouveau', 'nvidia-drm', 'snd_hda_intel']);
  ok('blacklist', 'blacklist_drivers', null);
  no('blacklist', 'blacklist_drivers', ['-x'], /must match/);
  no('blacklist', 'blacklist_drivers', ["x\ninstall vfio_pci /bin/sh -c 'touch /x'"], /newline/);
  ok('iommu', 'iommu_params_intel', ['intel_iommu=on', 'iommu=pt', 'video=efifb:off', 'vfio-pci.ids=10de:1b80']);
  no('iommu', 'iommu_params_intel', ['intel_iommu=on iommu=pt'], /must match/);
  no('iommu', 'iommu_params_intel', ['"quiet'], /must match/);
  ok('hugepages', 'hugepages', { size: '1G', count: 16 });
  no('hugepages', 'hugepages', { size: '2M', count: true }, /whole number, found the boolean true/);
  no('hugepages', 'hugepages', { size: '2M', count: 1.5 }, /whole number/);
  no('hugepages', 'hugepages', { size: '2M', count: -1 }, /between 0/);
  no('hugepages', 'hugepages', { size: '3M', count: 1 }, /one of 2M, 1G/);
  no('hugepages', 'hugepages', { size: '2M', cout: 1 }, /unknown key 'cout'/);
  ok('vendor-reset', 'vendor_reset_version', '0.1.1');
  no('vendor-reset', 'vendor_reset_version', '0.1.1; touch /root/pwned #', /must match/);
  ok('vendor-reset', 'vendor_reset_ref', 'v0.1.1');
  no('vendor-reset', 'vendor_reset_ref', '--orphan=x', /must match/);
  no('vendor-reset', 'vendor_reset_ref', 'a/../b', /must match/);
  no('vendor-reset', 'vendor_reset_repo', 'https://x/$(id)\n', /newline/);
  ok('nvidia-container-toolkit', 'nvct_repo', 'https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /');
  no('nvidia-container-toolkit', 'nvct_repo', 'https://x/ /\ndeb http://evil/ /', /newline/);
  no('nvidia-container-toolkit', 'nvct_repo', '[trusted=yes] http://evil/ /', /must match/);
  no('nvidia-container-toolkit', 'nvct_list_file', '/etc/apt/../x', /absolute path/);
  no('nvidia-container-toolkit', 'nvct_package', 'x'.repeat(5000), /at most 128|5000 characters/);
  ok('nvidia-driver', 'nvidia_driver_version', '535.216.01-1~deb12u1');
  ok('nvidia-driver', 'nvidia_driver_version', '');
  no('nvidia-driver', 'nvidia_driver_version', '535; touch /root/pwned', /must match/);
  no('nvidia-driver', 'nvidia_driver_version', '--reinstall', /must match/);
  no('nvidia-driver', 'nvidia_driver_version', '535\nnvidia-driver=1', /newline/);
  no('vfio', 'vfio_conf_file', 'relative/path', /absolute path/);
  no('vfio', 'vfio_ids', ['\u00ff\ufffd'], /not UTF-8/);
  no('vfio', 'vfio_ids', new Array(2000).fill('10de:2684'), /at most 64/);
  // sriov_devices: the slot goes into a systemd unit's ExecStart line, numvfs is written to sysfs
  ok('sriov', 'sriov_devices', [{ slot: '0000:00:02.0', numvfs: 7 }, { slot: '03:00.1', numvfs: 0 }]);
  const dev = (slot: unknown, numvfs: unknown = 4) => [{ slot, numvfs }];
  for (const hostile of ['00:02.0; touch /root/pwned', '$(touch /root/pwned)', '`touch /root/pwned`', "00:02.0'\nExecStart=/bin/sh -c 'touch /root/pwned", '--help', '00:02.0\u0000x', `${'a'.repeat(100_000)}`, 'x\u00ffM', '00:02'])
    no('sriov', 'sriov_devices', dev(hostile), /must match|newline|NUL|characters|UTF-8|printable/);
  no('sriov', 'sriov_devices', dev('00:02.0', true), /whole number/);
  no('sriov', 'sriov_devices', dev('00:02.0', -1), /between 0/);
  no('sriov', 'sriov_devices', dev('00:02.0', 1.5), /whole number/);
  no('sriov', 'sriov_devices', dev('00:02.0', '4; reboot'), /whole number|integer/);
  no('sriov', 'sriov_devices', dev('00:02.0', 70000), /between 0 and 65535/);
  no('sriov', 'sriov_devices', [{ slot: '00:02.0' }], /required|numvfs/);
  no('sriov', 'sriov_devices', [{ slot: '00:02.0', numvfs: 1, cmd: 'x' }], /unknown key 'cmd'/);
  no('sriov', 'sriov_devices', ['00:02.0'], /must be a map/);
});

async function cli(inv: string, ...args: string[]): Promise<{ code: number; text: string }> {
  const io = captureIo();
  const code = await main(['check', PLAYBOOK, '-i', inv, '--progress', 'quiet', ...args], io);
  return { code, text: io.text() };
}

function inventory(hostVars: string): string {
  const d = tmp();
  const f = join(d, 'inventory.yaml');
  // 127.0.109.254: nothing listens there; a connection attempt would fail as unreachable, not exit 4
  writeFileSync(f, `all:\n  children:\n    proxmox:\n      hosts:\n        n1: { host: 127.0.109.254, ${hostVars} }\n    gpu_guests: { hosts: {} }\n`);
  return f;
}

test('load: bad host variables are reported at file:line:col with exit 4, before any connection', async (t) => {
  const inv = inventory(`passthrough_slots: ["01:00"], hugepages: { size: 2M, count: true }, blacklist_drivers: ["nouveau", "x\\ninstall vfio_pci /bin/sh"]`);
  const r = await cli(inv);
  t.is(r.code, 4, r.text);
  t.regex(r.text, new RegExp(`${inv.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:5:\\d+: 'hugepages.count' must be a whole number, found the boolean true`));
  t.regex(r.text, /inventory\.yaml:5:\d+: 'blacklist_drivers\.1' must be one line of printable text, found a newline/);
  t.regex(r.text, /no host was contacted/);
  t.notRegex(r.text, /unreachable|connect/i);
});

test('load: -e values are checked too, positioned at the -e', async (t) => {
  const inv = inventory('passthrough_slots: ["01:00"]');
  const r = await cli(inv, '-e', "vendor_reset_version='0.1.1; touch /root/pwned #'", '-e', 'vendor_reset_ref=--orphan=x', '-e', '{"hugepages": {"count": 1e9}}');
  t.is(r.code, 4, r.text);
  t.regex(r.text, /-e:1:1: 'vendor_reset_version' must match/);
  t.regex(r.text, /-e:2:1: 'vendor_reset_ref' must match/);
  t.regex(r.text, /-e:3:\d+: 'hugepages.count' must be between 0 and 4194304/);
});

test('--forks: 1.5, 1e9, 0, 10abc and 100000 refused (exit 4), digits 1..1000 accepted', async (t) => {
  for (const bad of ['1.5', '1e9', '0', '-1', '10abc', '0x10', '100000', '']) t.is(parseForks(bad), undefined, bad);
  for (const [s, n] of [['1', 1], ['10', 10], ['1000', 1000]] as const) t.is(parseForks(s), n);
  const r = await cli(inventory('passthrough_slots: ["01:00"]'), '--forks', '1.5');
  t.is(r.code, 4);
  t.regex(r.text, /--forks must be a whole number from 1 to 1000, got '1\.5'/);
});

// ---------------------------------------------------------------- limits

test('YAML: a billion-laughs file is refused quickly with a position, not expanded', async (t) => {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  let prev = 'a';
  for (const c of 'bcdefghi') {
    lines.push(`${c}: &${c} [${Array(9).fill(`*${prev}`).join(',')}]`);
    prev = c;
  }
  const f = join(tmp(), 'inv.yaml');
  writeFileSync(f, `all:\n  vars:\n${lines.map((l) => `    ${l}`).join('\n')}\n  hosts: {x: {}}\n`);
  t.true(readFileSync(f).length < 600);
  const started = Date.now();
  const e = await t.throwsAsync(loadInventory(f));
  t.regex((e as any).format(), /inv\.yaml:\d+:\d+: invalid YAML: aliases expand to more than 10000 nodes/);
  // expanded, it would be 9^9 nodes (minutes, then out of memory); refused after 10,000 it takes
  // well under a second alone, seconds on a loaded machine
  t.true(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
});

test('YAML: aliases used normally still work', (t) => {
  const yf = parseYaml('a: &x [1, 2]\nb: *x\nc: { <<: {k: 1} }\n', 'f.yaml');
  t.deepEqual(yf.doc.toJSON(), { a: [1, 2], b: [1, 2], c: { k: 1 } });
});

test('YAML: 20,000-deep nesting and more than 64 levels are refused with a message', (t) => {
  const e1 = t.throws(() => parseYaml(`v: ${'['.repeat(20000)}${']'.repeat(20000)}\n`, 'deep.yaml'));
  t.regex(e1!.message, /nested more than 64 levels deep/);
  const e2 = t.throws(() => parseYaml(`v: ${'['.repeat(70)}${']'.repeat(70)}\n`, 'deep.yaml'));
  t.regex(e2!.message, /nested more than 64 levels deep/);
});

test('files: a file over 4 MiB (or an endless device) is refused before it is read whole', async (t) => {
  const f = join(tmp(), 'big.yaml');
  writeFileSync(f, `a: "${'x'.repeat(4 * 1024 * 1024)}"\n`);
  await t.throwsAsync(loadInventory(f), { message: /config files are read up to 4194304 bytes/ });
  await t.throwsAsync(loadInventory('/dev/zero'), { message: /more than 4194304 bytes/ });
  const r = await cli(inventory('passthrough_slots: ["01:00"]'), '-e', '@/dev/zero');
  t.is(r.code, 4);
  t.regex(r.text, /more than 4194304 bytes/);
});

test('templates: huge strings and lists, deep nesting, catastrophic regexes and __proto__ fail cleanly', (t) => {
  const fails = (tpl: string, re: RegExp, vars: Record<string, unknown> = {}) => {
    const started = Date.now();
    const e = t.throws(() => render(tpl, vars));
    t.is(e!.name, 'TemplateError', `${tpl.slice(0, 40)}: ${e!.message}`);
    t.regex(e!.message, re);
    t.notRegex(e!.message, /\n\s+at /, 'no stack trace');
    t.true(Date.now() - started < 5000, `${tpl.slice(0, 40)} took ${Date.now() - started} ms`);
  };
  fails("{{ 'a' * 300000000 }}", /repeated 300000000 times is longer than/);
  fails('{{ [1] * 100000000 }}', /repeated 100000000 times is longer than/);
  fails("{{ ('a' * 1000000) ~ ('a' * 1000000) }}", /longer than the 1048576 characters/);
  fails("{{ ('a' * 1000000).replace('a', 'aa') }}", /longer than the 1048576 characters/);
  fails(`{{ ${'('.repeat(20000)}1${')'.repeat(20000)} }}`, /nested more than 100 levels deep/);
  fails(`{{ ${'['.repeat(20000)}${']'.repeat(20000)} }}`, /nested more than 100 levels deep/);
  fails("{{ s is match('(a+)+b') }}", /ran longer than 250 ms/, { s: `${'a'.repeat(40)}c` });
  fails("{{ s | regex_replace('(a|aa)+$', 'x') }}", /ran longer than 250 ms/, { s: `${'a'.repeat(60)}c` });
  fails("{{ 'x'.__proto__() }}", /unknown method '__proto__'/);
  fails("{{ 'x'.constructor() }}", /unknown method 'constructor'/);
  t.is(render("{{ 'abc' is match('a') }}", {}), true);
  t.is(render("{{ 'a1b2' | regex_replace('(\\\\d)', '<\\\\1>') }}", {}), 'a<1>b<2>');
  t.deepEqual(render("{{ 'a1b2' | regex_findall('\\\\d') }}", {}), ['1', '2']);
  t.is(render("{{ 'x' * 3 }}", {}), 'xxx');
});

test('secrets: a template error in ansible_password never prints the password', async (t) => {
  const d = tmp();
  const f = join(d, 'inventory.yaml');
  writeFileSync(f, `all:\n  hosts:\n    n1: { host: 127.0.109.254, ansible_password: "hunter2-S3CRET {{ oops( }}" }\n`);
  const e = await t.throwsAsync(loadInventory(f));
  const text = (e as any).errors ? (e as any).errors.map((x: any) => x.format()).join('\n') : (e as any).format();
  t.regex(text, /inventory\.yaml:3:\d+: host 'n1': the template in 'ansible_password' does not render \(its text is not shown: it is a secret\)/);
  t.notRegex(text, /hunter2|S3CRET/);
});

import { checkRoleVars } from '../../src/spec/check.ts';
import { taskVars } from '../../src/engine/vars.ts';

test('values written as templates are checked when rendered, by the same spec (on the host)', (t) => {
  const spec = specs['vendor-reset']!.spec!;
  const host = { name: 'n1', vars: { vendor_reset_version: '{{ evil }}', evil: '0.1.1; touch /root/pwned #' }, groups: ['all'], conn: {} as any };
  const vars = taskVars({ stage: { vars: {} } as any, host, inventory: { file: 'i', hosts: new Map([['n1', host]]), groups: new Map() }, facts: null, registered: {}, extra: {} });
  const e = t.throws(() => checkRoleVars(spec, vars));
  t.regex(e!.message, /'vendor_reset_version' must match .* found "0\.1\.1; touch \/root\/pwned #" \(role 'vendor-reset'\)/);
  t.notThrows(() => checkRoleVars(spec, { ...vars, vendor_reset_version: '0.1.1' }));
});
