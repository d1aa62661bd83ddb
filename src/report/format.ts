/**
 * Text pieces shared by the reporters: status words, the recap table, failure blocks, diffs.
 * Pure functions over results; the reporters decide where the text goes. The colours come from
 * colour.ts (re-exported here for the callers that import them from this module).
 */
import type { HostRecap, RunReport, TaskResult } from '../model/types.ts';
import { unifiedDiff } from '../modules/diff.ts';
import { paint, type Style } from './colour.ts';


const STATUS_COLOR: Record<TaskResult['status'], string> = {
  ok: 'green',
  changed: 'yellow',
  failed: 'red',
  skipped: 'cyan',
  unreachable: 'red',
  pending: 'magenta',
};

export function statusWord(s: Style, status: TaskResult['status'], check: boolean): string {
  const word = status === 'changed' && check ? 'drift' : status;
  return paint(s, STATUS_COLOR[status], word.padEnd(11));
}

/** `host | stage › role › task` */
export function where(r: TaskResult): string {
  const kind = r.kind === 'task' ? '' : `${r.kind}: `;
  return `${r.host} | ${[r.stage, r.role, kind + r.task].filter(Boolean).join(' › ')}`;
}

export function resultLine(s: Style, r: TaskResult, check: boolean): string {
  const msg = r.msg ? `  ${paint(s, 'dim', firstLine(r.msg))}` : '';
  return `${statusWord(s, r.status, check)}${where(r)}${msg}`;
}

/** A failure with everything a user needs: host, task, message, hint. */
export function failureBlock(s: Style, r: TaskResult): string {
  const lines = [`${paint(s, 'red', r.status === 'unreachable' ? 'UNREACHABLE' : 'FAILED')} ${where(r)}`];
  for (const l of r.msg.split('\n')) lines.push(`  ${l}`);
  if (r.hint) lines.push(`  ${paint(s, 'cyan', 'hint:')} ${r.hint}`);
  return lines.join('\n');
}

/** A unified diff painted line by line (headers bold, + green, - red, @@ cyan) with the one colour table. */
export function colorizeDiff(s: Style, text: string): string {
  if (!s.color) return text;
  return text
    .split('\n')
    .map((line) => {
      if (line.startsWith('+++') || line.startsWith('---')) return paint(s, 'bold', line);
      if (line.startsWith('+')) return paint(s, 'green', line);
      if (line.startsWith('-')) return paint(s, 'red', line);
      if (line.startsWith('@@')) return paint(s, 'cyan', line);
      return line;
    })
    .join('\n');
}

export function diffText(s: Style, r: TaskResult): string {
  return r.diff.map((d) => colorizeDiff(s, unifiedDiff(d))).join('');
}

export function recapTable(s: Style, report: RunReport): string {
  const hosts = Object.entries(report.recap);
  if (!hosts.length) return 'RECAP: no hosts ran';
  const w = Math.max(...hosts.map(([h]) => h.length), 4);
  const cell = (name: string, n: number, color: string) => {
    const t = `${name}=${n}`.padEnd(name.length + 5);
    return n > 0 ? paint(s, color, t) : t;
  };
  const lines = [paint(s, 'bold', report.check ? 'RECAP (check mode: nothing was changed; ok counts tasks that would change too)' : 'RECAP (ok counts changed tasks too, as Ansible does)')];
  for (const [h, r] of hosts) {
    lines.push(
      `${h.padEnd(w)}  ${cell('ok', r.ok, 'green')}${cell(report.check ? 'drift' : 'changed', r.changed, 'yellow')}` +
        `${cell('failed', r.failed, 'red')}${cell('skipped', r.skipped, 'cyan')}${cell('unreachable', r.unreachable, 'red')}` +
        rebootNote(s, r, report.check),
    );
  }
  // In check mode a host with drift "would reboot" after apply; only a host without drift that
  // still needs a reboot is configured but not booted.
  const pending = hosts.filter(([, r]) => r.rebootPending && !(report.check && r.changed > 0)).map(([h]) => h);
  if (pending.length) lines.push(paint(s, 'magenta', rebootAdvice(pending, report.check)));
  lines.push(`${(report.durationMs / 1000).toFixed(1)} s, exit ${report.exitCode}${exitWords(report.exitCode)}`);
  return lines.join('\n');
}

/** What to do about hosts that need a reboot, in the recap. */
export function rebootAdvice(hosts: string[], check: boolean): string {
  const who = hosts.join(', ');
  return check
    ? `reboot pending on ${who}: configured but not booted yet. \`apply\` reboots and verifies them (in a maintenance window; --guests shutdown stops running guests first).`
    : `reboot pending on ${who}: configured, not booted yet. In a maintenance window, rerun apply without --no-reboot (add --guests shutdown to stop running guests first), or reboot them yourself and run check.`;
}

const EXIT_WORDS: Record<number, string> = {
  0: 'ok',
  2: 'a host failed',
  3: 'a host was unreachable',
  5: 'drift: something would change',
  6: 'reboot pending',
  130: 'interrupted',
};

function exitWords(code: number): string {
  return EXIT_WORDS[code] ? ` (${EXIT_WORDS[code]})` : '';
}

function rebootNote(s: Style, r: HostRecap, check: boolean): string {
  if (r.rebooted) return paint(s, 'cyan', ' rebooted');
  if (r.rebootPending && check && r.changed > 0) return paint(s, 'magenta', ' would reboot');
  if (r.rebootPending) return paint(s, 'magenta', ' reboot pending');
  return '';
}

function firstLine(m: string): string {
  const l = m.split('\n')[0] ?? '';
  return l.length > 160 ? `${l.slice(0, 157)}...` : l;
}
