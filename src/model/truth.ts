/**
 * The words that mean true and false. Two truth tables exist on purpose:
 *
 * - `yamlBool`: YAML 1.1's boolean words (yes/no, on/off, true/false, in any case). This is how
 *   Ansible's YAML reads an unquoted `on`, and the only words passthru accepts where a setting
 *   must be true or false: anything else is `undefined`, so the caller reports an error instead
 *   of quietly taking a typo (`ys`) for false.
 * - `ansibleBool`: Ansible's `bool` filter (`boolean(value, strict=False)`): yes/on/1/true/y/t
 *   in any case (surrounding spaces ignored) and the number 1 are true, everything else is
 *   false. Lenient by design: a template asks "is this set?", not "is this well formed?".
 */

const YAML_TRUE = new Set(['yes', 'on', 'true']);
const YAML_FALSE = new Set(['no', 'off', 'false']);

/** YAML 1.1's reading of a boolean word, any case: true, false, or undefined for any other text. */
export function yamlBool(text: string): boolean | undefined {
  const s = text.toLowerCase();
  if (YAML_TRUE.has(s)) return true;
  if (YAML_FALSE.has(s)) return false;
  return undefined;
}

const ANSIBLE_TRUE = new Set(['yes', 'on', '1', 'true', 'y', 't']);

/** Ansible's `bool` filter: never fails, anything not recognised as true is false. */
export function ansibleBool(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v === 1;
  if (typeof v === 'string') return ANSIBLE_TRUE.has(v.trim().toLowerCase());
  return false;
}
