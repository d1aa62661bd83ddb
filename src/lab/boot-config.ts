/**
 * What a lab node's files say was configured and applied, parsed the way the boot simulator
 * (boot.ts) reads them: the bootloader config as last generated, the initramfs snapshot as last
 * built, modprobe options, the kernel command line, sysctl.d. Pure functions over a NodeView.
 */

/** Read-only view of a node's files, by the path the node sees (`/etc/modules`). */
export interface NodeView {
  read(path: string): string | null;
  /** Entry names of a directory, [] when absent. */
  list(dir: string): string[];
}

// ---------- helpers ----------

export const norm = (m: string): string => m.trim().replace(/-/g, '_');

// Kernel versions are compared here on purpose without src/model/version.ts: the boot simulator is
// an independent oracle for what passthru decides about kernels (6.2 drops vfio_virqfd, 6.8 turns
// intel_iommu on), so it must not share the code it checks.

/** `6.8.12-4-pve` → [6, 8, 12]. */
export function kernelTuple(release: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  if (!m) return [0, 0, 0];
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

export function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const [a, b] = kernelTuple(release);
  return a > major || (a === major && b >= minor);
}

export function compareKernels(a: string, b: string): number {
  const ta = kernelTuple(a);
  const tb = kernelTuple(b);
  for (let i = 0; i < 3; i++) if (ta[i] !== tb[i]) return ta[i]! - tb[i]!;
  const ra = Number(/-(\d+)/.exec(a)?.[1] ?? 0);
  const rb = Number(/-(\d+)/.exec(b)?.[1] ?? 0);
  return ra - rb;
}

function stripComments(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
}

/** Parse `size` suffixes of hugepagesz= (`2M`, `1G`, `2048k`) to kB. */
export function sizeKb(s: string): number | null {
  const m = /^(\d+)([kKmMgG]?)$/.exec(s.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const u = m[2]!.toLowerCase();
  return u === 'g' ? n * 1048576 : u === 'm' ? n * 1024 : u === 'k' ? n : Math.floor(n / 1024);
}

// ---------- bootloader ----------

export interface LoaderState {
  kernel: string;
  cmdline: string;
}

/** The default entry of a grub.cfg written by update-grub: first `linux` line. */
export function parseGrubCfg(text: string): LoaderState | null {
  for (const line of text.split('\n')) {
    const m = /^\s*linux\s+(\/boot\/vmlinuz-(\S+))\s*(.*)$/.exec(line);
    if (m) {
      const args = m[3]!.trim().split(/\s+/).filter(Boolean).join(' ');
      return { kernel: m[2]!, cmdline: `BOOT_IMAGE=${m[1]}${args ? ' ' + args : ''}` };
    }
  }
  return null;
}

/** systemd-boot: newest `proxmox-*.conf` loader entry on the ESP (or loader.conf's default). */
export function parseLoaderEntries(view: NodeView, esp = '/boot/efi'): LoaderState | null {
  const entries = view.list(`${esp}/loader/entries`).filter((f) => f.endsWith('.conf'));
  const parsed: Array<{ version: string; options: string; initrd: string }> = [];
  for (const f of entries) {
    const text = view.read(`${esp}/loader/entries/${f}`) ?? '';
    const get = (k: string) => new RegExp(`^${k}\\s+(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
    const version = get('version');
    if (version) parsed.push({ version, options: get('options'), initrd: get('initrd') });
  }
  if (parsed.length === 0) return null;
  parsed.sort((a, b) => compareKernels(b.version, a.version));
  const e = parsed[0]!;
  const initrd = e.initrd.replace(/\//g, '\\');
  return { kernel: e.version, cmdline: `initrd=${initrd} ${e.options}`.trim() };
}

// ---------- initramfs snapshot ----------

export const SNAPSHOT_HEADER = 'passthru-lab initramfs snapshot';

/** The snapshot file: `--- <path>` sections holding the file contents when update-initramfs ran. */
export function parseSnapshot(text: string | null): Map<string, string> {
  const files = new Map<string, string>();
  if (!text || !text.startsWith(SNAPSHOT_HEADER)) return files;
  let cur: string | null = null;
  let buf: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const m = /^--- (\/\S+)$/.exec(line);
    if (m) {
      if (cur) files.set(cur, buf.join('\n'));
      cur = m[1]!;
      buf = [];
    } else if (cur) buf.push(line);
  }
  if (cur) files.set(cur, buf.join('\n'));
  return files;
}

export interface ModConfig {
  /** Modules listed to load at boot. */
  load: string[];
  blacklist: Set<string>;
  /** module → modules that must load before it. */
  softdepPre: Map<string, string[]>;
  /** module → options string. */
  options: Map<string, string[]>;
  /** Addresses with `driver_override` set to vfio-pci by an early script. */
  overrides: Set<string>;
}

function modulesListFile(text: string): string[] {
  return stripComments(text).map((l) => norm(l.split(/\s+/)[0]!));
}

/** modprobe.d semantics over a set of files: path → contents. */
export function parseModConfig(files: Map<string, string>): ModConfig {
  const cfg: ModConfig = { load: [], blacklist: new Set(), softdepPre: new Map(), options: new Map(), overrides: new Set() };
  const paths = [...files.keys()].sort();
  for (const p of paths) {
    const text = files.get(p)!;
    if (p === '/etc/modules' || p === '/etc/initramfs-tools/modules' || (p.startsWith('/etc/modules-load.d/') && p.endsWith('.conf'))) {
      cfg.load.push(...modulesListFile(text));
    } else if (p.startsWith('/etc/modprobe.d/') && p.endsWith('.conf')) {
      for (const line of stripComments(text)) {
        const [kw, mod, ...rest] = line.split(/\s+/);
        if (!mod) continue;
        const m = norm(mod);
        if (kw === 'blacklist') cfg.blacklist.add(m);
        else if (kw === 'install' && /\/bin\/(false|true)/.test(rest.join(' '))) cfg.blacklist.add(m);
        else if (kw === 'options') cfg.options.set(m, [...(cfg.options.get(m) ?? []), ...rest]);
        else if (kw === 'softdep') {
          const pre: string[] = [];
          let inPre = false;
          for (const t of rest) {
            if (t === 'pre:') inPre = true;
            else if (t === 'post:') inPre = false;
            else if (inPre) pre.push(norm(t));
          }
          cfg.softdepPre.set(m, [...(cfg.softdepPre.get(m) ?? []), ...pre]);
        }
      }
    } else if (p.startsWith('/etc/initramfs-tools/scripts/init-top/') || p.startsWith('/etc/initramfs-tools/scripts/init-premount/')) {
      // An early boot script writing driver_override (the snapshot holds only scripts
      // initramfs-tools would run: executable ones).
      const re = /vfio-pci\s*>\s*\/sys\/bus\/pci\/devices\/([0-9a-fA-F:.]+)\/driver_override/g;
      for (const m of text.matchAll(re)) cfg.overrides.add(m[1]!.toLowerCase());
    }
  }
  return cfg;
}

export function vfioIds(cfg: ModConfig): Set<string> {
  const ids = new Set<string>();
  for (const opt of cfg.options.get('vfio_pci') ?? []) {
    const m = /^ids=(.*)$/.exec(opt);
    if (m) for (const id of m[1]!.split(',')) if (id.trim()) ids.add(id.trim().toLowerCase());
  }
  return ids;
}

/** Files a snapshot (and systemd-modules-load) consider, read from the live view. */
export function liveModFiles(view: NodeView): Map<string, string> {
  const files = new Map<string, string>();
  const add = (p: string) => {
    const t = view.read(p);
    if (t !== null) files.set(p, t);
  };
  add('/etc/modules');
  add('/etc/initramfs-tools/modules');
  for (const d of ['/etc/modules-load.d', '/etc/modprobe.d']) for (const f of view.list(d)) add(`${d}/${f}`);
  for (const d of ['/etc/initramfs-tools/scripts/init-top', '/etc/initramfs-tools/scripts/init-premount'])
    for (const f of view.list(d)) add(`${d}/${f}`);
  return files;
}

// ---------- cmdline ----------

export function cmdlineTokens(cmdline: string): string[] {
  return cmdline.split(/\s+/).filter(Boolean);
}

export function cmdlineParam(cmdline: string, key: string): string | null {
  let v: string | null = null;
  for (const t of cmdlineTokens(cmdline)) {
    if (t === key) v = '';
    else if (t.startsWith(key + '=')) v = t.slice(key.length + 1);
  }
  return v;
}

export function hugepagesFromCmdline(cmdline: string): { defaultSizeKb: number; pools: Record<string, number> } {
  let defaultSizeKb = 2048;
  const d = cmdlineParam(cmdline, 'default_hugepagesz');
  if (d) defaultSizeKb = sizeKb(d) ?? 2048;
  const pools: Record<string, number> = {};
  let cur: number | null = null;
  for (const t of cmdlineTokens(cmdline)) {
    if (t.startsWith('hugepagesz=')) cur = sizeKb(t.slice(11));
    else if (t.startsWith('hugepages=')) {
      const n = Number(t.slice(10));
      if (Number.isFinite(n)) pools[String(cur ?? defaultSizeKb)] = n;
    }
  }
  return { defaultSizeKb, pools };
}

/** `vm.nr_hugepages` as systemd-sysctl applies it at boot (/etc/sysctl.d/*.conf, /etc/sysctl.conf; later wins). */
export function sysctlFromFiles(view: NodeView): Map<string, string> {
  const out = new Map<string, string>();
  const files: string[] = [];
  for (const f of view.list('/etc/sysctl.d').sort()) if (f.endsWith('.conf')) files.push(`/etc/sysctl.d/${f}`);
  files.push('/etc/sysctl.conf');
  for (const p of files) {
    for (const line of stripComments(view.read(p) ?? '')) {
      const m = /^-?\s*([\w./-]+)\s*=\s*(.*)$/.exec(line);
      if (m) out.set(m[1]!.replace(/\//g, '.'), m[2]!.trim());
    }
  }
  return out;
}
