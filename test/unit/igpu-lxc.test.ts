/**
 * The iGPU's DRM node in an LXC container: the config lines (devN value, lxc.* lines, where they
 * go in the file), the module's plan (devN / lxc form, idempotence, running container, refusals)
 * and the checks (preflight-igpu-host, gate-igpu-lxc) on fixture facts: the iGPU at 00:02.0 on
 * i915 with card1/renderD128 and an NVIDIA card with card0/renderD129 (test/fixtures/guests/dri-igpu.txt).
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { fullFunction } from '../../src/passthrough/selection.ts';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseGuestConfig } from '../../src/facts/guests.ts';
import type { Facts } from '../../src/facts/types.ts';
import { planCtDev, type PveCtDevArgs } from '../../src/modules/pve_ct_dev.ts';
import { gateIgpuLxc, preflightIgpuHost } from '../../src/passthrough/gates/guest.ts';
import { devKeyFor, devMethod, devSatisfies, devValue, driNodeFor, freeDevKey, lxcLines, lxcSatisfied, parseDeviceAllow, withLxcLines } from '../../src/passthrough/lxc-dev.ts';
import { pveNvidiaFacts } from '../fixtures/facts/hosts.ts';
import { loadRoleArgSpec } from '../../src/load/argspec.ts';
import { Errors } from '../../src/load/yaml.ts';
import { checkValue } from '../../src/spec/check.ts';
import { join } from 'node:path';

const fx = (n: string) => readFileSync(fileURLToPath(new URL(`../fixtures/guests/${n}`, import.meta.url)), 'utf8');
const CT = 'arch: amd64\nhostname: jellyfin\nmemory: 2048\nostype: debian\nrootfs: local-lvm:vm-101-disk-0,size=8G\nunprivileged: 1\n';
const P = '/etc/pve/lxc/101.conf';

/** pve1 (PVE 8.2.4) with the dri fixture and container 101 (stopped in pct-list.txt) holding `conf`. */
function facts(conf = CT, patch: Record<string, string> = {}): Facts {
  const extra: Record<string, string> = { dri: fx('dri-igpu.txt'), 'pve-guests': `@@file ${P}\n${conf}\n`, ...patch };
  return pveNvidiaFacts({}, extra);
}
const args = (o: Partial<PveCtDevArgs> = {}): PveCtDevArgs => ({ ctid: 101, slot: '00:02.0', node: 'render', gid: null as unknown as number, mode: '', method: 'auto', pending: 'refuse', ...o });
const file = (content: string | null) => ({ exists: content !== null, content: content ?? '' });
const vars = (o: Record<string, unknown> = {}) => ({ lxc_id: 101, igpu_slot: '00:02.0', lxc_dri_node: 'render', lxc_dev_gid: null, ...o }) as any;

test('lines: devN value, lxc.* lines, and where raw lines go in the file', (t) => {
  t.is(fullFunction('00:02.0'), '0000:00:02.0');
  t.is(fullFunction('0000:0A:00.1'), '0000:0a:00.1');
  t.is(fullFunction('00:02'), null);
  t.is(devValue({ path: '/dev/dri/renderD129', gid: 993 }), '/dev/dri/renderD129,gid=993');
  t.is(devValue({ path: '/dev/dri/renderD128', gid: 0, mode: '0666' }), '/dev/dri/renderD128,gid=0,mode=0666');
  t.true(devSatisfies('/dev/dri/renderD128,gid=104', { path: '/dev/dri/renderD128', gid: 104 }));
  t.true(devSatisfies('gid=104,path=/dev/dri/renderD128', { path: '/dev/dri/renderD128', gid: 104 }));
  t.false(devSatisfies('/dev/dri/renderD128,gid=104,deny-write=1', { path: '/dev/dri/renderD128', gid: 104 }));
  t.false(devSatisfies('/dev/dri/renderD128', { path: '/dev/dri/renderD128', gid: 104 }));
  t.false(devSatisfies('/dev/dri/renderD129,gid=104', { path: '/dev/dri/renderD128', gid: 104 }));
  const r128 = { path: '/dev/dri/renderD128', byPath: '/dev/dri/by-path/pci-0000:00:02.0-render' };
  t.is(devKeyFor({ dev0: '/dev/ttyUSB0', dev3: '/dev/dri/renderD128,gid=1' }, r128), 'dev3');
  // an entry made through the stable name is the same device: the module does not add a second one
  t.is(devKeyFor({ dev1: '/dev/dri/by-path/pci-0000:00:02.0-render,gid=104' }, r128), 'dev1');
  t.is(devKeyFor({ dev1: '/dev/dri/by-path/pci-0000:00:02.0-render' }, { ...r128, byPath: null }), null);
  t.true(devSatisfies('/dev/dri/by-path/pci-0000:00:02.0-render,gid=104', { path: '/dev/dri/renderD128', alsoPath: r128.byPath, gid: 104 }), 'kept as the user wrote it');
  t.is(freeDevKey({ dev0: 'x', dev1: 'y' }, { dev2: 'z' }), 'dev3');
  t.deepEqual(lxcLines({ path: '/dev/dri/renderD129', major: 226, minor: 129 }), [
    ['lxc.cgroup2.devices.allow', 'c 226:129 rwm'],
    ['lxc.mount.entry', '/dev/dri/renderD129 dev/dri/renderD129 none bind,optional,create=file'],
  ]);
  t.deepEqual(parseDeviceAllow('c 226:128 rwm'), { type: 'c', major: 226, minor: 128, access: 'rwm' });
  t.is(parseDeviceAllow('c 226:* rwm'), null);
  // before [pve:pending] and snapshots; a mount entry for the same target is replaced in place
  const text = 'arch: amd64\nlxc.mount.entry: /dev/dri/renderD130 dev/dri/renderD128 none bind,optional,create=file\n\n[pve:pending]\nmemory: 4096\n\n[snap1]\narch: amd64\n';
  const out = withLxcLines(text, lxcLines({ path: '/dev/dri/renderD128', major: 226, minor: 128 }));
  t.is(out, 'arch: amd64\nlxc.mount.entry: /dev/dri/renderD128 dev/dri/renderD128 none bind,optional,create=file\nlxc.cgroup2.devices.allow: c 226:128 rwm\n\n[pve:pending]\nmemory: 4096\n\n[snap1]\narch: amd64\n');
  const c = parseGuestConfig(out, 'pct', P);
  t.deepEqual(lxcSatisfied(c.lxc, { path: '/dev/dri/renderD128', major: 226, minor: 128 }), { allow: true, mount: true });
  t.deepEqual(c.pending, { memory: '4096' });
  t.deepEqual(lxcSatisfied(c.lxc, { path: '/dev/dri/renderD129', major: 226, minor: 129 }), { allow: false, mount: false });
});

test('devMethod: pve-container 5.0.7+ has devN; unknown version: Proxmox VE 8.2+; before 7: neither', (t) => {
  const f = (pveVersion: string | null, pc?: string) => ({ pveVersion, pveMajor: pveVersion ? Number(pveVersion.split('.')[0]) : null, packages: (pc ? { 'pve-container': pc } : {}) as Record<string, string> });
  t.is(devMethod(f('8.1.4', '5.0.8')), 'dev');
  t.is(devMethod(f('8.0.4', '5.0.4')), 'lxc');
  t.is(devMethod(f('7.4-18', '4.4-6')), 'lxc');
  t.is(devMethod(f('8.2.4')), 'dev');
  t.is(devMethod(f('8.1.4')), 'lxc');
  t.is(devMethod(f('6.4-15')), null);
  t.is(devMethod(f(null)), null);
});

test('the iGPU node comes from by-path (renderD128 here is the iGPU, renderD129 the NVIDIA card)', (t) => {
  const f = facts();
  t.deepEqual(driNodeFor(f.dri, '00:02.0')?.path, '/dev/dri/renderD128');
  t.deepEqual(driNodeFor(f.dri, '01:00.0')?.path, '/dev/dri/renderD129');
  t.deepEqual(driNodeFor(f.dri, '00:02.0', 'card')?.path, '/dev/dri/card1');
  t.is(driNodeFor(f.dri, '00:03.0'), null);
});

test('plan, devN: pct set with the node and gid read from the facts; then a no-op', (t) => {
  const f = facts();
  const p = planCtDev(args({ slot: '01:00.0' }), f, file(CT));
  t.is(p.kind, 'change');
  if (p.kind !== 'change') return;
  t.regex((p.actions[0] as { command: string }).command, /^pct set '?101'? --dev0 '?\/dev\/dri\/renderD129,gid=104'? --digest [0-9a-f]{40}$/);
  t.regex(p.diff[0]!.after, /^dev0: \/dev\/dri\/renderD129,gid=104$/m);
  t.notRegex(p.diff[0]!.before, /dev0/);
  const done = CT.replace('arch: amd64\n', 'arch: amd64\ndev0: /dev/dri/renderD129,gid=104\n');
  t.is(planCtDev(args({ slot: '01:00.0' }), f, file(done)).kind, 'noop');
  // another gid asked for: the same devN is set again
  const g = planCtDev(args({ slot: '01:00.0', gid: 105 }), f, file(done));
  t.is(g.kind, 'change');
  if (g.kind === 'change') t.regex((g.actions[0] as { command: string }).command, /--dev0 '?\/dev\/dri\/renderD129,gid=105'?( |$)/);
  // a config with dev0 taken by another device gets dev1
  const other = CT + 'dev0: /dev/ttyUSB0\n';
  const o = planCtDev(args(), f, file(other));
  if (o.kind === 'change') t.regex((o.actions[0] as { command: string }).command, /--dev1 '?\/dev\/dri\/renderD128,gid=104'?( |$)/);
  else t.fail(JSON.stringify(o));
});

test('plan, lxc lines on a node without devN: the file written, with the node\'s own major:minor', (t) => {
  const f = facts(CT, { pveversion: 'pve-manager/7.4-18/b1f94095ccff35ee (running kernel: 5.15.158-2-pve)', dpkg: 'pve-manager\t7.4-18\tinstalled\npve-container\t4.4-6\tinstalled' });
  const p = planCtDev(args(), f, file(CT));
  t.is(p.kind, 'change');
  if (p.kind !== 'change') return;
  t.deepEqual(p.actions.map((a) => a.kind), ['write']);
  const after = (p.actions[0] as { content: string }).content;
  t.is(after, CT + 'lxc.cgroup2.devices.allow: c 226:128 rwm\nlxc.mount.entry: /dev/dri/renderD128 dev/dri/renderD128 none bind,optional,create=file\n');
  t.is(p.diff[0]!.after, after);
  // written under pct's config lock, only over the content the plan read
  t.like(p.actions[0], { expectSha256: createHash('sha256').update(CT).digest('hex'), lockFile: '/run/lock/lxc/pve-config-101.lock' });
  t.is(planCtDev(args(), f, file(after)).kind, 'noop');
  // a locked container (backup, snapshot) is left alone, as pct does
  const locked = planCtDev(args(), f, file(CT + 'lock: backup\n'));
  t.is(locked.kind, 'fail');
  if (locked.kind === 'fail') t.regex(locked.msg, /container 101 is locked \(lock: backup\)/);
  // devN asked for where pve-container lacks it
  const d = planCtDev(args({ method: 'dev' }), f, file(CT));
  t.is(d.kind, 'fail');
  if (d.kind === 'fail') t.regex(d.msg, /expected pve-container 5\.0\.7 or later for devN on pve1, found 4\.4-6/);
});

test('plan, a running container: a new devN is hot-plugged; a changed one or lxc lines wait, refused unless allowed', (t) => {
  // 100 is running in pct-list.txt
  const P100 = '/etc/pve/lxc/100.conf';
  const f = facts(CT, { 'pve-guests': `@@file ${P100}\n${CT}\n` });
  const a = (o: Partial<PveCtDevArgs> = {}) => args({ ctid: 100, ...o });
  const n = planCtDev(a(), f, file(CT));
  t.is(n.kind, 'change');
  if (n.kind === 'change') t.regex(n.msg, /hot-plugged into the running container/);
  const had = CT + 'dev0: /dev/dri/renderD128,gid=44\n';
  const c = planCtDev(a(), f, file(had));
  t.is(c.kind, 'fail');
  if (c.kind === 'fail') t.regex(c.msg, /container 100 is running: dev0 would change from '\/dev\/dri\/renderD128,gid=44' to '\/dev\/dri\/renderD128,gid=104'/);
  const ok = planCtDev(a({ pending: 'allow' }), f, file(had));
  t.is(ok.kind, 'change');
  if (ok.kind === 'change') t.regex(ok.msg, /pending until its next start/);
  const l = planCtDev(a({ method: 'lxc' }), f, file(CT));
  t.is(l.kind, 'fail');
  if (l.kind === 'fail') t.regex(l.msg, /would take effect only at its next start/);
});

test('plan refusals: no container, no DRM node for the slot (with its driver), not Proxmox VE', (t) => {
  const f = facts();
  const none = planCtDev(args({ ctid: 999 }), f, file(null));
  t.is(none.kind, 'fail');
  if (none.kind === 'fail') t.regex(none.msg, /expected container 999 on pve1, found no \/etc\/pve\/lxc\/999\.conf/);
  const vfio = { ...f, pci: f.pci.map((d) => (d.address === '0000:00:02.0' ? { ...d, driver: 'vfio-pci' } : d)), dri: f.dri.filter((d) => d.pciAddress !== '0000:00:02.0') };
  const nd = planCtDev(args(), vfio, file(CT));
  t.is(nd.kind, 'fail');
  if (nd.kind === 'fail') {
    t.regex(nd.msg, /expected a render node in \/dev\/dri\/by-path for 0000:00:02\.0 on pve1, found 0000:00:02\.0 .* on driver vfio-pci/);
    t.regex(nd.hint!, /bound to vfio-pci/);
  }
  const missing = planCtDev(args({ slot: '00:03.0' }), f, file(CT));
  if (missing.kind === 'fail') t.regex(missing.msg, /found no PCI function 0000:00:03\.0/);
  else t.fail();
  const notPve = planCtDev(args(), { ...f, pveVersion: null, pveMajor: null }, file(CT));
  t.is(notPve.kind, 'fail');
});

test('preflight-igpu-host: the iGPU stays on i915 with a render node; chosen for vfio-pci or without a node is refused', (t) => {
  const f = facts();
  const ok = preflightIgpuHost({ facts: f, vars: vars(), params: [] });
  t.true(ok.ok, JSON.stringify(ok));
  const chosen = preflightIgpuHost({ facts: f, vars: vars({ passthrough_slots: ['00:02'] }), params: [] });
  t.false(chosen.ok);
  if (!chosen.ok) t.regex(chosen.msg, /found it chosen for vfio-pci/);
  t.false(preflightIgpuHost({ facts: f, vars: vars({ vfio_ids: ['8086:3e92'] }), params: [] }).ok);
  t.true(preflightIgpuHost({ facts: f, vars: vars({ passthrough_slots: ['01:00'] }), params: [] }).ok);
  const nonode = preflightIgpuHost({ facts: { ...f, dri: [] }, vars: vars(), params: [] });
  t.false(nonode.ok);
  if (!nonode.ok) t.regex(nonode.msg, /found no \/dev\/dri; driver i915/);
});

test('gate-igpu-lxc: the config names the node the by-path name resolves to now; a renumbered node fails', (t) => {
  const devOk = facts(CT + 'dev0: /dev/dri/renderD128,gid=104\n');
  t.true(gateIgpuLxc({ facts: devOk, vars: vars(), params: [] }).ok);
  // gid asked for differs
  const g = gateIgpuLxc({ facts: devOk, vars: vars({ lxc_dev_gid: 105 }), params: [] });
  t.false(g.ok);
  // the lxc form
  const lines = CT + 'lxc.cgroup2.devices.allow: c 226:128 rwm\nlxc.mount.entry: /dev/dri/renderD128 dev/dri/renderD128 none bind,optional,create=file\n';
  t.true(gateIgpuLxc({ facts: facts(lines), vars: vars(), params: [] }).ok);
  // renumbered: the config was written when the iGPU was renderD129; renderD129 is now the NVIDIA card
  const stale = facts(CT + 'dev0: /dev/dri/renderD129,gid=104\n');
  const r = gateIgpuLxc({ facts: stale, vars: vars(), params: [] });
  t.false(r.ok);
  if (!r.ok) {
    t.regex(r.msg, /expected container 101 to be given \/dev\/dri\/renderD128 \(\/dev\/dri\/by-path\/pci-0000:00:02\.0-render, 226:128\), found dev0 \/dev\/dri\/renderD129,gid=104/);
    t.regex(r.hint, /renumbered/);
  }
  // both: the right entry and one for the other card (deliberate or stale: named, not failed)
  const both = facts(CT + 'dev0: /dev/dri/renderD128,gid=104\ndev1: /dev/dri/renderD129,gid=104\n');
  const b = gateIgpuLxc({ facts: both, vars: vars(), params: [] });
  t.true(b.ok);
  if (b.ok) t.regex(b.reason, /also dev1 \/dev\/dri\/renderD129 is now 0000:01:00\.0/);
  t.false(gateIgpuLxc({ facts: facts(CT), vars: vars(), params: [] }).ok);
});

test('every variable of igpu-host and igpu-lxc refuses the hostile corpus of the hostile-lab test at load', async (t) => {
  // test/integration/hostile-lab.test.ts runs the gpu-passthrough playbook's roles; the same values here
  const corpus = ['x; touch M', '$(touch M)', '`touch M`', "x\ninstall vfio_pci /bin/sh -c 'touch M'", '--upload-pack=touch M', 'x\u0000touch M', `${'a'.repeat(100_000)}M`, 'x\u00ffM', "https://github.com/gnif/vendor-reset.git;touch$IFS'M'", 'https://x.invalid/$(touch${IFS}M)'];
  let n = 0;
  for (const role of ['igpu-host', 'igpu-lxc']) {
    const errs = new Errors();
    const spec = await loadRoleArgSpec(role, join(fileURLToPath(new URL('../../roles', import.meta.url)), role), errs);
    t.deepEqual(errs.list.map((e) => e.format()), [], role);
    for (const [name, o] of Object.entries(spec!.options)) {
      for (const v of corpus) {
        const value = o.type === 'list' ? [v] : v;
        t.true(checkValue(o, value, name).length > 0, `${role}: ${name} = ${JSON.stringify(v).slice(0, 60)} refused`);
        n++;
      }
    }
  }
  t.true(n >= 90, `${n} cases`);
});
