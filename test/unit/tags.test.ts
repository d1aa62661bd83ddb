import test from 'ava';
import { knownTags, taskSelected, unknownTags } from '../../src/load/tags.ts';
import type { Playbook, Task } from '../../src/model/types.ts';

const sel = (tags?: string[], skipTags?: string[]) => ({ tags, skipTags });

// task tag sets used across the matrix
const T = {
  none: [] as string[],
  a: ['a'],
  ab: ['a', 'b'],
  always: ['always'],
  alwaysA: ['always', 'a'],
  never: ['never'],
  neverDebug: ['never', 'debug'],
};

// [selection, expected for each of none, a, ab, always, alwaysA, never, neverDebug]
const matrix: Array<[string, ReturnType<typeof sel>, boolean[]]> = [
  ['no selection: all but never', sel(), [true, true, true, true, true, false, false]],
  ['--tags all', sel(['all']), [true, true, true, true, true, false, false]],
  ['--tags a', sel(['a']), [false, true, true, true, true, false, false]],
  ['--tags b', sel(['b']), [false, false, true, true, true, false, false]],
  ['--tags debug (asks a never task by its other tag)', sel(['debug']), [false, false, false, true, true, false, true]],
  ['--tags never', sel(['never']), [false, false, false, true, true, true, true]],
  ['--tags all,debug', sel(['all', 'debug']), [true, true, true, true, true, false, true]],
  ['--tags tagged', sel(['tagged']), [false, true, true, true, true, false, false]],
  ['--tags untagged', sel(['untagged']), [true, false, false, true, true, false, false]],
  ['--skip-tags a', sel(undefined, ['a']), [true, false, false, true, false, false, false]],
  ['--skip-tags always', sel(undefined, ['always']), [true, true, true, false, false, false, false]],
  ['--tags a --skip-tags b (skip wins)', sel(['a'], ['b']), [false, true, false, true, true, false, false]],
  ['--tags a --skip-tags a', sel(['a'], ['a']), [false, false, false, true, false, false, false]],
  ['--skip-tags all (always survives)', sel(undefined, ['all']), [false, false, false, true, true, false, false]],
  ['--skip-tags all,always', sel(undefined, ['all', 'always']), [false, false, false, false, false, false, false]],
  ['--skip-tags tagged', sel(undefined, ['tagged']), [true, false, false, false, false, false, false]],
  ['--skip-tags untagged', sel(undefined, ['untagged']), [false, true, true, true, true, false, false]],
  ['--tags debug --skip-tags never', sel(['debug'], ['never']), [false, false, false, true, true, false, false]],
  ['empty lists behave as no selection', sel([], []), [true, true, true, true, true, false, false]],
];

for (const [title, s, expected] of matrix) {
  test(`tags: ${title}`, (t) => {
    const got = Object.values(T).map((tags) => taskSelected(tags, s));
    t.deepEqual(
      Object.fromEntries(Object.keys(T).map((k, i) => [k, got[i]])),
      Object.fromEntries(Object.keys(T).map((k, i) => [k, expected[i]])),
    );
  });
}

const task = (tags: string[]): Task => ({ name: 't', module: 'm', args: {}, tags, notify: [], role: 'r', pos: { file: 'f', line: 1, col: 1 } });

test('known and unknown tags', (t) => {
  const pb: Playbook = {
    file: 'p.yaml',
    stages: [
      {
        name: 's',
        hosts: 'all',
        roles: [{ name: 'r', vars: {}, tags: ['kernel', 'r'], pos: { file: 'p', line: 1, col: 1 } }],
        vars: {},
        anyErrorsFatal: false,
        reboot: 'never',
        rebootTimeoutS: 600,
        guestPolicy: 'refuse',
        haMaintenance: false,
        maxDownPerCluster: 1,
        pos: { file: 'p', line: 1, col: 1 },
      },
    ],
    roles: new Map([['r', { name: 'r', dir: 'd', defaults: {}, tasks: [task(['vfio', 'always'])], handlers: [task(['h'])], gates: [task(['never', 'gate'])] }]]),
  };
  t.deepEqual(knownTags(pb), ['gate', 'h', 'kernel', 'r', 'vfio']);
  t.deepEqual(unknownTags(pb, ['vfio', 'all', 'never', 'tagged', 'vfoi', 'kernel', 'vfoi']), ['vfoi']);
});
