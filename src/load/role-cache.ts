/**
 * Roles as loaded before, kept on the control machine: a run whose roles did not change since an
 * earlier run of the same passthru reads each role's JSON instead of parsing its YAML again (the
 * parse is most of a start: the shipped roles take ~150 ms to parse in a fresh process, their
 * JSON ~1 ms).
 *
 * - An entry is found by a hash of: the format, the code (`codeId`: which build of passthru made
 *   it, since loading also checks every task against its module), the role's folder, and the path
 *   and text of every file loading the role reads (a file added, removed or changed is another
 *   key). Nothing is ever trusted by date.
 * - Only a role that loaded without an error is kept, and only when all its values survive JSON
 *   (a NaN, -Infinity or -0 in a value, say, and the role is parsed every time instead).
 * - The positions that errors found later point at (of the defaults, of the argument spec) are
 *   kept with it: an error reads the same from a kept role as from a parsed one.
 * - The folder (`$XDG_CACHE_HOME/passthru/roles`, else `~/.cache/passthru/roles`) is made 0700;
 *   an entry that is not a plain file owned by this user, writable by no one else, is not read
 *   (it becomes tasks run as root on the hosts). Entries are written whole (a temp file renamed
 *   over), and the oldest go when there are more than MAX_ENTRIES.
 * - Any problem with the cache (unreadable, not JSON, a full disk) only means parsing the YAML.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Pos, Role, RoleArgSpec } from '../model/types.ts';
import { positionsOf, setPositions } from './positions.ts';
import { MAX_FILE_BYTES } from './yaml.ts';
import { ROLE_FILE_BASES, roleFileNames } from './roles.ts';
import { ARG_SPEC_FILES } from './argspec.ts';

const FORMAT = 1;
export const MAX_ENTRIES = 200;

export interface RoleCache {
  /** Where entries are kept. */
  dir: string;
  /** The build of passthru that made the entries (a different build reads none of them). */
  codeId: string;
}

/** The files loading a role may read (the names roles.ts and argspec.ts look for), in a fixed order. */
const ROLE_FILES = [...ROLE_FILE_BASES.flatMap(roleFileNames), ...ARG_SPEC_FILES];

/**
 * The key of a role as its files are now; undefined when one cannot be read (loading the role
 * reports why).
 */
export function roleKey(cache: RoleCache, dir: string): string | undefined {
  const h = createHash('sha256').update(`passthru-role-cache ${FORMAT}\0${cache.codeId}\0${dir}\0`);
  for (const f of ROLE_FILES) {
    const p = join(dir, f);
    let st;
    try {
      st = statSync(p);
    } catch {
      h.update(`${f}\0-\0`);
      continue;
    }
    if (!st.isFile()) {
      h.update(`${f}\0${st.isDirectory() ? 'dir' : 'other'}\0`);
      continue;
    }
    if (st.size > MAX_FILE_BYTES) return undefined;
    try {
      h.update(`${f}\0${st.size}\0`).update(readFileSync(p));
    } catch {
      return undefined;
    }
  }
  return h.digest('hex');
}

interface Entry {
  format: number;
  role: Omit<Role, 'argSpec'> & { argSpec?: Omit<RoleArgSpec, 'pos'> & { pos: Array<[string, Pos]> } };
  defaultsPos: Array<[string, Pos]>;
}

/**
 * Values JSON gives back as they were: plain objects and arrays of strings, finite numbers (not
 * -0), booleans and null. Not a property that is there but undefined (JSON drops it).
 */
function survivesJson(v: unknown, depth = 0): boolean {
  if (depth > 100) return false;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v) && !Object.is(v, -0);
  if (Array.isArray(v)) return v.every((x) => survivesJson(x, depth + 1));
  if (typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.entries(v).every(([k, x]) => k !== '__proto__' && survivesJson(x, depth + 1));
}

/** The kept role for this key, or undefined (none, or one not to be read). */
export function readRole(cache: RoleCache, key: string): Role | undefined {
  const file = join(cache.dir, `${key}.json`);
  const uid = process.getuid?.();
  /** This user's, and no one else may write it. */
  const own = (st: { uid: number; mode: number }) => (uid === undefined || st.uid === uid) && (st.mode & 0o022) === 0;
  let text: string;
  try {
    if (!own(statSync(cache.dir))) return undefined;
    const fd = openSync(file, 'r');
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || !own(st)) return undefined;
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  let e: Entry;
  try {
    e = JSON.parse(text) as Entry;
  } catch {
    return undefined;
  }
  if (e?.format !== FORMAT || typeof e.role !== 'object' || !Array.isArray(e.defaultsPos)) return undefined;
  const { argSpec, ...rest } = e.role;
  const role: Role = { ...rest, ...(argSpec ? { argSpec: { ...argSpec, pos: new Map(argSpec.pos) } } : {}) };
  setPositions(role.defaults, new Map(e.defaultsPos));
  return role;
}

/** Keep a role that loaded without errors under its key; quietly nothing when that cannot be done. */
export function keepRole(cache: RoleCache, key: string, role: Role): void {
  const { argSpec, ...rest } = role;
  if (!survivesJson(rest) || (argSpec && !survivesJson({ ...argSpec, pos: null }))) return;
  const entry: Entry = {
    format: FORMAT,
    role: { ...role, argSpec: role.argSpec && { ...role.argSpec, pos: [...role.argSpec.pos] } },
    defaultsPos: [...positionsOf(role.defaults)],
  };
  const file = join(cache.dir, `${key}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(cache.dir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
    renameSync(tmp, file);
    prune(cache.dir);
  } catch {
    rmSync(tmp, { force: true });
  }
}

/** The oldest entries go when there are more than MAX_ENTRIES. */
function prune(dir: string): void {
  const names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  if (names.length <= MAX_ENTRIES) return;
  const aged = names.map((n) => ({ n, t: statSync(join(dir, n)).mtimeMs })).sort((a, b) => a.t - b.t);
  for (const { n } of aged.slice(0, names.length - MAX_ENTRIES)) rmSync(join(dir, n), { force: true });
}

/**
 * The cache of the installed CLI: its folder, and the build it runs (the names of its bundle's
 * chunks, which carry hashes of their contents). Undefined when this code does not run from the
 * bundle (tests and development run the sources, which change without a build), and when
 * PASSTHRU_ROLE_CACHE=off.
 */
export function installedRoleCache(env: NodeJS.ProcessEnv = process.env): RoleCache | undefined {
  if (env.PASSTHRU_ROLE_CACHE === 'off') return undefined;
  const here = new URL('.', import.meta.url);
  if (here.protocol !== 'file:' || !here.pathname.endsWith('/dist/chunks/')) return undefined;
  let names: string[];
  try {
    names = readdirSync(here).sort();
  } catch {
    return undefined;
  }
  const base = env.XDG_CACHE_HOME?.startsWith('/') ? env.XDG_CACHE_HOME : join(env.HOME || homedir(), '.cache');
  return { dir: join(base, 'passthru', 'roles'), codeId: createHash('sha256').update(names.join('\n')).digest('hex') };
}
