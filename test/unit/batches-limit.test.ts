import test from 'ava';
import { forEachLimit } from '../../src/engine/limit.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('forEachLimit: never more than `limit` in flight, all items done', async (t) => {
  let inFlight = 0;
  let maxSeen = 0;
  const done: number[] = [];
  const items = Array.from({ length: 20 }, (_, i) => i);
  await forEachLimit(items, 3, async (i) => {
    inFlight++;
    maxSeen = Math.max(maxSeen, inFlight);
    await sleep(5 + (i % 4) * 3);
    inFlight--;
    done.push(i);
  });
  t.is(maxSeen, 3);
  t.deepEqual(done.slice().sort((a, b) => a - b), items);
});

test('forEachLimit: limit larger than items and limit 1', async (t) => {
  let max = 0;
  let cur = 0;
  const f = async () => {
    cur++;
    max = Math.max(max, cur);
    await sleep(5);
    cur--;
  };
  await forEachLimit([1, 2, 3], 10, f);
  t.is(max, 3);
  max = 0;
  await forEachLimit([1, 2, 3], 1, f);
  t.is(max, 1);
  await forEachLimit([], 2, f);
});

test('forEachLimit: abort stops starting new items and waits for running ones', async (t) => {
  const ac = new AbortController();
  const started: number[] = [];
  const finished: number[] = [];
  const items = Array.from({ length: 10 }, (_, i) => i);
  await forEachLimit(
    items,
    2,
    async (i) => {
      started.push(i);
      if (i === 2) ac.abort();
      await sleep(20);
      finished.push(i);
    },
    ac.signal,
  );
  t.deepEqual(started, [0, 1, 2], "nothing starts after the abort");
  t.deepEqual(finished.slice().sort(), started, 'every started item finished before returning');
});

test('forEachLimit: an error stops new work, waits, and is rethrown', async (t) => {
  const started: number[] = [];
  let running = 0;
  const p = forEachLimit([0, 1, 2, 3, 4, 5], 2, async (i) => {
    started.push(i);
    running++;
    await sleep(i === 1 ? 5 : 20);
    running--;
    if (i === 1) throw new Error('boom');
  });
  await t.throwsAsync(p, { message: 'boom' });
  t.is(running, 0);
  t.deepEqual(started, [0, 1]);
});
