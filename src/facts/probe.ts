/**
 * The facts probe: ONE POSIX sh script run once per host (`sh -s`, script on stdin). Each
 * section starts with a marker line and tolerates a missing tool; `parseProbe` splits the
 * output on the markers and hands the sections to the files that own them (system.ts,
 * hardware.ts, cluster.ts, guests.ts: each holds its sections, their parsers and the Facts
 * fields they fill).
 */
import type { Facts } from './types.ts';
import { DPKG_QUERY } from './hardware.ts';
import { CLUSTER_SECTIONS, clusterFacts } from './cluster.ts';
import { GUEST_SECTIONS, parseGuestSections } from './guests.ts';
import { HARDWARE_SECTIONS, hardwareFacts } from './hardware.ts';
import { SYSTEM_SECTIONS, systemFacts } from './system.ts';
import type { ProbeSection } from './text.ts';

export const MARKER = '@@passthru-facts:';

/** Every section, in the order the script prints them. Every snippet must exit 0 and never read stdin. */
const SECTIONS: ProbeSection[] = [...SYSTEM_SECTIONS, ...HARDWARE_SECTIONS, ...CLUSTER_SECTIONS, ...GUEST_SECTIONS];

/** The probe script. Sections are printed as `@@passthru-facts:<name>@@` then the section's output. */
export function probeScript(): string {
  const body = SECTIONS.map(([name, sh]) => `printf '\\n${MARKER}%s@@\\n' '${name}'\n{ ${sh} ; } 2>/dev/null || :`).join('\n');
  return `# passthru facts probe (read-only)\nLC_ALL=C; export LC_ALL\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH\n${body}\nexit 0\n`;
}

/** Split probe output into sections by marker. */
export function splitSections(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = new RegExp(`^${MARKER.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([\\w.-]+)@@$`, 'gm');
  const marks = [...stdout.matchAll(re)];
  marks.forEach((m, i) => {
    const start = (m.index ?? 0) + m[0].length + 1;
    const end = i + 1 < marks.length ? (marks[i + 1].index ?? stdout.length) : stdout.length;
    out[m[1]] = stdout.slice(start, end).replace(/\n+$/, '');
  });
  return out;
}

/** Probe output → Facts. Pure. */
export function parseProbe(stdout: string): Facts {
  const s = splitSections(stdout);
  const sec = (k: string) => s[k] ?? '';
  const { pciExtra, ...guests } = parseGuestSections(sec);
  return { ...systemFacts(sec), ...hardwareFacts(sec, pciExtra), ...clusterFacts(sec), ...guests };
}

/** Commands the probe runs whole and whose result it reports: a module's read of one is answered by the probe. */
export const PROBE_COMMANDS: readonly string[] = [DPKG_QUERY];

/**
 * The results of {@link PROBE_COMMANDS} in a probe's output: the command's stdout and its exit
 * status (stderr is not kept: ''). Only a command that ran and exited 0 is reported; one that is
 * missing or failed is left to the module's own read. Pure.
 */
export function probeCommandResults(stdout: string): Map<string, { code: number; stdout: string; stderr: string }> {
  const out = new Map<string, { code: number; stdout: string; stderr: string }>();
  const dpkg = splitSections(stdout).dpkg;
  const m = dpkg === undefined ? null : /(?:^|\n)@@rc (\d+)$/.exec(dpkg);
  if (dpkg !== undefined && m && m[1] === '0') {
    const body = dpkg.slice(0, m.index);
    out.set(DPKG_QUERY, { code: 0, stdout: body ? `${body}\n` : '', stderr: '' });
  }
  return out;
}
