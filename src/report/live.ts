/**
 * The live progress tree for a terminal, drawn by listr2: one list per batch, one row per
 * host showing its current task, reboot wait or down time, and its counts when done. Diffs
 * and failure details are printed below the tree when the batch ends, so the tree is never
 * torn apart by them.
 */
import { Listr, type ListrTaskWrapper } from 'listr2';
import type { EventBus, RunEvent } from '../engine/events.ts';
import type { TaskResult } from '../model/types.ts';
import { diffText, failureBlock, paint } from './format.ts';
import type { ReporterOptions } from './plain.ts';

interface Row {
  task?: ListrTaskWrapper<unknown, any, any>;
  done: (err?: Error) => void;
  counts: { changed: number; failed: number; ok: number; skipped: number };
  downSince?: number;
  rebooted?: boolean;
  ended: boolean;
}

export interface LiveReporter {
  off: () => void;
  /** Waits for the last frame and prints what is left (warnings, diffs): call before the recap. */
  flush: () => Promise<void>;
}

export function liveReporter(bus: EventBus, o: ReporterOptions): LiveReporter {
  let rows = new Map<string, Row>();
  let running: Promise<unknown> = Promise.resolve();
  let tail: string[] = [];
  let timer: NodeJS.Timeout | undefined;

  const startBatch = (stage: string, hosts: string[], label: string) => {
    rows = new Map();
    width = Math.max(...hosts.map((h) => h.length));
    const list = new Listr(
      hosts.map((h) => ({
        title: h,
        task: (_: unknown, task: ListrTaskWrapper<unknown, any, any>) =>
          new Promise<void>((resolve, reject) => {
            const row = rows.get(h)!;
            row.task = task;
            row.done = (err) => (err ? reject(err) : resolve());
            if (row.ended) resolve();
          }),
      })),
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
    timer = setInterval(() => {
      for (const [h, r] of rows) {
        if (r.downSince && r.task) r.task.output = `rebooting: down ${((Date.now() - r.downSince) / 1000).toFixed(0)} s`;
        void h;
      }
    }, 1000);
  };

  const finishHost = (h: string, status: string) => {
    const r = rows.get(h);
    if (!r || r.ended) return;
    r.ended = true;
    const c = r.counts;
    const summary =
      `${h.padEnd(width)}  ok=${c.ok} ${o.check ? 'drift' : 'changed'}=${c.changed} failed=${c.failed} skipped=${c.skipped}` +
      (r.rebooted ? ' rebooted' : '');
    if (r.task) r.task.title = summary;
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
    if (o.diff && res.diff.length) tail.push(`${paint(o, 'yellow', `${res.host}: ${res.role} › ${res.task}`)}\n${diffText(o, res)}`);
  };

  let ending: Promise<void> = Promise.resolve();
  const endBatch = (): Promise<void> => {
    for (const h of rows.keys()) finishHost(h, 'ok');
    if (timer) clearInterval(timer);
    const drawn = running;
    ending = ending.then(async () => {
      await drawn;
      if (tail.length) o.write(`${tail.join('\n')}\n`);
      tail = [];
    });
    return ending;
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
        const r = rows.get(e.host);
        if (r?.task) r.task.output = `${e.kind === 'task' ? '' : `${e.kind}: `}${e.role ? `${e.role} › ` : ''}${e.task}`;
        break;
      }
      case 'task-result':
        count(e.result);
        break;
      case 'reboot-wait': {
        const r = rows.get(e.host);
        if (r?.task) r.task.output = `waiting to reboot: ${e.waitingFor}`;
        break;
      }
      case 'reboot-start':
      case 'reboot-down': {
        const r = rows.get(e.host);
        if (r) r.downSince ??= e.at;
        break;
      }
      case 'reboot-up': {
        const r = rows.get(e.host);
        if (r) {
          r.downSince = undefined;
          r.rebooted = true;
          if (r.task) r.task.output = `back after ${(e.downForMs / 1000).toFixed(1)} s; running gates`;
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
  return { off, flush: () => endBatch() };
}
