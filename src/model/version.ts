/**
 * Version comparison, in one place: the template `version` test, kernel checks (is this kernel
 * 6.8 or later?) and the kernel version shown in facts all use these.
 *
 * `compareVersions` orders dotted versions loosely, as Ansible's `version` test does by default
 * (numeric pieces as numbers, other pieces as text, a missing piece counting as 0), so that
 * Debian-ish versions such as `8.2.4` or `5.15.0-1` compare sensibly. A kernel release such as
 * `6.8.12-4-pve` is first reduced to its numeric core (`6.8.12`) with `semver.coerce`, so that
 * the `-4-pve` suffix takes no part in "at least 6.8".
 */
// Only coerce (semver's index loads all of its 49 modules: about 28 ms at every start).
import coerce from 'semver/functions/coerce.js';

/** Compare two dotted versions: negative, 0 or positive ('5.15.0-1' < '6.1', '6.1' == '6.1.0'). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+_~]/);
  const pb = b.split(/[.\-+_~]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '0';
    const y = pb[i] ?? '0';
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const c = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x < y ? -1 : x > y ? 1 : 0;
    if (c) return c < 0 ? -1 : 1;
  }
  return 0;
}

/** The numeric core of a kernel release: `6.8.12-4-pve` → `6.8.12`; `''` when it holds no version. */
export function kernelVersion(release: string): string {
  return coerce(release)?.version ?? '';
}

/** Is the kernel (a release such as `6.8.12-4-pve`, or a version) at least `version` ('6.8' or '6.8.0')? False when the release holds no version. */
export function kernelAtLeast(release: string, version: string): boolean {
  const v = kernelVersion(release);
  return v !== '' && compareVersions(v, version) >= 0;
}
