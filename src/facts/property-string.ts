/**
 * Proxmox property strings (`host=0000:01:00,pcie=1`, a default key allowed first), as
 * pve-common `PVE::JSONSchema::parse_property_string` reads them: used by guest configs
 * (`hostpciN`) and the cluster's PCI mappings (`map`).
 */

/**
 * A Proxmox property string (`a=1,b=x`), with the value of a bare first item under `defaultKey`
 * (`0000:01:00,pcie=1` → `{host: '0000:01:00', pcie: '1'}`).
 */
export function parsePropertyString(value: string, defaultKey?: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(',')) {
    if (part === '') continue;
    const i = part.indexOf('=');
    if (i < 0) {
      if (defaultKey && out[defaultKey] === undefined) out[defaultKey] = part;
      else out[part] = '1';
    } else out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

/** The reverse: the default key first (bare), then the others in the given order. */
export function printPropertyString(props: Record<string, string | number | boolean | undefined>, defaultKey?: string): string {
  const parts: string[] = [];
  if (defaultKey && props[defaultKey] !== undefined) parts.push(String(props[defaultKey]));
  for (const [k, v] of Object.entries(props)) {
    if (k === defaultKey || v === undefined) continue;
    parts.push(`${k}=${typeof v === 'boolean' ? (v ? 1 : 0) : v}`);
  }
  return parts.join(',');
}
