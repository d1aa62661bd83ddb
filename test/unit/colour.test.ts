import test from 'ava';
import { colorEnabled, paint } from '../../src/report/colour.ts';

test('paint: ANSI codes only when colouring, and only for a colour of the table', (t) => {
  t.is(paint({ color: true }, 'red', 'x'), '\x1b[31mx\x1b[0m');
  t.is(paint({ color: false }, 'red', 'x'), 'x');
  t.is(paint({ color: true }, 'no-such-colour', 'x'), 'x');
});

test('colorEnabled: --no-color, NO_COLOR and a non-terminal each switch colour off', (t) => {
  t.true(colorEnabled(undefined, true, {}));
  t.false(colorEnabled(false, true, {}));
  t.false(colorEnabled(undefined, true, { NO_COLOR: '1' }));
  t.false(colorEnabled(undefined, false, {}));
});
