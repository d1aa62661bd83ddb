/**
 * JSON Schemas (draft 2020-12) from argument specs: the editor schemas of playbooks, task files,
 * inventories and argument_specs files (scripts/gen-docs.ts writes them to schemas/) come from
 * the same specs the checker uses, so they cannot say something else.
 */
import type { ArgumentSpec, OptionSpec } from './types.ts';
import { DEFAULT_MAX_LIST, DEFAULT_MAX_STRING } from './types.ts';

export type JsonSchema = Record<string, unknown>;

/** The JSON Schema of one option. */
export function optionSchema(o: OptionSpec): JsonSchema {
  const s: JsonSchema = { description: o.description };
  if (o.default !== undefined) s.default = o.default;
  if (o.choices) return { ...s, enum: [...o.choices] };
  const strish = (p?: string) => ({
    type: 'string',
    ...(o.max !== undefined || !o.multiline ? { maxLength: o.max ?? DEFAULT_MAX_STRING } : {}),
    ...(o.min !== undefined ? { minLength: o.min } : {}),
    ...(p ? { pattern: p } : {}),
  });
  const nullable = (x: JsonSchema) => (o.default === null && !o.required ? { ...s, anyOf: [x, { type: 'null' }] } : { ...s, ...x });
  switch (o.type) {
    case 'str':
      return nullable(strish(o.pattern));
    case 'path':
      return nullable(strish(o.pattern ?? '^/[A-Za-z0-9._+@/-]+$'));
    case 'int':
      return nullable({ type: 'integer', ...(o.min !== undefined ? { minimum: o.min } : {}), ...(o.max !== undefined ? { maximum: o.max } : {}) });
    case 'float':
      return nullable({ type: 'number', ...(o.min !== undefined ? { minimum: o.min } : {}), ...(o.max !== undefined ? { maximum: o.max } : {}) });
    case 'bool':
      return nullable({ type: 'boolean' });
    case 'list': {
      const el = o.elements ? optionSchema({ type: o.elements, description: o.description, pattern: o.pattern, options: o.options, multiline: o.multiline }) : {};
      delete el.description;
      return { ...s, anyOf: [{ type: 'array', maxItems: o.max ?? DEFAULT_MAX_LIST, items: el }, { type: 'null' }] };
    }
    case 'dict': {
      const props: JsonSchema = {};
      for (const [k, sub] of Object.entries(o.options ?? {})) props[k] = optionSchema(sub);
      return { ...s, anyOf: [{ type: 'object', properties: props, additionalProperties: !o.options }, { type: 'null' }] };
    }
    default:
      return s;
  }
}

/** JSON Schema of a set of variables (e.g. every role's options merged). */
export function toJsonSchema(options: Readonly<Record<string, OptionSpec>>, title = 'passthru host variables'): JsonSchema {
  const properties: JsonSchema = {};
  for (const [k, o] of Object.entries(options)) properties[k] = optionSchema(o);
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', title, type: 'object', properties };
}

/** A template string (`"{{ x }}"`) stands for any value until it is rendered. */
export const TEMPLATE: JsonSchema = { type: 'string', pattern: '\\{[{%]' };

/**
 * The schema of a module's arguments as written in a task: each option (and its aliases) as
 * {@link optionSchema} describes it, loosened where the checker is lenient in `args` mode (a
 * scalar for a list, "yes"/"5" for a bool or a number, a number for a string, null for "not
 * given"), and any value may be a template. Cross-argument rules are left to the checker.
 */
export function moduleArgsSchema(spec: ArgumentSpec, doc: string): JsonSchema {
  const properties: JsonSchema = {};
  const required: string[] = [];
  for (const [name, o] of Object.entries(spec.options)) {
    const s = argSchema(o);
    for (const n of [name, ...(o.aliases ?? [])]) properties[n] = n === name ? s : { ...s, description: `Alias of ${name}. ${o.description}` };
    if (o.required) required.push(name);
  }
  const out: JsonSchema = { type: 'object', description: doc, properties, additionalProperties: false };
  // a required option may be written under an alias: one of its names must be there
  const req = Object.entries(spec.options).filter(([, o]) => o.required);
  if (req.length) out.allOf = req.map(([n, o]) => ({ anyOf: [n, ...(o.aliases ?? [])].map((a) => ({ required: [a] })) }));
  return out;
}

/** One option as written in YAML and checked in `args` mode (lenient scalars, templates, null). */
export function argSchema(o: OptionSpec): JsonSchema {
  const base: JsonSchema = { description: o.description, ...(o.default !== undefined ? { default: o.default } : {}) };
  const alt = (...xs: JsonSchema[]): JsonSchema => ({ ...base, anyOf: [...xs, TEMPLATE, { type: 'null' }] });
  if (o.choices) return alt({ enum: [...o.choices] });
  switch (o.type) {
    case 'str':
    case 'path':
      return alt({ type: ['string', 'number'] });
    case 'int':
      return alt({ type: 'integer' }, { type: 'string', pattern: '^\\s*-?\\d+\\s*$' });
    case 'float':
      return alt({ type: 'number' }, { type: 'string', pattern: '^\\s*-?\\d+(\\.\\d+)?\\s*$' });
    case 'bool':
      return alt({ type: 'boolean' }, { type: 'string', pattern: '^([Yy]es|[Nn]o|[Tt]rue|[Ff]alse|[Oo]n|[Oo]ff|YES|NO|TRUE|FALSE|ON|OFF)$' });
    case 'list': {
      const el = o.elements && o.elements !== 'raw' ? argSchema({ ...o, type: o.elements, elements: undefined, choices: undefined, default: undefined }) : {};
      delete el.description;
      delete el.default;
      return alt({ type: 'array', items: el }, { type: ['string', 'number', 'boolean'] });
    }
    case 'dict':
      return alt({ type: 'object', ...(o.options ? { properties: Object.fromEntries(Object.entries(o.options).map(([k, s]) => [k, argSchema(s)])) } : {}) });
    default:
      return { ...base };
  }
}

/**
 * Host variables as written in an inventory, stage or role reference: each described option
 * (as {@link optionSchema}, or a template), any other variable allowed.
 */
export function varsSchema(options: Readonly<Record<string, OptionSpec>>): JsonSchema {
  const properties: JsonSchema = {};
  for (const [k, o] of Object.entries(options)) {
    const s = optionSchema(o);
    const { description, default: dflt, ...rest } = s;
    properties[k] = { description, ...(dflt !== undefined ? { default: dflt } : {}), anyOf: [rest, TEMPLATE] };
  }
  return { type: 'object', properties };
}
