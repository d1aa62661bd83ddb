/**
 * The one argument-spec language of passthru, in Ansible's `argument_spec` shape: modules
 * declare their arguments with it (src/modules/*.ts) and roles their variables
 * (roles/<name>/argument_specs.yaml). It lives in src/spec/, apart from both src/modules/ and
 * src/load/, because the loader (at load, with positions), the engine (at run time, after
 * templating), the modules (their declarations), and the docs and schema generator all use it,
 * and none of them should have to import another to get it. This file imports nothing.
 *
 * An option: `type`, `elements` (a list's items), `choices`, `default`, `required`,
 * `description`, `aliases`, `options` (a dict's keys), plus passthru's `pattern` (a regular
 * expression the whole string must match; for a list, each element), `min`/`max` (numbers; for
 * strings and lists, their length), `secret` (never shown in a message) and `multiline` (a
 * string that may hold several lines, e.g. a file's content: no one-line rule and no default
 * length limit). A module's spec adds Ansible's cross-argument rules as data:
 * `mutually_exclusive`, `required_together`, `required_one_of`, `required_if`.
 */

export const TYPES = ['str', 'int', 'float', 'bool', 'list', 'dict', 'path', 'raw'] as const;
export type OptionType = (typeof TYPES)[number];

export interface OptionSpec {
  type: OptionType;
  description: string;
  default?: unknown;
  required?: boolean;
  /** Type of each element of a list. */
  elements?: OptionType;
  choices?: readonly unknown[];
  /** A regular expression the whole string (each string element of a list) must match. */
  pattern?: string;
  /** Numbers: the range. Strings and lists: the length range. */
  min?: number;
  max?: number;
  /** The keys of a dict (for a list of dicts: of each element). */
  options?: Readonly<Record<string, OptionSpec>>;
  /** Other accepted names (Ansible's spellings). */
  aliases?: readonly string[];
  /** Never shown in a message. */
  secret?: boolean;
  /** A string that may span lines (no one-line rule, no default length limit). */
  multiline?: boolean;
}

/**
 * `[option, value, requirements]`: when `option` is `value`, every requirement must be given;
 * with a fourth element `true`, one of them is enough (Ansible's `required_if`).
 */
export type RequiredIf = readonly [string, unknown, readonly string[]] | readonly [string, unknown, readonly string[], boolean];

/** A module's arguments: the options and the rules across them. */
export interface ArgumentSpec {
  options: Readonly<Record<string, OptionSpec>>;
  /** Each group: at most one of these may be given. */
  mutually_exclusive?: ReadonlyArray<readonly string[]>;
  /** Each group: all or none. */
  required_together?: ReadonlyArray<readonly string[]>;
  /** Each group: at least one. */
  required_one_of?: ReadonlyArray<readonly string[]>;
  required_if?: readonly RequiredIf[];
}

/** Longest string any option accepts unless its `max` (or `multiline`) says otherwise. */
export const DEFAULT_MAX_STRING = 4096;
/** Longest list any option accepts unless its `max` says otherwise. */
export const DEFAULT_MAX_LIST = 1024;

// ---------------------------------------------------------------- the argument type of a spec

type Scalar<T extends OptionType | undefined, O> = T extends 'str' | 'path'
  ? string
  : T extends 'int' | 'float'
    ? number
    : T extends 'bool'
      ? boolean
      : T extends 'dict'
        ? O extends { options: infer P }
          ? InferOptions<P>
          : Record<string, unknown>
        : T extends 'list'
          ? unknown[]
          : unknown;

/** The value type of one option, as the checker hands it to a module (coerced, defaults applied). */
export type InferOption<O> = O extends { choices: readonly (infer C)[] }
  ? C
  : O extends { type: 'list'; elements: infer E extends OptionType }
    ? Array<Scalar<E, O>>
    : O extends { type: infer T extends OptionType }
      ? Scalar<T, O>
      : unknown;

type Given<O> = O extends { required: true } ? true : O extends { default: unknown } ? true : false;

type InferOptions<P> = { -readonly [K in keyof P as Given<P[K]> extends true ? K : never]: InferOption<P[K]> } & {
  -readonly [K in keyof P as Given<P[K]> extends true ? never : K]?: InferOption<P[K]>;
} extends infer X
  ? { [K in keyof X]: X[K] }
  : never;

/** The arguments a module's `plan()` receives, derived from its spec (declare the spec `as const`). */
export type InferArgs<S extends { options: unknown }> = InferOptions<S['options']>;
