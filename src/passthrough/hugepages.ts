/**
 * Hugepages: the reservation asked for (`hugepages: { size, count }`), whether it fits under
 * `hugepages_max_share` of MemTotal, and how it is made (2M at runtime by sysctl, 1G at boot by
 * kernel parameters).
 */
import type { Facts } from '../facts/types.ts';
import type { PassthroughVars, Problem } from './vars.ts';

export const DEFAULT_HUGEPAGES_MAX_SHARE = 0.75;

export interface HugepagesConfig {
  mode: 'off' | 'runtime' | 'boot';
  size: '2M' | '1G' | null;
  sizeKb: number;
  count: number;
  requestedKb: number;
  limitKb: number;
  share: number;
  /** Kernel parameters for boot-time reservation (1G). */
  cmdline: string[];
  problem: Problem | null;
}

/** The kernel parameters that reserve `count` 1G pages at boot (1G pages cannot be had at runtime). */
export const hugepages1gCmdline = (count: number): string[] => ['default_hugepagesz=1G', 'hugepagesz=1G', `hugepages=${count}`];

export function hugepagesConfig(facts: Facts, vars: PassthroughVars): HugepagesConfig {
  const hp = vars.hugepages ?? {};
  // a whole number or its digits; `true` is not 1
  const rawCount: unknown = hp.count ?? 0;
  const count = typeof rawCount === 'number' ? rawCount : typeof rawCount === 'string' && /^\s*\d{1,15}\s*$/.test(rawCount) ? Number(rawCount) : Number.NaN;
  const share = vars.hugepages_max_share === undefined ? DEFAULT_HUGEPAGES_MAX_SHARE : Number(vars.hugepages_max_share);
  const limitKb = Math.floor(facts.memory.totalKb * share);
  const rawSize = String(hp.size ?? '2M').trim().toUpperCase().replace(/B$/, '');
  const size = rawSize === '2M' || rawSize === '2048K' ? '2M' : rawSize === '1G' || rawSize === '1024M' ? '1G' : null;
  const base: HugepagesConfig = { mode: 'off', size, sizeKb: 0, count: 0, requestedKb: 0, limitKb, share, cmdline: [], problem: null };
  if (!Number.isInteger(count) || count < 0) {
    return { ...base, problem: { msg: `expected hugepages.count to be a whole number >= 0, found '${hp.count}'`, hint: 'hugepages: { size: 2M, count: 1024 }' } };
  }
  if (size === null) {
    return { ...base, problem: { msg: `expected hugepages.size 2M or 1G, found '${hp.size}'`, hint: 'x86-64 hugepages are 2M (runtime) or 1G (boot time)' } };
  }
  if (count === 0) return base;
  const sizeKb = size === '2M' ? 2048 : 1048576;
  const requestedKb = sizeKb * count;
  const config: HugepagesConfig = {
    ...base,
    mode: size === '1G' ? 'boot' : 'runtime',
    sizeKb,
    count,
    requestedKb,
    cmdline: size === '1G' ? hugepages1gCmdline(count) : [],
  };
  if (!(share > 0 && share <= 1)) {
    config.problem = { msg: `expected hugepages_max_share between 0 and 1, found '${vars.hugepages_max_share}'`, hint: 'the default is 0.75' };
  } else if (facts.memory.totalKb === 0) {
    config.problem = { msg: 'expected MemTotal in /proc/meminfo, found none', hint: 'the probe could not read /proc/meminfo' };
  } else if (requestedKb > limitKb) {
    const gib = (kb: number) => (kb / 1048576).toFixed(1);
    config.problem = {
      msg: `expected at most ${gib(limitKb)} GiB of hugepages (${Math.round(share * 100)}% of MemTotal ${gib(facts.memory.totalKb)} GiB), found a request for ${count} x ${size} = ${gib(requestedKb)} GiB`,
      hint: `lower hugepages.count to at most ${Math.floor(limitKb / sizeKb)}, or raise hugepages_max_share knowingly: reserved pages are lost to the host`,
    };
  }
  return config;
}
