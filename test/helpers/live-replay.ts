/**
 * Drives the live tree (src/report/live.ts) with the events of a made-up run, so a terminal test
 * sees what a person sees at N hosts without N nodes: `node --import tsx live-replay.ts N MARK`.
 * All but three hosts finish well, two fail, one is still running its task; then it writes MARK
 * and waits until MARK.go exists before it finishes the last host and the batch.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { EventBus } from '../../src/engine/events.ts';
import { liveReporter } from '../../src/report/live.ts';
import type { TaskResult } from '../../src/model/types.ts';

const n = Number(process.argv[2] ?? 60);
const mark = process.argv[3] ?? '/dev/null';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hosts = Array.from({ length: n }, (_, i) => `pve-${String(i + 1).padStart(3, '0')}`);
const bus = new EventBus();
const live = liveReporter(bus, { color: false, check: false, diff: false, verbose: false, write: (t) => void process.stdout.write(t) });
const stage = 'Host kernel and modules';
const result = (host: string, status: TaskResult['status'], msg = ''): TaskResult => ({
  host, stage, role: 'vfio', task: 'vfio-pci claims the chosen devices', kind: 'task', status, changed: status === 'changed', diff: [], msg, durationMs: 5,
});

bus.emit({ type: 'stage-start', stage, hosts });
bus.emit({ type: 'batch-start', stage, hosts, index: 0, count: 1 });
for (const h of hosts) bus.emit({ type: 'task-start', stage, host: h, role: 'vfio', task: 'vfio-pci claims the chosen devices', kind: 'task' });
await sleep(300);
const [running, ...rest] = [...hosts].reverse();
const failing = rest.slice(0, 2);
for (const h of rest) {
  const bad = failing.includes(h);
  bus.emit({ type: 'task-result', result: result(h, bad ? 'failed' : 'changed', bad ? `${h}: no space left on device` : '') });
  bus.emit({ type: 'host-end', stage, host: h, status: bad ? 'failed' : 'ok' });
}
await sleep(1500);
writeFileSync(mark, '');
while (!existsSync(`${mark}.go`)) await sleep(100);
bus.emit({ type: 'task-result', result: result(running!, 'ok') });
bus.emit({ type: 'host-end', stage, host: running!, status: 'ok' });
bus.emit({ type: 'stage-end', stage });
await live.flush();
live.off();
