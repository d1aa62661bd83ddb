import test from 'ava';
import { ansibleBool, yamlBool } from '../../src/model/truth.ts';
import { compareVersions, kernelAtLeast, kernelVersion } from '../../src/model/version.ts';

test('yamlBool: the YAML 1.1 words in any case, undefined for anything else', (t) => {
  for (const w of ['yes', 'Yes', 'ON', 'true', 'True']) t.true(yamlBool(w), w);
  for (const w of ['no', 'NO', 'off', 'false', 'False']) t.false(yamlBool(w), w);
  for (const w of ['y', '1', 't', '', ' yes', 'ys', 'enabled']) t.is(yamlBool(w), undefined, JSON.stringify(w));
});

test('ansibleBool: the bool filter is lenient (y, t, 1 are true; anything unknown is false)', (t) => {
  for (const v of ['yes', 'On', '1', 'TRUE', 'y', 't', ' yes ', 1, true]) t.true(ansibleBool(v), JSON.stringify(v));
  for (const v of ['no', 'off', '0', 'false', 'n', '', 'maybe', 0, 2, false, null, undefined, []]) t.false(ansibleBool(v), JSON.stringify(v));
});

test('compareVersions: numeric pieces as numbers, a missing piece is 0', (t) => {
  t.true(compareVersions('5.15.0-1', '6.1') < 0);
  t.true(compareVersions('6.10', '6.9') > 0);
  t.is(compareVersions('6.1', '6.1.0'), 0);
  t.true(compareVersions('8.2.4', '8.2.10') < 0);
  t.true(compareVersions('1.0b', '1.0a') > 0);
});

test('kernelVersion and kernelAtLeast: a release is reduced to its numeric core', (t) => {
  t.is(kernelVersion('6.8.12-4-pve'), '6.8.12');
  t.is(kernelVersion('6.1.0-28-amd64'), '6.1.0');
  t.is(kernelVersion('garbage'), '');
  t.true(kernelAtLeast('6.8.12-4-pve', '6.8.0'));
  t.true(kernelAtLeast('6.8.0-1-pve', '6.8'));
  t.false(kernelAtLeast('6.5.13-6-pve', '6.8.0'));
  t.false(kernelAtLeast('5.15.158-2-pve', '6.2.0'));
  t.true(kernelAtLeast('6.2', '6.2.0'));
  t.false(kernelAtLeast('', '6.2.0'));
});
