import type { Pos } from './types.ts';

/**
 * A hint at the fix, or a function that makes it: a "did you mean" search over every known name
 * costs more than the error, and errors raised while trying (rendering templates before the facts
 * are known) are mostly dropped unread.
 */
export type Hint = string | (() => string | undefined);

/**
 * Invalid input: malformed YAML, unknown keys, modules, roles or variables, a pattern that
 * matches nothing. Always carries the place and, where one exists, a hint at the fix.
 * Raised before any host is contacted; the CLI exits with EXIT.invalidInput.
 */
export class ConfigError extends Error {
  #hint: Hint | undefined;
  constructor(
    message: string,
    readonly pos?: Pos,
    hint?: Hint,
  ) {
    super(message);
    this.name = 'ConfigError';
    this.#hint = hint;
  }

  /** The hint at the fix; one given as a function is worked out when first read. */
  get hint(): string | undefined {
    return typeof this.#hint === 'function' ? (this.#hint = this.#hint()) : this.#hint;
  }

  /** `file:line:col: message` then `  hint: ...` on its own line. */
  format(): string {
    const where = this.pos ? `${this.pos.file}:${this.pos.line}:${this.pos.col}: ` : '';
    return `${where}${this.message}${this.hint ? `\n  hint: ${this.hint}` : ''}`;
  }
}

/**
 * Runs `fn` with no stack traces captured for the errors it raises: for code that tries (renders
 * every task's arguments before the facts are known) and drops its errors unread. Capturing the
 * stack is most of what an error costs, and there are hundreds per host. Synchronous only: the
 * limit is put back before anything else runs.
 */
export function withoutStacks<T>(fn: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Several config errors found in one load; all are reported, not just the first. */
export class ConfigErrors extends Error {
  constructor(readonly errors: ConfigError[]) {
    super(errors.map((e) => e.format()).join('\n'));
    this.name = 'ConfigErrors';
  }
}

/** A failure on a host while running: names host and task, and says what to do next. */
export class RunError extends Error {
  constructor(
    message: string,
    readonly host: string,
    readonly where: { stage?: string; role?: string; task?: string } = {},
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'RunError';
  }
}

/** The host cannot be reached (connect, auth, host key, dropped connection). */
export class UnreachableError extends Error {
  constructor(
    message: string,
    readonly host: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UnreachableError';
  }
}

/** Closest known name by edit distance, for "did you mean" hints; undefined when nothing is close. */
export function closest(name: string, known: Iterable<string>): string | undefined {
  const limit = Math.max(2, Math.floor(name.length / 3));
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    // The distance is at least the difference in length: names that far off are never close.
    if (Math.abs(k.length - name.length) > Math.min(limit, bestD)) continue;
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== undefined && bestD <= limit ? best : undefined;
}

export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/**
 * A "did you mean" suggestion: the closest name by edit distance, else a known name that
 * starts with the given one (or the reverse), e.g. `accept` → `accept-new`.
 */
export function suggest(name: string, known: Iterable<string>): string | undefined {
  const list = [...known];
  const near = closest(name, list);
  if (near) return near;
  const n = name.toLowerCase();
  if (n.length < 3) return undefined;
  return list.find((k) => k.toLowerCase().startsWith(n)) ?? list.find((k) => n.startsWith(k.toLowerCase()) && k.length >= 4)
    ?? list.find((k) => k.length >= 5 && n.slice(0, 5) === k.toLowerCase().slice(0, 5));
}
