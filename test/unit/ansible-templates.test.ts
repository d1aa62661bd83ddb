/**
 * Differential tests of templates: the expressions and filters the roles use (and the rest of
 * the documented subset) rendered by passthru (src/template) and by ansible-core's Templar, in
 * one Python process for the batch. Ansible runs in native mode (jinja2_native), where a
 * template that is one `{{ expr }}` keeps the expression's type, which is passthru's rule; values
 * and types must be equal.
 *
 * Deliberate differences, each checked here: passthru runs no lookups (lookup, query, q), no
 * Python attribute access (`__class__`...), no functions beyond range(); each is a clear error
 * where Ansible returns a value. And Ansible's native mode also reads a string result that looks
 * like a Python literal as that literal (`{{ '16' }}` is 16 there); passthru keeps the string.
 */
import test from 'ava';
import { render } from '../../src/template/index.ts';
import { runOracle, type OracleAnswer, type OracleTemplateCase } from '../helpers/ansible.ts';

const roleVars = {
  facts: { cpuVendor: 'amd', bootloader: 'systemd-boot', kernelRelease: '6.8.12-4-pve' },
  iommu_params_intel: ['intel_iommu=on', 'iommu=pt'],
  iommu_params_amd: ['iommu=pt'],
  acs_override_params: ['pcie_acs_override=downstream,multifunction'],
  hugepages: { size: '1g', count: 16 },
  hugepages_plan: { data: { count: 16, mode: 'runtime', cmdline: ['hugepages=16'] } },
  blacklist_plan: { data: { blacklist: ['nouveau', 'nvidia'], blacklistConf: 'blacklist nouveau\n' } },
  vendor_reset_plan: { data: { enable: true, devices: ['0000:03:00.0'], headersPackage: 'proxmox-default-headers' } },
  vendor_reset_repo: "https://github.com/gnif/vendor-reset.git",
  vendor_reset_ref: "v0.1; rm -rf /",
  vendor_reset_version: '0.1.1',
  nvct_key_url: "https://nvidia.github.io/libnvidia-container/gpgkey",
  bootloader: 'auto',
  acs_override: 'on',
  name: 'Pve1',
  words: ['b', 'a', 'c', 'a'],
  nums: [3, 1, 2],
  nested: [[1, 2], [3, [4]]],
  users: [{ name: 'root', uid: 0 }, { name: 'admin', uid: 1000 }],
  m: { a: 1, b: 2 },
  text: '  Hello World  ',
  path: '/etc/default/grub.d/pve.cfg',
  none_value: null,
  empty: '',
  version: '6.8.12',
};

/** [id, template, extra vars] rendered by both, which must agree. */
const agree: [string, string, Record<string, unknown>?][] = [
  // the roles' own templates
  ['role-list-literal', "{{ ['dkms', 'git', 'build-essential', vendor_reset_plan.data.headersPackage] }}"],
  ['role-int-attr', '{{ hugepages_plan.data.count }}'],
  ['role-list-attr', '{{ hugepages_plan.data.cmdline }}'],
  ['role-text-attr', '{{ blacklist_plan.data.blacklistConf }}'],
  ['role-quote', '{{ nvct_key_url | quote }}'],
  ['role-quote-hostile', '{{ vendor_reset_ref | quote }}'],
  ['role-mixed', 'git clone {{ vendor_reset_repo | quote }} /usr/src/vendor-reset-{{ vendor_reset_version }} && git checkout {{ vendor_reset_ref | quote }}'],
  ['role-acs-on', "{{ acs_override_params if acs_override in ['on', true] else [] }}"],
  ['role-acs-true', "{{ acs_override_params if acs_override in ['on', true] else [] }}", { acs_override: true }],
  ['role-acs-off', "{{ acs_override_params if acs_override in ['on', true] else [] }}", { acs_override: 'off' }],
  ['role-iommu', "{{ iommu_params_intel if facts.cpuVendor == 'intel' else iommu_params_amd }}"],
  ['role-refresh', "{{ 'proxmox-boot-tool refresh' if bootloader == 'systemd-boot' or (bootloader == 'auto' and facts.bootloader == 'systemd-boot') else 'update-grub' }}"],
  ['role-refresh-grub', "{{ 'proxmox-boot-tool refresh' if bootloader == 'systemd-boot' or (bootloader == 'auto' and facts.bootloader == 'systemd-boot') else 'update-grub' }}", { bootloader: 'grub' }],
  ['role-hugepages', "{{ ['default_hugepagesz=1G', 'hugepagesz=1G', 'hugepages=' ~ (hugepages.count | string)] if hugepages.size | upper == '1G' and hugepages.count | int > 0 else [] }}"],
  ['role-hugepages-2m', "{{ ['default_hugepagesz=1G', 'hugepagesz=1G', 'hugepages=' ~ (hugepages.count | string)] if hugepages.size | upper == '1G' and hugepages.count | int > 0 else [] }}", { hugepages: { size: '2M', count: 0 } }],
  ['role-kernel-quote', 'apt-get install -y proxmox-headers-{{ facts.kernelRelease | quote }}'],
  ['when-length', '{{ blacklist_plan.data.blacklist | length > 0 }}'],
  ['when-eq', "{{ hugepages_plan.data.mode == 'runtime' }}"],
  ['when-and', '{{ vendor_reset_plan.data.enable and vendor_reset_plan.data.devices | length > 0 }}'],
  ['when-off', "{{ acs_override in ['off', false] }}", { acs_override: false }],
  // the rest of the subset
  ['arith', '{{ 7 // 2 + 7 % 3 * 2 ** 3 - 1 }}'],
  ['div', '{{ 7 / 2 }}'],
  ['concat', "{{ 'a' ~ 1 ~ 'b' }}"],
  ['plus-lists', '{{ [1] + [2, 3] }}'],
  ['compare-chain', '{{ 1 < 2 and 2 <= 2 and 3 != 4 }}'],
  ['in-list', "{{ 'a' in words and 'z' not in words }}"],
  ['in-text', "{{ 'World' in text }}"],
  ['ternary-or', "{{ empty or 'fallback' }}"],
  ['not', '{{ not empty }}'],
  ['default', "{{ missing | default('x') }}"],
  ['default-falsy', "{{ empty | default('x', true) }}"],
  ['d-alias', '{{ missing | d(5) }}'],
  ['join', "{{ words | join(',') }}"],
  ['length-map', '{{ m | length }}'],
  ['lower-upper', '{{ name | lower ~ name | upper }}'],
  ['capitalize', "{{ 'hELLO' | capitalize }}"],
  ['trim', '{{ text | trim }}'],
  ['int', "{{ '42' | int + '3.9' | int + 'x' | int }}"],
  ['float', "{{ '1.5' | float + 1 }}"],
  ['string', '{{ 16 | string }}'],
  ['bool', "{{ ['yes' | bool, 'no' | bool, 1 | bool, 'on' | bool, 'true' | bool] }}"],
  ['abs-round', '{{ [(-3) | abs, 2.71828 | round(2), 2.5 | round] }}'],
  ['unique-sort', '{{ words | unique | sort }}'],
  ['sort-reverse', '{{ nums | sort(reverse=true) }}'],
  ['reverse-list', '{{ nums | reverse | list }}'],
  ['first-last', '{{ [nums | first, nums | last] }}'],
  ['flatten', '{{ nested | flatten }}'],
  ['flatten-levels', '{{ nested | flatten(levels=1) }}'],
  ['keys-values', '{{ [m.keys() | list, m.values() | list] }}'],
  ['dict2items', '{{ m | dict2items }}'],
  ['items2dict', "{{ [{'key': 'x', 'value': 1}] | items2dict }}"],
  ['combine', "{{ m | combine({'b': 3, 'c': 4}) }}"],
  ['min-max-sum', '{{ [nums | min, nums | max, nums | sum] }}'],
  ['map-attr', "{{ users | map(attribute='name') | list }}"],
  ['map-filter', "{{ words | map('upper') | list }}"],
  ['select', "{{ nums | select('gt', 1) | list }}"],
  ['reject', "{{ nums | reject('equalto', 2) | list }}"],
  ['selectattr', "{{ users | selectattr('uid', 'equalto', 0) | map(attribute='name') | list }}"],
  ['rejectattr', "{{ users | rejectattr('uid', 'eq', 0) | map(attribute='name') | first }}"],
  ['replace', "{{ path | replace('/', ':') }}"],
  ['split', "{{ 'a,b,,c' | split(',') }}"],
  ['regex-search', "{{ facts.kernelRelease | regex_search('[a-z]+$') }}"],
  ['regex-search-none', "{{ version | regex_search('x') }}"],
  ['regex-findall', "{{ 'a1b22c333' | regex_findall('[0-9]+') }}"],
  ['regex-replace', "{{ path | regex_replace('\\.cfg$', '.bak') }}"],
  ['regex-replace-group', "{{ 'pve-6.8' | regex_replace('^([a-z]+)-(.*)$', '\\2-\\1') }}"],
  ['to-json-nested', "{{ {'x': [1, 'é', none_value, true]} | to_json }}"],
  ['flatten-nulls', '{{ [1, none_value, [2, none_value]] | flatten }}'],
  ['sets', '{{ [[1, 2, 3] | union([3, 4]), [1, 2, 3] | difference([2]), [1, 2, 3] | intersect([2, 3, 5]), [1, 2] | symmetric_difference([2, 3])] }}'],
  ['ternary', "{{ (1 > 2) | ternary('yes', 'no') }}"],
  ['basename-dirname', '{{ [path | basename, path | dirname] }}'],
  ['to-json', '{{ m | to_json }}'],
  ['from-json', '{{ \'{"a": [1, 2]}\' | from_json }}'],
  ['version-test', "{{ [version is version('6.1', '>='), version is version('6.10', '<')] }}"],
  ['defined-tests', '{{ [missing is defined, m is defined, missing is undefined, none_value is none] }}'],
  ['type-tests', '{{ [1 is number, 1.5 is float, 1 is integer, "s" is string, m is mapping, nums is sequence, true is boolean] }}'],
  ['string-tests', "{{ [text is search('World'), name is match('P'), path is regex('grub'), 'ab' is lower, 'AB' is upper] }}"],
  ['number-tests', '{{ [4 is even, 3 is odd, 9 is divisibleby(3), 2 is eq(2), 2 is lt(3)] }}'],
  ['contains-test', "{{ [words is contains('a'), 'a' is in(words)] }}"],
  ['methods', "{{ [text.strip(), name.startswith('P'), path.endswith('.cfg'), 'a-b'.split('-'), ','.join(words), m.get('z', 0), words.index('c'), words.count('a')] }}"],
  ['method-replace', "{{ 'a.b.c'.replace('.', '/') }}"],
  ['range', '{{ range(3) | list }}'],
  ['range-step', '{{ range(1, 10, 4) | list }}'],
  ['index', '{{ [nums[0], nums[-1], m["a"], users[1].name] }}'],
  ['inline-if-no-else', "{{ 'x' if false else 'y' }}"],
  ['mixed-int', 'port {{ 22 }} and {{ hugepages.count }}'],
  ['mixed-float', 'share={{ 0.75 }}'],
  ['whole-map', "{{ {'a': [1, {'b': none_value}]} }}"],
  ['whole-bool', '{{ not false }}'],
  ['whole-none', '{{ none_value }}'],
  ['whole-float', '{{ 0.1 + 0.2 }}'],
  ['no-template', 'plain text'],
];

/** Deliberately different: passthru refuses with a clear error where Ansible returns a value. */
const refused: [string, string, RegExp][] = [
  ['lookup-env', "{{ lookup('env', 'HOME') }}", /lookup/],
  ['query-file', "{{ query('file', '/etc/hostname') }}", /query/],
  ['q-alias', "{{ q('env', 'HOME') }}", /\bq\b/],
  ['python-attr', "{{ ''.__class__.__mro__ }}", /__class__/],
  ['python-class-name', '{{ m.__class__.__name__ }}', /__class__/],
];

let oracle: OracleAnswer;
test.before(() => {
  const cases: OracleTemplateCase[] = [
    ...agree.map(([id, template, extra]) => ({ id, template, vars: { ...roleVars, ...extra } })),
    ...refused.map(([id, template]) => ({ id, template, vars: roleVars })),
    { id: 'native-literal', template: "{{ '16' }}", vars: roleVars },
    { id: 'mixed-text-spelling', template: "{{ 'a' ~ 1 ~ true ~ none_value }}", vars: roleVars },
    { id: 'backslash', template: "{{ 'a\\nb' }}", vars: roleVars },
  ];
  oracle = runOracle({ templates: cases });
});

function kind(v: unknown): string {
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'string') return 'str';
  if (v === null || v === undefined) return 'none';
  if (Array.isArray(v)) return 'list';
  return 'dict';
}

for (const [id, template, extra] of agree) {
  test(`passthru and ansible-core render alike: ${id}`, (t) => {
    const want = oracle.templates[id]!;
    t.is(want.error, undefined, `ansible-core failed: ${want.error}`);
    const got = render(template, { ...roleVars, ...extra });
    t.deepEqual(got, want.value, template);
    // Python floats that are whole (2.0) print as JSON 2: an int in JS; every other type must match
    const k = kind(got);
    t.true(k === want.type || (k === 'int' && want.type === 'float'), `type: passthru ${k}, ansible ${want.type}`);
  });
}

for (const [id, template, message] of refused) {
  test(`deliberate difference, refused by passthru: ${id}`, (t) => {
    const want = oracle.templates[id]!;
    t.is(want.error, undefined, `ansible-core evaluates it: ${JSON.stringify(want)}`);
    const e = t.throws(() => render(template, roleVars));
    t.regex(e!.message, message);
  });
}

test('deliberate difference: inside a larger text, passthru writes true/false and nothing for null (YAML spelling), Ansible True/False/None', (t) => {
  t.is(oracle.templates['mixed-text-spelling']!.value, 'a1TrueNone');
  t.is(render("{{ 'a' ~ 1 ~ true ~ none_value }}", roleVars), 'a1true');
  t.is(render('enabled={{ true }} x={{ none_value }}', roleVars), 'enabled=true x=');
});

test('deliberate difference: passthru reads \\n, \\t, \\\\ and quote escapes in template strings; Ansible keeps backslashes as written', (t) => {
  t.is(oracle.templates['backslash']!.value, 'a\\nb');
  t.is(render("{{ 'a\\nb' }}", roleVars), 'a\nb');
  // a backslash before any other character is kept by both: regular expressions read alike
  t.is(render("{{ 'a\\.b' }}", roleVars), 'a\\.b');
});

test("deliberate difference: native Ansible reads {{ '16' }} as the number 16, passthru keeps the text", (t) => {
  t.is(oracle.templates['native-literal']!.value, 16);
  t.is(render("{{ '16' }}", roleVars), '16');
});
