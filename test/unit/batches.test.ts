import test from 'ava';
import { planBatches, batchFailed, serialSize, policyStop } from '../../src/engine/batches.ts';

const hosts = (n: number): string[] => Array.from({ length: n }, (_, i) => `h${i + 1}`);
const sizes = (b: string[][]): number[] => b.map((x) => x.length);

test('no serial: one batch of all hosts', (t) => {
  t.deepEqual(planBatches(hosts(5)), [hosts(5)]);
  t.deepEqual(planBatches(hosts(5), []), [hosts(5)]);
  t.deepEqual(planBatches([], undefined), []);
});

const matrix: Array<[number, Array<number | string>, number[]]> = [
  [10, [1], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  [10, [3], [3, 3, 3, 1]],
  [10, [10], [10]],
  [10, [25], [10]], // too big: takes the rest
  [10, ['30%'], [3, 3, 3, 1]],
  [10, ['100%'], [10]],
  [10, ['150%'], [10]],
  [3, ['50%'], [1, 1, 1]], // floor(1.5) = 1
  [10, ['1%'], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]], // at least 1
  [10, ['12.5%'], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
  [10, [1, 5, '50%'], [1, 5, 4]], // last size (5) larger than the rest (4)
  [20, [1, 5, '50%'], [1, 5, 10, 4]], // last repeats
  [7, [1, 2], [1, 2, 2, 2]],
  [7, ['3'], [3, 3, 1]], // numeric string
  [2, [1, 5, 9], [1, 1]], // list longer than needed
];
for (const [n, serial, want] of matrix) {
  test(`planBatches(${n} hosts, ${JSON.stringify(serial)}) → ${JSON.stringify(want)}`, (t) => {
    const b = planBatches(hosts(n), serial);
    t.deepEqual(sizes(b), want);
    t.deepEqual(b.flat(), hosts(n), 'every host once, in order');
  });
}

for (const bad of [0, -1, 1.5, 'abc%', '0%', '-5%', 'abc', '', NaN] as Array<number | string>) {
  test(`planBatches rejects serial ${JSON.stringify(bad)}`, (t) => {
    const e = t.throws(() => planBatches(hosts(4), [bad]));
    t.regex(e!.message, /^serial: .*not a valid/);
  });
}

test('invalid serial is rejected even with no hosts, and anywhere in the list', (t) => {
  t.throws(() => planBatches([], [0]));
  t.throws(() => planBatches(hosts(4), [1, 'x%']));
});

test('serialSize is relative to the stage host count', (t) => {
  t.is(serialSize('30%', 10), 3);
  t.is(serialSize('30%', 100), 30);
  t.is(serialSize('30%', 1), 1);
});

test('batchFailed: max_fail_percentage exceeded aborts, equalled does not', (t) => {
  t.false(batchFailed(10, 2, 20)); // 20% = 20%
  t.true(batchFailed(10, 3, 20)); // 30% > 20%
  t.false(batchFailed(4, 1, 25));
  t.true(batchFailed(4, 2, 25));
  t.true(batchFailed(4, 1, 0)); // 0 → first failure stops
  t.false(batchFailed(4, 0, 0));
});

test('batchFailed: any_errors_fatal stops on any failure', (t) => {
  t.true(batchFailed(10, 1, undefined, true));
  t.true(batchFailed(10, 1, 50, true));
  t.false(batchFailed(10, 0, undefined, true));
});

test('batchFailed: no max → never on percentage, but a batch where all hosts failed stops', (t) => {
  t.false(batchFailed(10, 9));
  t.true(batchFailed(10, 10));
  t.true(batchFailed(1, 1));
  t.true(batchFailed(3, 3, 100)); // all failed stops even with 100%
  t.false(batchFailed(3, 2, 100));
  t.false(batchFailed(0, 0));
});

test('policyStop: only the policies the user set stop the run, with the reason', (t) => {
  t.is(policyStop(3, 3), null, 'all failed without a policy: the stage stops its batches, not the run');
  t.is(policyStop(4, 1, 25), null, 'equal is not exceeded');
  t.regex(policyStop(4, 2, 25) ?? '', /2 of 4 hosts failed, more than max_fail_percentage 25%/);
  t.regex(policyStop(10, 1, undefined, true) ?? '', /any_errors_fatal/);
  t.is(policyStop(5, 0, 0, true), null);
});
