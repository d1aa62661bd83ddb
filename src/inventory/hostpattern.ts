/**
 * Host entries of an inventory as Ansible reads them (ansible.parsing.utils.addresses and
 * ansible.plugins.inventory.expand_hostname_range):
 *
 * - `name:port`, `10.0.0.1:2222`, `[2001:db8::1]:2222` carry a port (set as ansible_port);
 * - `pve[01:03]` is pve01, pve02, pve03 (zero padded like the start), `node[a:c]` is nodea..nodec,
 *   `web[1:10:2]` takes every second, and several ranges in one name multiply out.
 */

export class HostPatternError extends Error {}

const numericRange = String.raw`\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const hexRange = String.raw`\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]`;
const alnumRange = String.raw`\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const ipv6c = String.raw`(?:[0-9a-f]{1,4}|${hexRange})`;
const ipv4c = String.raw`(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${numericRange})`;
const label = String.raw`(?:[\p{L}\p{N}_]|${alnumRange})(?:[\p{L}\p{N}_-]|${alnumRange})*(?<![_-])`;

const BRACKETED_HOSTPORT = /^\[(.+)\]:([0-9]+)$/;
const HOSTPORT = /^((?:[^:[\]]|\[[^\]]*\])*):([0-9]+)$/;
const IPV4 = new RegExp(String.raw`^(?:${ipv4c}\.){3}${ipv4c}$`, 'i');
const c = ipv6c;
const IPV6 = new RegExp(
  '^(?:' +
    [
      `(?:${c}:){7}${c}`,
      `(?:${c}:){1,6}:`,
      `(?:${c}:)(?::${c}){1,6}`,
      `(?:${c}:){2}(?::${c}){1,5}`,
      `(?:${c}:){3}(?::${c}){1,4}`,
      `(?:${c}:){4}(?::${c}){1,3}`,
      `(?:${c}:){5}(?::${c}){1,2}`,
      `(?:${c}:){6}(?::${c})`,
      `:(?::${c}){1,6}`,
      `${c}?::`,
      `(?:0:){6}(?:${c}\\.){3}${c}`,
      `::(?:ffff:)?(?:${c}\\.){3}${c}`,
      `(?:0:){5}ffff:(?:${c}\\.){3}${c}`,
    ].join('|') +
    ')$',
  'i',
);
const HOSTNAME = new RegExp(String.raw`^${label}(?:\.${label})*$`, 'iu');

/** parse_address(address, allow_ranges=True): the host part and the port, or undefined when not an address. */
export function parseAddress(address: string): { host: string; port?: number } | undefined {
  let rest = address;
  let port: number | undefined;
  for (const re of [BRACKETED_HOSTPORT, HOSTPORT]) {
    const m = re.exec(rest);
    if (m) {
      rest = m[1]!;
      port = Number(m[2]);
    }
  }
  // Python's `$` also matches before a final newline; names never hold one, so plain `$` is used.
  if (IPV4.test(rest) || IPV6.test(rest) || HOSTNAME.test(rest)) return { host: rest, port };
  return undefined;
}

const ASCII_LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** expand_hostname_range: every name a `[a:b(:step)]` pattern stands for, in order. */
export function expandHostnameRange(line: string): string[] {
  const open = line.indexOf('[');
  if (open < 0) return [line];
  // Python: line.replace('[', '|', 1).replace(']', '|', 1).split('|') must give three parts
  const parts = line.replace('[', '|').replace(']', '|').split('|');
  if (parts.length !== 3) throw new HostPatternError(`'${line}': a host range is written [begin:end] or [begin:end:step]`);
  const [head, nrange, tail] = parts as [string, string, string];
  const bounds = nrange.split(':');
  if (bounds.length !== 2 && bounds.length !== 3) throw new HostPatternError('host range must be begin:end or begin:end:step');
  let beg = bounds[0]!;
  const end = bounds[1]!;
  const stepText = bounds.length === 3 ? bounds[2]! : '1';
  if (!beg) beg = '0';
  if (!end) throw new HostPatternError('host range must specify end value');
  let fill = (x: string | number): string => String(x);
  if (beg[0] === '0' && beg.length > 1) {
    const rlen = beg.length;
    if (rlen !== end.length) throw new HostPatternError('host range must specify equal-length begin and end formats');
    fill = (x) => String(x).padStart(rlen, '0');
  }
  const step = pyInt(stepText);
  if (step === 0) throw new HostPatternError('host range step must not be 0');
  let seq: (string | number)[];
  const ib = beg.length === 1 ? ASCII_LETTERS.indexOf(beg) : -1;
  const ie = end.length === 1 ? ASCII_LETTERS.indexOf(end) : -1;
  if (ib >= 0 && ie >= 0) {
    if (ib > ie) throw new HostPatternError('host range must have begin <= end');
    seq = [];
    if (step > 0) for (let i = ib; i <= ie; i += step) seq.push(ASCII_LETTERS[i]!);
  } else {
    const b = pyInt(beg);
    const e = pyInt(end);
    seq = [];
    if (step > 0) for (let i = b; i <= e; i += step) seq.push(i);
    else for (let i = b; i > e + 1; i += step) seq.push(i);
    if (seq.length > 100000) throw new HostPatternError('host range expands to more than 100000 names');
  }
  const out: string[] = [];
  for (const r of seq) {
    const name = head + fill(r) + tail;
    if (name.includes('[')) out.push(...expandHostnameRange(name));
    else out.push(name);
    if (out.length > 100000) throw new HostPatternError('host range expands to more than 100000 names');
  }
  return out;
}

function pyInt(s: string): number {
  const t = s.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new HostPatternError(`invalid number '${s}' in a host range`);
  return Number(t);
}

/**
 * `_expand_hostpattern`: the host names and the port of one inventory host entry. A name that
 * is not an address keeps its text (and still expands its ranges), as in Ansible.
 */
export function expandHostPattern(pattern: string): { names: string[]; port?: number } {
  const a = parseAddress(pattern);
  const host = a ? a.host : pattern;
  const names = host.includes('[') ? expandHostnameRange(host) : [host];
  return { names, port: a?.port };
}
