/**
 * Batches of a stage (`serial`) and the failure policy per batch (`max_fail_percentage`,
 * `any_errors_fatal`). Pure functions, Ansible semantics.
 */

/**
 * One `serial` entry as a batch size for a stage of `total` hosts.
 * A number is taken as is; "30%" is that share of the stage's hosts, rounded down, at least 1.
 * Numeric strings ("5") are accepted like numbers. Anything else throws.
 */
export function serialSize(value: number | string, total: number): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`serial: ${value} is not a valid batch size (a whole number of at least 1, or a percentage like "30%")`);
    }
    return value;
  }
  const s = String(value).trim();
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(s);
  if (pct) {
    const p = Number(pct[1]);
    if (!(p > 0)) {
      throw new Error(`serial: "${value}" is not a valid percentage (more than 0%, e.g. "30%")`);
    }
    return Math.max(1, Math.floor((total * p) / 100));
  }
  if (/^\d+$/.test(s)) return serialSize(Number(s), total);
  throw new Error(`serial: "${value}" is not a valid batch size (a whole number of at least 1, or a percentage like "30%")`);
}

/**
 * Split a stage's hosts into batches.
 * - `serial` undefined or empty: one batch of all hosts.
 * - otherwise successive sizes from the list, the last one repeating until no host is left;
 *   a size larger than what is left takes the rest.
 * Percentages are of the stage's host count (`hosts.length`). Invalid values throw even when
 * there are no hosts, so a bad playbook is caught early.
 */
export function planBatches(hosts: string[], serial?: Array<number | string>): string[][] {
  if (serial === undefined || serial.length === 0) return hosts.length ? [hosts.slice()] : [];
  const sizes = serial.map((v) => serialSize(v, hosts.length));
  const batches: string[][] = [];
  let i = 0;
  let k = 0;
  while (i < hosts.length) {
    const size = sizes[Math.min(k, sizes.length - 1)];
    batches.push(hosts.slice(i, i + size));
    i += size;
    k++;
  }
  return batches;
}

/**
 * Does this batch's failure stop the stage (no further batch, no further stage for anyone)?
 * - `anyErrorsFatal`: any failed host stops it.
 * - `maxFailPercentage`: stops when the share of failed hosts EXCEEDS it (equal does not stop);
 *   `max_fail_percentage: 0` therefore stops on the first failure.
 * - Always (as Ansible does): when every host of a non-empty batch failed, the play stops,
 *   whatever `maxFailPercentage` says or when it is not set.
 */
export function batchFailed(
  batchSize: number,
  failedInBatch: number,
  maxFailPercentage?: number,
  anyErrorsFatal?: boolean,
): boolean {
  if (batchSize <= 0 || failedInBatch <= 0) return false;
  if (anyErrorsFatal) return true;
  if (failedInBatch >= batchSize) return true;
  if (maxFailPercentage === undefined) return false;
  return (failedInBatch * 100) / batchSize > maxFailPercentage;
}

/**
 * Does a failure policy the user set (`any_errors_fatal`, `max_fail_percentage`) stop the run?
 * Unlike {@link batchFailed} this leaves out the all-failed rule: a stage whose batch all failed
 * stops its own remaining batches, but later stages still run for their (other) hosts.
 * Returns the reason, or null.
 */
export function policyStop(
  batchSize: number,
  failedInBatch: number,
  maxFailPercentage?: number,
  anyErrorsFatal?: boolean,
): string | null {
  if (batchSize <= 0 || failedInBatch <= 0) return null;
  if (anyErrorsFatal) return `${failedInBatch} of ${batchSize} hosts failed (any_errors_fatal)`;
  if (maxFailPercentage !== undefined && (failedInBatch * 100) / batchSize > maxFailPercentage) {
    return `${failedInBatch} of ${batchSize} hosts failed, more than max_fail_percentage ${maxFailPercentage}%`;
  }
  return null;
}
