/**
 * The guest side of the NVIDIA driver: which distribution a guest runs (/etc/os-release) and the
 * APT components its Debian archive entries need for the driver, added to the entries the guest
 * already has, in the format it already uses (one-line `sources.list` or deb822 `.sources`).
 * Pure functions; every byte that is not a component list is kept.
 */

export interface OsRelease {
  id: string;
  versionId: string;
  codename: string;
  prettyName: string;
}

/** `KEY=value` / `KEY="value"` lines of os-release(5). */
export function parseOsRelease(text: string): OsRelease {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1).replace(/\\(["$`\\])/g, '$1');
    kv.set(m[1]!, v);
  }
  return {
    id: kv.get('ID') ?? '',
    versionId: kv.get('VERSION_ID') ?? '',
    codename: kv.get('VERSION_CODENAME') ?? '',
    prettyName: kv.get('PRETTY_NAME') ?? kv.get('NAME') ?? '',
  };
}

/**
 * Debian releases the role knows, with the components the driver's packages live in:
 * `nvidia-driver` in non-free (helpers such as glx-alternative-nvidia in contrib),
 * `firmware-misc-nonfree` in non-free-firmware from bookworm on (in non-free before).
 */
export const DEBIAN_RELEASES: Record<string, { version: string; components: string[] }> = {
  bullseye: { version: '11', components: ['contrib', 'non-free'] },
  bookworm: { version: '12', components: ['contrib', 'non-free', 'non-free-firmware'] },
  trixie: { version: '13', components: ['contrib', 'non-free', 'non-free-firmware'] },
};

/** The two places Debian's installers write the archive entries. */
export const SOURCES_LIST = '/etc/apt/sources.list';
export const DEBIAN_SOURCES = '/etc/apt/sources.list.d/debian.sources';

export interface SourcesEdit {
  path: string;
  format: 'one-line' | 'deb822';
  /** Entries of the Debian archive (suite of this release, component main) found in the file. */
  entries: number;
  /** The file with the missing components added ('' when the file does not exist). */
  content: string;
  changed: boolean;
  /** What was added where, for the plan's message. */
  added: string[];
}

/** A suite of this release: `bookworm`, `bookworm-updates`, `bookworm-security`, `bookworm-backports`. */
const ofRelease = (suite: string, codename: string): boolean => suite === codename || suite.startsWith(`${codename}-`) || suite.startsWith(`${codename}/`);

/**
 * One-line format: `deb [options] URI SUITE COMPONENT...` (and `deb-src`), a trailing `#` comment
 * kept. Entries of this release that carry `main` get the missing components appended.
 */
export function editOneLine(text: string, codename: string, want: string[], path = SOURCES_LIST): SourcesEdit {
  const added: string[] = [];
  let entries = 0;
  const lines = text.split('\n').map((line) => {
    const m = /^(\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?\S+\s+)(\S+)((?:[ \t]+[^\s#]+)*)([ \t]*(?:#.*)?\r?)$/.exec(line);
    if (!m) return line;
    const suite = m[2]!;
    const comps = m[3]!.trim().split(/\s+/).filter(Boolean);
    if (!ofRelease(suite, codename) || !comps.includes('main')) return line;
    entries++;
    const missing = want.filter((c) => !comps.includes(c));
    if (missing.length === 0) return line;
    added.push(`${suite}: ${missing.join(' ')}`);
    return `${m[1]}${suite}${m[3]} ${missing.join(' ')}${m[4]}`;
  });
  const content = lines.join('\n');
  return { path, format: 'one-line', entries, content, changed: content !== text, added };
}

/**
 * deb822 format: stanzas separated by blank lines; a stanza whose `Suites:` hold a suite of this
 * release and whose `Components:` hold `main` gets the missing components on its Components line.
 * Stanzas with `Enabled: no` are left alone and not counted.
 */
export function editDeb822(text: string, codename: string, want: string[], path = DEBIAN_SOURCES): SourcesEdit {
  const added: string[] = [];
  let entries = 0;
  const lines = text.split('\n');
  // stanza boundaries: runs of non-blank lines
  let i = 0;
  while (i < lines.length) {
    if (lines[i]!.trim() === '') {
      i++;
      continue;
    }
    const start = i;
    while (i < lines.length && lines[i]!.trim() !== '') i++;
    const field = (name: string): number => {
      for (let j = start; j < i; j++) if (new RegExp(`^${name}:`, 'i').test(lines[j]!)) return j;
      return -1;
    };
    const value = (j: number): string => (j < 0 ? '' : lines[j]!.replace(/^[^:]*:/, '').replace(/#.*$/, '').trim());
    const suites = value(field('Suites')).split(/\s+/).filter(Boolean);
    const ci = field('Components');
    const comps = value(ci).split(/\s+/).filter(Boolean);
    const enabled = !/^(no|false|0)$/i.test(value(field('Enabled')));
    const types = value(field('Types')).split(/\s+/);
    if (!enabled || ci < 0 || !types.some((t) => t === 'deb' || t === 'deb-src') || !suites.some((s) => ofRelease(s, codename)) || !comps.includes('main')) continue;
    entries++;
    const missing = want.filter((c) => !comps.includes(c));
    if (missing.length === 0) continue;
    added.push(`${suites.join(' ')}: ${missing.join(' ')}`);
    const m = /^([^:]*:[ \t]*)(.*?)([ \t]*(?:#.*)?\r?)$/.exec(lines[ci]!)!;
    lines[ci] = `${m[1]}${m[2]} ${missing.join(' ')}${m[3]}`;
  }
  const content = lines.join('\n');
  return { path, format: 'deb822', entries, content, changed: content !== text, added };
}
