/**
 * A small JSON Schema (2020-12) validator: the keywords the schemas in schemas/ use (type, enum,
 * pattern, min/maxLength, minimum/maximum, maxItems, items, properties, additionalProperties,
 * required, anyOf, oneOf, allOf, local $ref). An unknown keyword fails loudly, so the schemas
 * cannot grow a keyword this validator silently ignores.
 */
type Schema = Record<string, unknown> | boolean;

const KNOWN = new Set([
  '$schema', 'title', 'description', 'default', '$defs', '$ref', 'type', 'enum', 'pattern', 'minLength', 'maxLength',
  'minimum', 'maximum', 'maxItems', 'items', 'properties', 'additionalProperties', 'required', 'anyOf', 'oneOf', 'allOf',
]);

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case 'null':
      return v === null;
    case 'boolean':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'array':
      return Array.isArray(v);
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);
    default:
      throw new Error(`unknown type ${t}`);
  }
}

/** Every way `v` fails `schema` (empty: valid), each as `path: problem`. */
export function validate(root: Schema, v: unknown, schema: Schema = root, path = '$'): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: not allowed`];
  for (const k of Object.keys(schema)) if (!KNOWN.has(k)) throw new Error(`schema keyword ${k} is not supported (at ${path})`);
  const out: string[] = [];
  const s = schema;
  if (typeof s.$ref === 'string') {
    const m = /^#\/\$defs\/(.+)$/.exec(s.$ref);
    if (!m || typeof root !== 'object') throw new Error(`unsupported $ref ${s.$ref}`);
    out.push(...validate(root, v, (root.$defs as Record<string, Schema>)[m[1]!]!, path));
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => typeOk(t, v))) return [...out, `${path}: expected ${types.join(' or ')}, found ${JSON.stringify(v)?.slice(0, 60)}`];
  }
  if (s.enum && !(s.enum as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(v))) out.push(`${path}: ${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
  if (typeof v === 'string') {
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) out.push(`${path}: ${JSON.stringify(v)} does not match ${s.pattern}`);
    if (typeof s.maxLength === 'number' && [...v].length > s.maxLength) out.push(`${path}: longer than ${s.maxLength}`);
    if (typeof s.minLength === 'number' && [...v].length < s.minLength) out.push(`${path}: shorter than ${s.minLength}`);
  }
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) out.push(`${path}: below ${s.minimum}`);
    if (typeof s.maximum === 'number' && v > s.maximum) out.push(`${path}: above ${s.maximum}`);
  }
  if (Array.isArray(v)) {
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) out.push(`${path}: more than ${s.maxItems} items`);
    if (s.items !== undefined) v.forEach((x, i) => out.push(...validate(root, x, s.items as Schema, `${path}[${i}]`)));
  }
  if (typeOk('object', v)) {
    const o = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const [k, x] of Object.entries(o)) {
      if (k in props) out.push(...validate(root, x, props[k]!, `${path}.${k}`));
      else if (s.additionalProperties !== undefined) out.push(...validate(root, x, s.additionalProperties as Schema, `${path}.${k}`).map((e) => (s.additionalProperties === false ? `${path}: unknown key ${k}` : e)));
    }
    for (const r of (s.required ?? []) as string[]) if (!(r in o)) out.push(`${path}: needs ${r}`);
  }
  if (s.allOf) for (const x of s.allOf as Schema[]) out.push(...validate(root, v, x, path));
  if (s.anyOf) {
    const fails = (s.anyOf as Schema[]).map((x) => validate(root, v, x, path));
    if (!fails.some((f) => f.length === 0)) out.push(`${path}: matches none of ${fails.length} alternatives (${fails.map((f) => f[0]).join(' | ')})`);
  }
  if (s.oneOf) {
    const n = (s.oneOf as Schema[]).filter((x) => validate(root, v, x, path).length === 0).length;
    if (n !== 1) out.push(`${path}: matches ${n} of the oneOf alternatives, not exactly one`);
  }
  return out;
}
