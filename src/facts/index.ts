/**
 * Facts of one host: one remote exec of the probe script, parsed locally.
 *
 * Adding a fact (three edits in two files):
 *   1. types.ts: the field on `Facts`, with its doc (never undefined: null or empty when unknown);
 *   2. the file that owns the topic (system.ts, hardware.ts, cluster.ts or guests.ts): the probe
 *      section (`['name', 'POSIX sh that exits 0 and reads no stdin']`) in its *_SECTIONS list,
 *      the pure parser next to it, and the field in its systemFacts()/hardwareFacts()/
 *      clusterFacts()/parseGuestSections();
 *   3. a parser test against a real output saved in test/fixtures/facts/ (and the section in
 *      test/fixtures/facts/hosts.ts when the fixture hosts should carry it).
 * probe.ts only concatenates the section lists and merges what each file returns. A fact that
 * feeds passthrough decisions is then read in src/passthrough/ (see its index.ts).
 */
import type { Connection } from '../transport/connection.ts';
import { parseProbe, probeScript } from './probe.ts';
import type { Facts } from './types.ts';

export { parseProbe, probeCommandResults, PROBE_COMMANDS, probeScript } from './probe.ts';
export * from './parsers.ts';
export type { Facts, PciDevice, Bootloader } from './types.ts';
export * from './guests.ts';

/** Run the probe on the host (`sh -s`, script on stdin, never throws on exit status) and parse it. */
export async function gatherFacts(conn: Connection, opts: { timeoutMs?: number } = {}): Promise<Facts> {
  const r = await conn.exec('sh -s', { stdin: probeScript(), nothrow: true, timeoutMs: opts.timeoutMs ?? PROBE_TIMEOUT_MS });
  return factsFromOutput(conn.host, r);
}

/** How long the probe may take. */
export const PROBE_TIMEOUT_MS = 60_000;

/** The probe's output → Facts; throws when it printed nothing usable. */
export function factsFromOutput(host: string, r: { code: number; stdout: string; stderr: string }): Facts {
  if (!r.stdout.includes('@@passthru-facts:')) {
    throw new Error(`${host}: the facts probe printed nothing usable (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
  return parseProbe(r.stdout);
}
