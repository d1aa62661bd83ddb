/**
 * `passthru modules`: each module with its arguments and their rules, written from the same
 * specs the checker and the editor schemas use.
 */
import type { Module } from './contract.ts';
import type { ArgumentSpec, OptionSpec } from '../spec/types.ts';

/** The spec's types in the words a reader expects (`str` is a string, `dict` a map, `raw` any value). */
const TYPE_WORD: Record<string, string> = { str: 'string', dict: 'map', raw: 'any' };
const word = (t: string): string => TYPE_WORD[t] ?? t;

function typeText(o: OptionSpec): string {
  return o.type === 'list' && o.elements ? `list of ${word(o.elements)}` : word(o.type);
}

/** The cross-argument rules of a spec, one line each. */
export function ruleLines(spec: ArgumentSpec): string[] {
  const out: string[] = [];
  for (const g of spec.mutually_exclusive ?? []) out.push(`at most one of: ${g.join(', ')}`);
  for (const g of spec.required_together ?? []) out.push(`all or none of: ${g.join(', ')}`);
  for (const g of spec.required_one_of ?? []) out.push(`at least one of: ${g.join(', ')}`);
  for (const [k, v, reqs, any] of spec.required_if ?? []) out.push(`${k}: ${String(v)} needs ${reqs.join(any ? ' or ' : ' and ')}`);
  return out;
}

export function moduleText(m: Module<any>): string {
  const lines = [`${m.name}${m.readOnly ? ' (read-only)' : ''}`, `  ${m.doc.split('\n')[0]}`];
  for (const [k, o] of Object.entries(m.spec.options)) {
    const extra = [
      o.required ? ' (required)' : '',
      o.default !== undefined ? ` = ${JSON.stringify(o.default)}` : '',
      o.choices ? ` [${o.choices.map(String).join('|')}]` : '',
      o.aliases?.length ? ` (aliases: ${o.aliases.filter((a) => !a.startsWith('_')).join(', ')})` : '',
    ].join('');
    lines.push(`    ${k}: ${typeText(o)}${extra}  ${o.description}`);
  }
  for (const r of ruleLines(m.spec)) lines.push(`    rule: ${r}`);
  return `${lines.join('\n')}\n`;
}
