/**
 * The live progress tree for a terminal, drawn by listr2: one list per batch, one row per
 * host showing its current role › task, then the reboot as its own step (waiting for its turn
 * in a cluster roll: "waiting for pve-c1"; down for N s with the reboot_timeout countdown), and
 * one line with its counts when done. From {@link COLLAPSE_AT} hosts in a batch, a host that
 * finished well leaves the tree and counts in one "N of M hosts done" line at its top, so the
 * screen holds the hosts still running and the failed ones (expanded). Diffs (identical ones
 * once, with their hosts) and failure details are printed below the tree when the batch ends, so
 * the tree is never torn apart by them; after the last tree, a short summary of what changed where.
 */
import { Listr, type ListrTaskWrapper } from 'listr2';
import type { EventBus, RunEvent } from '../engine/events.ts';
import type { TaskResult } from '../model/types.ts';
import { paint } from './colour.ts';
import { diffText, failureBlock } from './format.ts';
import type { ReporterOptions } from './plain.ts';

interface Row {
  task?: RowTask;
  /** The last line shown under the host, its final title and whether it left the tree: kept for a task listr2 has not started yet. */
  output?: string;
  title?: string;
  hidden?: boolean;
  done: (err?: Error) => void;
  counts: { changed: number; failed: number; ok: number; skipped: number };
  downSince?: number;
  /** Waiting for its turn to reboot: what it waits for, since when. */
  waiting?: { for: string; since: number };
  rebooted?: boolean;
  ended: boolean;
}

/** From this many hosts in a batch, hosts that finished well collapse into one line. */
export const COLLAPSE_AT = 50;

type RowTask = ListrTaskWrapper<unknown, any, any>;

/**
 * Takes a finished row out of the drawing: listr2 draws no line for a task without a title. The
 * wrapper's `title` setter only takes strings, so this sets the task's own title.
 */
function hideRow(task: RowTask): void {
  (task as unknown as { task: { title$: string | undefined } }).task.title$ = undefined;
}

export interface LiveReporter {
  off: () => void;
  /** Waits for the last frame and prints what is left (warnings, diffs): call before the recap. */
  flush: () => Promise<void>;
}

export interface LiveOptions extends ReporterOptions {
  /** A stage's reboot_timeout in seconds, for the countdown of a reboot (default 600). */
  rebootTimeoutS?: (stage: string) => number | undefined;
}

export function liveReporter(bus: EventBus, o: LiveOptions): LiveReporter {
  let rows = new Map<string, Row>();
  let running: Promise<unknown> = Promise.resolve();
  let tail: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  // Diffs of the batch, identical ones once with their hosts: key → hosts, text.
  let diffs = new Map<string, { hosts: string[]; title: string; text: string }>();
  // What changed where over the whole run, for the summary after the tree.
  const changedWhere = new Map<string, string[]>();
  /** Shows `text` under the host's row (now, or once listr2 starts the row's task). */
  const show = (r: Row | undefined, text: string) => {
    if (!r) return;
    r.output = text;
    if (r.task) r.task.output = text;
  };
  const secs = (ms: number) => `${Math.max(0, Math.round(ms / 1000))} s`;

  // The "N of M hosts done" line of a collapsed batch (see COLLAPSE_AT).
  let collapsed: { task?: RowTask; resolve?: () => void; ended?: boolean; total: number; done: number; counts: Row['counts']; rebooted: number } | undefined;
  const collapsedTitle = (c: NonNullable<typeof collapsed>) =>
    `${c.done} of ${c.total} hosts done  ok=${c.counts.ok} ${o.check ? 'drift' : 'changed'}=${c.counts.changed} skipped=${c.counts.skipped}` +
    (c.rebooted ? ` rebooted=${c.rebooted}` : '');

  const startBatch = (stage: string, hosts: string[], label: string) => {
    rows = new Map();
    width = Math.max(...hosts.map((h) => h.length));
    collapsed = hosts.length >= COLLAPSE_AT ? { total: hosts.length, done: 0, counts: { changed: 0, failed: 0, ok: 0, skipped: 0 }, rebooted: 0 } : undefined;
    const c = collapsed;
    const doneRow = c
      ? [
          {
            title: collapsedTitle(c),
            task: (_: unknown, task: RowTask) =>
              new Promise<void>((resolve) => {
                c.task = task;
                task.title = collapsedTitle(c);
                c.resolve = resolve;
                if (c.ended) resolve();
              }),
          },
        ]
      : [];
    const list = new Listr(
      [...doneRow, ...hosts.map((h) => ({
        title: h,
        task: (_: unknown, task: RowTask) =>
          new Promise<void>((resolve, reject) => {
            const row = rows.get(h)!;
            row.task = task;
            if (row.output) task.output = row.output;
            if (row.title) task.title = row.title;
            if (row.hidden) hideRow(task);
            row.done = (err) => (err ? reject(err) : resolve());
            if (row.ended) resolve();
          }),
      }))],
      {
        concurrent: true,
        exitOnError: false,
        renderer: 'default',
        rendererOptions: { showErrorMessage: true, collapseErrors: false },
      },
    );
    for (const h of hosts) rows.set(h, { done: () => {}, counts: { changed: 0, failed: 0, ok: 0, skipped: 0 }, ended: false });
    o.write(`${paint(o, 'bold', `${stage}${label}`)}\n`);
    running = list.run().catch(() => undefined);
    const timeoutS = o.rebootTimeoutS?.(stage) ?? 600;
    const tick = () => {
      const now = Date.now();
      for (const r of rows.values()) {
        if (!r.task || r.ended) continue;
        if (r.downSince) {
          show(r, `reboot: down ${secs(now - r.downSince)}, reboot_timeout ${timeoutS} s (${secs(r.downSince + timeoutS * 1000 - now)} left)`);
        } else if (r.waiting) {
          show(r, `reboot: waiting for ${r.waiting.for} (${secs(now - r.waiting.since)})`);
        }
      }
    };
    timer = setInterval(tick, 1000);
  };

  const finishHost = (h: string, status: string) => {
    const r = rows.get(h);
    if (!r || r.ended) return;
    r.ended = true;
    const c = r.counts;
    const summary =
      `${h.padEnd(width)}  ok=${c.ok} ${o.check ? 'drift' : 'changed'}=${c.changed} failed=${c.failed} skipped=${c.skipped}` +
      (r.rebooted ? ' rebooted' : '');
    r.title = summary;
    if (r.task) r.task.title = summary;
    if (collapsed && status === 'ok') {
      collapsed.done++;
      for (const k of ['changed', 'failed', 'ok', 'skipped'] as const) collapsed.counts[k] += c[k];
      if (r.rebooted) collapsed.rebooted++;
      if (collapsed.task) collapsed.task.title = collapsedTitle(collapsed);
      r.hidden = true;
      if (r.task) hideRow(r.task);
    }
    if (status === 'ok') r.done();
    else r.done(new Error(`${h}: ${status}`));
  };

  const count = (res: TaskResult) => {
    const r = rows.get(res.host);
    if (!r) return;
    if (res.status === 'changed') {
      r.counts.changed++;
      r.counts.ok++;
    } else if (res.status === 'failed' || res.status === 'unreachable') r.counts.failed++;
    else if (res.status === 'ok') r.counts.ok++;
    else if (res.status === 'skipped') r.counts.skipped++;
    if (res.status === 'failed' || res.status === 'unreachable') tail.push(failureBlock(o, res));
    if (res.status === 'changed') {
      const l = changedWhere.get(res.host) ?? [];
      l.push(`${res.role ? `${res.role} › ` : ''}${res.task}`);
      changedWhere.set(res.host, l);
    }
    if (o.diff && res.diff.length) {
      const text = diffText(o, res);
      const key = `${res.role}\0${res.task}\0${text}`;
      const d = diffs.get(key);
      if (d) d.hosts.push(res.host);
      else diffs.set(key, { hosts: [res.host], title: `${res.role ? `${res.role} › ` : ''}${res.task}`, text });
    }
  };

  let ending: Promise<void> = Promise.resolve();
  const endBatch = (): Promise<void> => {
    for (const h of rows.keys()) finishHost(h, 'ok');
    if (collapsed) {
      collapsed.ended = true;
      collapsed.resolve?.();
    }
    if (timer) clearInterval(timer);
    const drawn = running;
    const shown = [...diffs.values()].map((d) => `${paint(o, 'yellow', `${d.title}  on ${d.hosts.length > 1 ? `${d.hosts.length} hosts: ` : ''}${d.hosts.join(', ')}`)}\n${d.text}`);
    diffs = new Map();
    ending = ending.then(async () => {
      await drawn;
      const text = [...shown, ...tail];
      if (text.length) o.write(`${text.join('\n')}\n`);
      tail = [];
    });
    return ending;
  };

  /** After the last tree: what changed where, one line per host (hosts with the same changes together). */
  const summary = (): string => {
    if (!changedWhere.size) return '';
    const byChanges = new Map<string, string[]>();
    for (const [h, l] of changedWhere) {
      const k = l.join(', ');
      byChanges.set(k, [...(byChanges.get(k) ?? []), h]);
    }
    const head = paint(o, 'bold', o.check ? 'Would change:' : 'Changed:');
    const lines = [...byChanges].map(([what, hosts]) => `  ${hosts.sort().join(', ')}: ${what.length > 300 ? `${what.slice(0, 297)}...` : what}`);
    return `${head}\n${lines.join('\n')}\n`;
  };

  let stageName = '';
  let width = 0;
  const off = bus.on((e: RunEvent) => {
    switch (e.type) {
      case 'stage-start':
        stageName = e.stage;
        break;
      case 'batch-start':
        void endBatch();
        startBatch(stageName, e.hosts, e.count > 1 ? ` (batch ${e.index + 1}/${e.count})` : '');
        break;
      case 'task-start': {
        show(rows.get(e.host), `${e.kind === 'task' ? '' : `${e.kind}: `}${e.role ? `${e.role} › ` : ''}${e.task}`);
        break;
      }
      case 'task-result':
        count(e.result);
        break;
      case 'reboot-wait': {
        const r = rows.get(e.host);
        if (r) {
          if (r.waiting?.for !== e.waitingFor) r.waiting = { for: e.waitingFor, since: Date.now() };
          show(r, `reboot: waiting for ${e.waitingFor} (${e.reason})`);
        }
        break;
      }
      case 'reboot-prepare': {
        const r = rows.get(e.host);
        if (r) {
          r.waiting = undefined;
          show(r, `reboot: ${e.what}`);
        }
        break;
      }
      case 'reboot-start':
      case 'reboot-down': {
        const r = rows.get(e.host);
        if (r) {
          r.waiting = undefined;
          r.downSince ??= e.at;
          if (e.type === 'reboot-start') show(r, `reboot: ${e.reason}`);
        }
        break;
      }
      case 'reboot-up': {
        const r = rows.get(e.host);
        if (r) {
          r.downSince = undefined;
          r.rebooted = true;
          show(r, `back after ${(e.downForMs / 1000).toFixed(1)} s; running gates`);
        }
        break;
      }
      case 'reboot-pending':
        tail.push(paint(o, 'magenta', `${e.host}: reboot pending: ${e.reason}`));
        break;
      case 'warning':
        tail.push(paint(o, 'yellow', `warning: ${e.host ? `${e.host}: ` : ''}${e.msg}`));
        break;
      case 'host-end':
        finishHost(e.host, e.status);
        break;
      case 'stage-end':
        void endBatch();
        break;
      default:
        break;
    }
  });
  return {
    off,
    flush: async () => {
      await endBatch();
      const text = summary();
      if (text) o.write(`\n${text}`);
    },
  };
}
