import test from 'ava';
import { pollUntil } from '../../src/engine/poll.ts';

test('pollUntil: returns the first value an attempt gives, after pausing between attempts', async (t) => {
  let calls = 0;
  let waits = 0;
  const t0 = Date.now();
  const r = await pollUntil(async () => (++calls === 3 ? 'ready' : undefined), {
    deadline: Date.now() + 5000,
    intervalMs: 20,
    onWait: () => waits++,
  });
  t.deepEqual(r, { status: 'done', value: 'ready' });
  t.is(calls, 3);
  t.is(waits, 1, 'onWait once, not per attempt');
  t.true(Date.now() - t0 >= 35, 'two pauses of about 20 ms');
});

test('pollUntil: a first attempt that succeeds returns at once, without onWait', async (t) => {
  let waited = false;
  const r = await pollUntil(async () => 0, { deadline: 0, intervalMs: 1000, onWait: () => (waited = true) });
  t.deepEqual(r, { status: 'done', value: 0 }, 'falsy values other than undefined count');
  t.false(waited);
});

test('pollUntil: past the deadline → timeout; the last pause ends at the deadline', async (t) => {
  let calls = 0;
  const t0 = Date.now();
  const r = await pollUntil(async () => void calls++, { deadline: t0 + 120, intervalMs: 50 });
  const took = Date.now() - t0;
  t.deepEqual(r, { status: 'timeout' });
  t.true(calls >= 2 && calls <= 5, `${calls} attempts`);
  t.true(took >= 115 && took < 2000, `took ${took} ms`);
});

test('pollUntil: a deadline already past still makes one attempt', async (t) => {
  let calls = 0;
  t.deepEqual(await pollUntil(async () => void calls++, { deadline: 0, intervalMs: 10 }), { status: 'timeout' });
  t.is(calls, 1);
});

test('pollUntil: the clock is injectable', async (t) => {
  let clock = 0;
  const r = await pollUntil(
    async () => {
      clock += 100;
      return undefined;
    },
    { deadline: 250, intervalMs: 1, now: () => clock },
  );
  t.deepEqual(r, { status: 'timeout' });
  t.is(clock, 300);
});

test('pollUntil: an abort cuts the pause short and ends with aborted (the deadline is checked first)', async (t) => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 30);
  const t0 = Date.now();
  let calls = 0;
  const r = await pollUntil(async () => void calls++, { deadline: t0 + 10_000, intervalMs: 5000, signal: ac.signal });
  t.deepEqual(r, { status: 'aborted' });
  t.true(Date.now() - t0 < 1000, 'did not sleep the whole interval');
  t.is(calls, 2, 'one attempt after waking');

  const done = new AbortController();
  done.abort();
  t.deepEqual(await pollUntil(async () => undefined, { deadline: 0, intervalMs: 10, signal: done.signal }), { status: 'timeout' });
  t.deepEqual(await pollUntil(async () => 'x', { deadline: Date.now() + 1000, intervalMs: 10, signal: done.signal }), {
    status: 'done',
    value: 'x',
  });
});

test('pollUntil: an attempt that throws ends the poll with its error', async (t) => {
  await t.throwsAsync(
    pollUntil(async () => {
      throw new Error('no route');
    }, { deadline: Date.now() + 1000, intervalMs: 10 }),
    { message: 'no route' },
  );
});
