/**
 * Facts of one host: one remote exec of the probe script, parsed locally.
 */
import type { Connection } from '../transport/connection.ts';
import { parseProbe, probeScript } from './probe.ts';
import type { Facts } from './types.ts';

export { parseProbe, probeScript } from './probe.ts';
export * from './parsers.ts';
export type { Facts, PciDevice, Bootloader } from './types.ts';
export * from './guests.ts';

/** Run the probe on the host (`sh -s`, script on stdin, never throws on exit status) and parse it. */
export async function gatherFacts(conn: Connection, opts: { timeoutMs?: number } = {}): Promise<Facts> {
  const r = await conn.exec('sh -s', { stdin: probeScript(), nothrow: true, timeoutMs: opts.timeoutMs ?? 60_000 });
  if (!r.stdout.includes('@@passthru-facts:')) {
    throw new Error(`${conn.host}: the facts probe printed nothing usable (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
  return parseProbe(r.stdout);
}
