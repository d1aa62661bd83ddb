/**
 * YAML as Ansible reads it: PyYAML's YAML 1.1 resolver. Inventories, group_vars and host_vars
 * are read this way so that a value means what it means to Ansible: `on`, `yes`, `off` are
 * booleans, `0777` is octal (511), `1_000` is 1000, `12:30` is 750 (base 60), `1e3` is text
 * (a YAML 1.1 float needs a dot), `y` and `n` stay text, `~` and an empty value are null, a date
 * `2024-01-31` stays that text (Ansible prints dates as ISO text).
 *
 * The file is parsed with every plain scalar kept as text; this module then types each plain
 * scalar with PyYAML's regular expressions. Quoted and block scalars stay text. Tags: `!!str`,
 * `!!int`, `!!float`, `!!bool`, `!!null` are understood; Ansible's `!vault` (passthru does not
 * decrypt Ansible Vault) and `!unsafe` (passthru has no never-templated values) are refused with
 * a clear error.
 */
import { visit, type Scalar } from 'yaml';
import { loadYamlFile, type Errors, type YamlFile } from '../load/yaml.ts';
import { yamlBool } from '../model/truth.ts';

/** The spellings YAML 1.1 resolves as booleans (only these cases); their value is yamlBool's. */
const BOOL = /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/;
const FLOAT =
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
const INT = /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/;
const NULL = /^(?:~|null|Null|NULL|)$/;
const TIMESTAMP =
  /^(?:([0-9]{4})-([0-9]{2})-([0-9]{2})|([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]*))?(?:[ \t]*(Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$/;

class Unrepresentable extends Error {}

function sexagesimal(v: string): number {
  let n = 0;
  for (const part of v.split(':')) n = n * 60 + Number(part);
  return n;
}

function yamlInt(text: string): number {
  let v = text.replace(/_/g, '');
  let sign = 1;
  if (v[0] === '-') sign = -1;
  if (v[0] === '-' || v[0] === '+') v = v.slice(1);
  if (v === '0') return 0;
  if (v.startsWith('0b')) return sign * parseInt(v.slice(2), 2);
  if (v.startsWith('0x')) return sign * parseInt(v.slice(2), 16);
  if (v[0] === '0') return sign * parseInt(v, 8);
  if (v.includes(':')) return sign * sexagesimal(v);
  return sign * Number(v);
}

function yamlFloat(text: string): number {
  let v = text.replace(/_/g, '').toLowerCase();
  let sign = 1;
  if (v[0] === '-') sign = -1;
  if (v[0] === '-' || v[0] === '+') v = v.slice(1);
  if (v === '.inf' || v === '.nan') throw new Unrepresentable(`${text} (infinity or NaN) has no JSON form`);
  if (v.includes(':')) return sign * sexagesimal(v);
  return sign * Number(v);
}

/** Python's datetime.isoformat() of a YAML 1.1 timestamp (how ansible-inventory prints it). */
function timestamp(m: RegExpExecArray): string {
  if (m[1]) return m[0];
  const p2 = (s: string) => s.padStart(2, '0');
  let out = `${m[4]}-${p2(m[5]!)}-${p2(m[6]!)}T${p2(m[7]!)}:${m[8]}:${m[9]}`;
  if (m[10] && Number(m[10]) !== 0) out += '.' + m[10].slice(0, 6).padEnd(6, '0');
  const tz = m[11];
  if (tz) {
    if (tz === 'Z') out += '+00:00';
    else {
      const [h, mm] = tz.slice(1).split(':');
      out += `${tz[0]}${p2(h!)}:${mm ?? '00'}`;
    }
  }
  return out;
}

/** The value PyYAML gives a plain scalar. */
export function resolvePlain(text: string): unknown {
  if (BOOL.test(text)) return yamlBool(text) === true;
  if (FLOAT.test(text)) return yamlFloat(text);
  if (INT.test(text)) return yamlInt(text);
  if (NULL.test(text)) return null;
  const ts = TIMESTAMP.exec(text);
  if (ts) return timestamp(ts);
  return text;
}

function resolveTagged(node: Scalar, tag: string, yf: YamlFile, errs: Errors): void {
  const text = String(node.value);
  const t = tag.replace(/^tag:yaml\.org,2002:/, '!!');
  switch (t) {
    case '!!str':
      return;
    case '!unsafe':
      errs.add('!unsafe values are not supported', yf.pos(node), 'passthru cannot yet mark a value as never templated; remove the tag (and any {{ }} in the value)');
      return;
    case '!!int':
      if (INT.test(text)) node.value = yamlInt(text);
      else errs.add(`'${text}' is not an integer (tagged !!int)`, yf.pos(node));
      return;
    case '!!float':
      if (FLOAT.test(text) || INT.test(text)) node.value = FLOAT.test(text) ? yamlFloat(text) : yamlInt(text);
      else errs.add(`'${text}' is not a number (tagged !!float)`, yf.pos(node));
      return;
    case '!!bool':
      if (BOOL.test(text)) node.value = yamlBool(text) === true;
      else errs.add(`'${text}' is not a boolean (tagged !!bool)`, yf.pos(node));
      return;
    case '!!null':
      node.value = null;
      return;
    case '!vault':
      errs.add('an Ansible Vault value (!vault) cannot be read: passthru does not decrypt Vault', yf.pos(node), 'give the secret through an environment variable (become_password_env, passphrase_env) instead');
      return;
    default:
      errs.add(`unsupported YAML tag ${tag}`, yf.pos(node), 'remove the tag; plain values are typed as Ansible types them');
  }
}

/** Type the scalars of a file parsed with `yaml11` the way PyYAML (and so Ansible) does. */
export function resolveYaml11(yf: YamlFile, errs: Errors): void {
  visit(yf.doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string') return; // a merge key `<<`
      try {
        if (node.tag) resolveTagged(node, node.tag, yf, errs);
        else if (node.type === 'PLAIN') node.value = resolvePlain(node.value);
      } catch (e) {
        if (e instanceof Unrepresentable) errs.add(e.message, yf.pos(node));
        else throw e;
      }
    },
  });
}

/** Read a YAML file with Ansible's YAML 1.1 typing (syntax errors are thrown as ConfigErrors). */
export async function loadAnsibleYaml(path: string, errs: Errors): Promise<YamlFile> {
  const yf = await loadYamlFile(path, { yaml11: true });
  resolveYaml11(yf, errs);
  return yf;
}


