/**
 * Extra variables (`-e`), the highest layer of variables: `key=value` pairs, `@file.yaml`, or an
 * inline map, each value with the position it was given at.
 */
import { resolve } from 'node:path';
import { parse as parseYamlValue } from 'yaml';
import type { Pos, Vars } from '../model/types.ts';
import { ConfigError } from '../model/errors.ts';
import { copyPositions, positionsOf, setPositions } from './positions.ts';
import { VAR_NAME } from './tasks.ts';
import { Errors, getVars, parseYaml, readTextBounded } from './yaml.ts';

/** Split `a=1 b='two words'` at unquoted whitespace, removing the quotes. */
function shellWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote = '';
  let any = false;
  for (const c of s) {
    if (quote) {
      if (c === quote) quote = '';
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      any = true;
    } else if (/\s/.test(c)) {
      if (cur || any) out.push(cur);
      cur = '';
      any = false;
    } else cur += c;
  }
  if (cur || any) out.push(cur);
  return out;
}

function scalar(text: string): unknown {
  if (text === '') return '';
  try {
    const v: unknown = parseYamlValue(text);
    return v === null || typeof v === 'number' || typeof v === 'boolean' ? v : text;
  } catch {
    return text;
  }
}

/**
 * Extra variables (`-e`): `key=value` (the value read as a YAML scalar: numbers, booleans;
 * several pairs may share one item, shell-quoted), `@file.yaml` (a map), or an inline map
 * `{"a": 1}`. Later items win.
 */
export function loadExtraVars(items: string[], cwd: string): Vars {
  const out: Vars = {};
  const positions = new Map<string, Pos>();
  const take = (vars: Vars | undefined, item?: number): void => {
    if (!vars) return;
    let from = positionsOf(vars);
    // an inline map's positions: `-e:N:C`, the Nth -e option, column C
    if (item !== undefined) from = new Map([...from].map(([k, p]) => [k, { file: '-e', line: item + 1, col: p.col }]));
    for (const [k, v] of Object.entries(vars)) {
      out[k] = v;
      copyPositions(from, positions, k);
    }
  };
  const errs = new Errors();
  for (const [n, item] of items.entries()) {
    const t = item.trim();
    if (t.startsWith('@')) {
      const file = resolve(cwd, t.slice(1));
      let text: string;
      try {
        text = readTextBounded(file);
      } catch (e) {
        if (e instanceof ConfigError) {
          errs.push(e);
          continue;
        }
        errs.add(`cannot read extra vars file ${t.slice(1)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, undefined, 'the path is relative to the current directory');
        continue;
      }
      try {
        const yf = parseYaml(text, t.slice(1));
        take(getVars(yf, yf.root, errs, `extra vars file ${t.slice(1)}`));
      } catch (e) {
        errs.push(e);
      }
    } else if (t.startsWith('{')) {
      try {
        const yf = parseYaml(t, '-e');
        take(getVars(yf, yf.root, errs, 'extra vars'), n);
      } catch (e) {
        errs.push(e);
      }
    } else {
      for (const word of shellWords(t)) {
        const eq = word.indexOf('=');
        const key = eq > 0 ? word.slice(0, eq) : '';
        if (!VAR_NAME.test(key)) {
          errs.add(`extra var '${word}' is not key=value`, undefined, 'use -e name=value, -e @vars.yaml or -e \'{"name": "value"}\'');
          continue;
        }
        out[key] = scalar(word.slice(eq + 1));
        // `-e:N:C`: the Nth -e option, column C
        copyPositions(new Map(), positions, key);
        positions.set(key, { file: '-e', line: n + 1, col: Math.max(1, t.indexOf(word) + 1) });
      }
    }
  }
  errs.throwIfAny();
  setPositions(out, positions);
  return out;
}
