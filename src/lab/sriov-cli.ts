/**
 * Called by the systemctl stub of a node for `start`/`restart` of a unit that writes
 * sriov_numvfs: runs the unit's writes against the node's live PFs and updates its generated
 * sysfs and lspci listing (src/lab/sriov.ts). Exit 1 with the shell's error when the unit fails.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeDmesgAnswers } from './answers.ts';
import { hostView } from './node.ts';
import type { Profile } from './profile.ts';
import { parseSriovUnit, startSriovUnit } from './sriov.ts';

const [dir, unitName] = process.argv.slice(2);
if (!dir || !unitName) {
  console.error('usage: sriov-cli.ts NODE_DIR UNIT');
  process.exit(2);
}
const p = JSON.parse(readFileSync(join(dir, 'profile.json'), 'utf8')) as Profile;
const unit = parseSriovUnit(unitName, hostView(dir).read(`/etc/systemd/system/${unitName}`) ?? '');
if (!unit) process.exit(0);
const r = startSriovUnit(dir, p, unit);
const dmesg = join(dir, 'gen/run/dmesg');
const n = readFileSync(dmesg, 'utf8').split('\n').filter(Boolean).length;
if (r.log.length) {
  appendFileSync(dmesg, r.log.map((l, i) => `[ ${(60 + (n + i) * 0.013).toFixed(6).padStart(11)}] ${l}`).join('\n') + '\n');
  writeDmesgAnswers(join(dir, 'gen/run'));
}
if (!r.ok) {
  console.error(r.error);
  process.exit(1);
}
