/** Value semantics of the expression language: truthiness, equality, ordering, display. */
import type { Hint } from '../model/errors.ts';

/** Marks a variable or attribute that does not exist (only seen by `default`, `is defined`...). */
export const UNDEF: unique symbol = Symbol('undefined');

/** An evaluation error; run() in index.ts turns it into a placed TemplateError, hint as given (see Hint). */
export class ValueError extends Error {
  constructor(
    message: string,
    readonly hint?: Hint,
  ) {
    super(message);
  }
}

export function isMapValue(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof RegExp);
}

/** Python-like truthiness: false, null, 0, '', [] and {} are false. */
export function truthy(v: unknown): boolean {
  if (v === UNDEF || v === undefined || v === null || v === false) return false;
  if (typeof v === 'number') return v !== 0 && !Number.isNaN(v);
  if (typeof v === 'string') return v.length > 0;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Map || v instanceof Set) return v.size > 0;
  if (isMapValue(v)) return Object.keys(v).length > 0;
  return true;
}

/** Deep equality of plain data (1 == 1.0; '1' != 1). */
export function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isMapValue(a) && isMapValue(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => k in b && equal(a[k], b[k]));
  }
  return false;
}

export function typeName(v: unknown): string {
  if (v === null || v === undefined || v === UNDEF) return 'null';
  if (Array.isArray(v)) return 'list';
  if (isMapValue(v)) return 'map';
  return typeof v;
}

/** Order two values: numbers with numbers, strings with strings, lists element-wise. */
export function compare(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = compare(a[i], b[i]);
      if (c) return c;
    }
    return a.length - b.length;
  }
  throw new ValueError(`cannot compare ${typeName(a)} with ${typeName(b)}`, 'convert one side with | int or | string');
}

/** How a value appears inside text: strings as is, null as '', booleans as true/false, lists and maps as JSON. */
export function stringify(v: unknown): string {
  if (v === null || v === undefined || v === UNDEF) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}
