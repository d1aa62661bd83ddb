/**
 * Hostile values through every variable of every role of the GPU passthrough playbook, on the lab (real sshd nodes), in
 * check and apply mode: `;`, `$()`, backquotes, a newline with a modprobe `install` line, a
 * leading `-`, NUL, a very long value, bytes that are not UTF-8, and values that pass a URL
 * pattern but carry shell syntax. Each value either is refused at load (exit 4, "no host was
 * contacted", no report, no byte changed on any node), or, if accepted, runs without any marker
 * file appearing (each hostile value tries to create one) and changes nothing outside the files
 * the variable's role owns.
 * Lab addresses 127.0.100.x. Needs root (the lab does).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { RunReport } from '../../src/model/types.ts';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labUp, type LabInfo } from '../../src/lab/index.ts';
import { main } from '../../src/cli/main.ts';
import { loadPlaybook } from '../../src/load/playbook.ts';
import { modules } from '../../src/modules/index.ts';
import { variables } from '../../scripts/gen-docs.ts';
import type { OptionSpec } from '../../src/spec/types.ts';
import { captureIo } from '../helpers/cli.ts';
import { changedFiles, isRoot, labTest as lab, nodeTree, tearDownLab, tempDir, type NodeTree } from '../helpers/lab.ts';
import test from 'ava';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/gpu-passthrough.yaml', import.meta.url));
const PROFILES = ['intel-grub-pve8-rtx4090', 'debian-guest-nvidia-docker'];

let info: LabInfo | undefined;
let dir = '';
let tmp = '';
let nodes: string[] = [];

test.before(async () => {
  if (!isRoot) return;
  dir = tempDir('passthru-hostile-lab-');
  tmp = tempDir('passthru-hostile-out-');
  info = await labUp({ dir, scenarios: PROFILES, baseAddr: '127.0.100.1', rebootDelayS: 1 });
  nodes = info.nodes.map((n) => n.name);
});

test.after.always(() => tearDownLab(dir, tmp));

/** The hostile values; `M` is replaced by a marker path that must never exist afterwards. */
const CORPUS: Array<{ name: string; text: string; raw?: Buffer }> = [
  { name: 'semicolon', text: 'x; touch M' },
  { name: 'command substitution', text: '$(touch M)' },
  { name: 'backquotes', text: '`touch M`' },
  { name: 'newline + modprobe install', text: "x\ninstall vfio_pci /bin/sh -c 'touch M'" },
  { name: 'leading -', text: '--upload-pack=touch M' },
  { name: 'NUL', text: 'x\u0000touch M' },
  { name: 'very long', text: `${'a'.repeat(100_000)}M` },
  { name: 'not UTF-8', text: 'x\u00ffM', raw: Buffer.from([0x78, 0xff, 0xfe]) },
  { name: 'URL-shaped with shell syntax', text: 'https://github.com/gnif/vendor-reset.git;touch$IFS\'M\'' },
  { name: 'URL-shaped with $()', text: 'https://x.invalid/$(touch${IFS}M)' },
];

let markerNo = 0;
const markers: string[] = [];
/** A fresh marker path inside the node (/root/pwned-N). */
function marker(): string {
  const m = `/root/pwned-${++markerNo}`;
  markers.push(m);
  return m;
}

/** Where a hostile value goes for a variable of this type (lists get it as an item, maps in each key). */
function placements(o: OptionSpec, v: string): unknown[] {
  if (o.type === 'list') return [[v]];
  if (o.type === 'dict') return Object.keys(o.options ?? {}).map((k) => ({ ...(o.default as object), [k]: v }));
  return [v];
}

/** A YAML vars file holding `name: value`; a `__RAW__` string inside the value becomes the raw bytes. */
function varsFile(name: string, value: unknown, raw?: Buffer): string {
  const f = join(tmp, `vars-${markerNo}-${Math.random().toString(36).slice(2)}.yaml`);
  const json = JSON.stringify(value);
  // the vendor-reset role's commands run only when it is on: turn it on for its own variables
  const extra = name.startsWith('vendor_reset_') ? "vendor_reset: 'on'\n" : '';
  if (raw && json.includes('"__RAW__"')) {
    const [pre, post] = json.split('"__RAW__"');
    writeFileSync(f, Buffer.concat([Buffer.from(`${extra}${name}: ${pre}'`), raw, Buffer.from(`'${post}\n`)]));
  } else writeFileSync(f, `${extra}${name}: ${json}\n`);
  return f;
}

async function cli(mode: 'check' | 'apply', varsPath: string): Promise<{ code: number; text: string; report: boolean; json: string }> {
  const io = captureIo();
  const json = join(tmp, `report-${Math.random().toString(36).slice(2)}.json`);
  const code = await main([mode, PLAYBOOK, '-i', info!.inventoryPath, '--progress', 'quiet', '--no-reboot', '--failed-hosts', join(tmp, 'failed'), '-e', '@' + varsPath, '--json', json], io);
  return { code, text: io.text(), report: existsSync(json), json };
}

const trees = (): Map<string, NodeTree> => new Map(nodes.map((n) => [n, nodeTree(dir, n)]));

/** Files a role may own on a node (an accepted value may change these and only these). */
function owned(): RegExp {
  return /^\/(etc\/(apt\/sources\.list\.d|modprobe\.d|modules|default\/grub|kernel\/cmdline|sysctl\.d|udev\/rules\.d|docker)|usr\/(share\/keyrings|src)|var\/(lib|cache|log)|lib\/modules|boot)\b|^\/proc\/|^\/sys\//;
}

lab('hostile values in every variable of every role: refused at load, or harmless (check and apply)', async (t) => {
  t.timeout(40 * 60_000);
  // the variables of the roles this playbook runs (the other playbooks' roles read theirs only there)
  const pb = await loadPlaybook(PLAYBOOK, { modules });
  const vars = (await variables()).filter((v) => v.roles.some((r) => pb.roles.has(r)));
  t.true(vars.length >= 25, `${vars.length} variables`);
  // converge first so that accepted values show only their own effect
  const base = await cli('apply', varsFile('passthru_unused', 1));
  t.true(base.code !== 4 && base.code !== 3, `baseline apply (exit ${base.code}): ${base.text.slice(-2000)}`);
  let refused = 0;
  let accepted = 0;
  let last = trees();
  const acceptedCases: string[] = [];
  for (const v of vars) {
    for (const c of CORPUS) {
      for (const mode of ['check', 'apply'] as const) {
        const m = marker();
        const text = c.text.replace(/M/g, m);
        for (const value of placements(v.o, c.raw ? '__RAW__' : text)) {
          const f = varsFile(v.name, value, c.raw ? Buffer.concat([c.raw, Buffer.from(m)]) : undefined);
          const r = await cli(mode, f);
          const what = `${v.name} = ${c.name} (${mode})`;
          for (const n of nodes) t.false(existsSync(join(dir, 'nodes', n, 'root', m)), `${what}: marker ${m} created on ${n}: a value became code`);
          if (r.code === 4) {
            refused++;
            t.regex(r.text, /no host was contacted/, what);
            t.false(r.report, `${what}: no report (nothing ran)`);
          } else {
            accepted++;
            acceptedCases.push(`${what} → exit ${r.code}`);
            // the refused runs since the last snapshot changed nothing; this one only the roles' own files
            const after = trees();
            for (const n of nodes) {
              const all = changedFiles(last.get(n)!, after.get(n)!);
              t.deepEqual(all.filter((p) => !owned().test(p)), [], `${what}: files outside the roles' own changed on ${n}`);
              if (mode === 'check') t.deepEqual(all.filter((p) => !/^\/(proc|sys|var\/log)\//.test(p)), [], `${what}: check mode (or a refused run before it) changed ${n}`);
            }
            last = after;
          }
        }
      }
    }
  }
  const end = trees();
  for (const n of nodes) t.deepEqual(changedFiles(last.get(n)!, end.get(n)!), [], `refused runs changed ${n}`);
  for (const n of nodes) for (const mk of markers) t.false(existsSync(join(dir, 'nodes', n, 'root', mk)), `marker ${mk} exists on ${n}`);
  t.log(`${refused} runs refused at load (exit 4), ${accepted} accepted and harmless`);
  if (acceptedCases.length) t.log(acceptedCases.slice(0, 40).join('\n'));
  t.true(refused > 0);
  // the only values a spec accepts here are URL-shaped ones, where the shell syntax stays text
  for (const a of acceptedCases) t.regex(a, /URL-shaped/, `accepted: ${a}`);

  // the legitimate path of the quoted commands works: clone -- URL DIR, checkout REF --, then skipped
  const pve = info!.nodes.find((n) => n.profile === 'intel-grub-pve8-rtx4090')!.name;
  const on = varsFile('vendor_reset', 'on');
  const first = await cli('apply', on);
  t.true(existsSync(join(dir, 'nodes', pve, 'root', 'usr/src/vendor-reset-0.1.1/dkms.conf')), `vendor-reset source cloned: ${first.text.slice(-3000)}`);
  const status = (r: { json: string }) =>
    (JSON.parse(readFileSync(r.json, 'utf8')) as RunReport).hosts[pve]?.tasks.find((x) => x.task === 'vendor-reset source')?.status;
  t.is(status(first), 'changed', first.text.slice(-3000));
  const again = await cli('apply', on);
  t.is(status(again), 'ok', again.text.slice(-3000));
});
