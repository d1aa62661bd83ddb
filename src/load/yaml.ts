/**
 * YAML with positions. Every loader reads its files through here so that each map key and
 * value can be traced back to `file:line:col`, and so that every error has the same shape.
 *
 * Loaders collect errors in an {@link Errors} list instead of throwing at the first one, so a
 * user sees every mistake of a file in one run.
 *
 * Over 400 lines on purpose: parsing, positions and the typed getters every loader uses belong
 * together (each getter reports at the node it reads); splitting them would scatter one API.
 */
import { readFile, stat } from 'node:fs/promises';
import { closeSync, openSync, readSync } from 'node:fs';
import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import { ConfigError, ConfigErrors, suggest } from '../model/errors.ts';
import type { Pos } from '../model/types.ts';
import { yamlBool } from '../model/truth.ts';
import { recordNodePositions, setPositions } from './positions.ts';

export type YNode = Node | null | undefined;

/** A parsed YAML file: the document plus what is needed to turn offsets into positions. */
export class YamlFile {
  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lc: LineCounter,
  ) {}

  get root(): YNode {
    return this.doc.contents as YNode;
  }

  /** Position of an offset in the file. */
  at(offset: number): Pos {
    const { line, col } = this.lc.linePos(offset);
    return { file: this.file, line, col };
  }

  /** Position of a node (its first character); the file start when the node has no range. */
  pos(node: YNode | Pair, fallback?: Pos): Pos {
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) return this.at(range[0]);
    const key = (node as Pair | null | undefined)?.key as YNode;
    if (key && (key as { range?: unknown }).range) return this.pos(key);
    return fallback ?? { file: this.file, line: 1, col: 1 };
  }
}

export { suggest };

/** Collects ConfigErrors of one load; `throwIfAny()` raises them all at once. */
export class Errors {
  readonly list: ConfigError[] = [];
  add(message: string, pos?: Pos, hint?: string): void {
    this.list.push(new ConfigError(message, pos, hint));
  }
  push(e: unknown): void {
    if (e instanceof ConfigErrors) this.list.push(...e.errors);
    else if (e instanceof ConfigError) this.list.push(e);
    else throw e;
  }
  /** Run `fn`, recording a ConfigError it throws instead of propagating it. */
  catch<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      this.push(e);
      return undefined;
    }
  }
  get empty(): boolean {
    return this.list.length === 0;
  }
  throwIfAny(): void {
    if (this.list.length === 1) throw this.list[0];
    if (this.list.length > 1) throw new ConfigErrors(this.list);
  }
}

/** Strip yaml's " at line X, column Y:" suffix and the code excerpt: we print the position ourselves. */
function cleanMessage(msg: string): string {
  const i = msg.search(/ at line \d+, column \d+/);
  return (i >= 0 ? msg.slice(0, i) : msg.split('\n')[0]!).trim();
}

/** Largest config file read (inventory, playbook, role, vars files, -e @file). */
export const MAX_FILE_BYTES = 4 * 1024 * 1024;
/** Nodes that alias expansion may create in one file, and aliases it may expand. */
export const MAX_ALIAS_NODES = 10_000;
export const MAX_ALIASES = 1_000;
/** Deepest nesting of maps and lists in a file. */
export const MAX_DEPTH = 64;

/** Nodes in a tree (aliases count as one), counting at most up to `limit`. */
function nodeCount(node: YNode, limit: number): number {
  let n = 0;
  const walk = (x: YNode): void => {
    if (n >= limit || x == null) return;
    n++;
    if (isMap(x)) for (const p of x.items) {
      walk(p.key as YNode);
      walk(p.value as YNode);
    }
    else if (isSeq(x)) for (const i of x.items) walk(i as YNode);
  };
  walk(node);
  return n;
}

/** Depth of a tree, iteratively (a 20,000-deep file must not overflow the stack here). */
function maxDepth(root: YNode, limit: number): number {
  let max = 0;
  const stack: Array<[YNode, number]> = [[root, 1]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (x == null) continue;
    if (d > max) max = d;
    if (max >= limit) return max;
    if (isMap(x)) for (const p of x.items) stack.push([p.value as YNode, d + 1]);
    else if (isSeq(x)) for (const i of x.items) stack.push([i as YNode, d + 1]);
  }
  return max;
}

function tooBig(path: string, bytes: number): ConfigError {
  return new ConfigError(`${path} is ${bytes > MAX_FILE_BYTES + 1 ? `${bytes} bytes` : `more than ${MAX_FILE_BYTES} bytes`}; config files are read up to ${MAX_FILE_BYTES} bytes (4 MiB)`, { file: path, line: 1, col: 1 }, 'is this the right file? inventories and playbooks are small text files');
}

/**
 * Read a text file of at most MAX_FILE_BYTES (a device or FIFO such as /dev/zero included: it is
 * read only that far). Throws a ConfigError beyond the limit, the fs error otherwise.
 */
export function readTextBounded(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > MAX_FILE_BYTES) throw tooBig(path, n);
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** How to read scalars: `yaml11` keeps every plain scalar as text, for a YAML 1.1 reader (inventory/yaml11.ts) to type. */
export interface ParseOptions {
  yaml11?: boolean;
}

/** Parse YAML text. Syntax errors (all of them) become ConfigErrors at the parser's position. */
export function parseYaml(text: string, file: string, opts: ParseOptions = {}): YamlFile {
  if (text.length > MAX_FILE_BYTES) throw tooBig(file, Buffer.byteLength(text));
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, merge: true, ...(opts.yaml11 ? { version: '1.1' as const, schema: 'failsafe' } : {}) });
  const yf = new YamlFile(file, doc, lc);
  if (doc.errors.length) {
    const errs = doc.errors.map((e) => {
      // an unclosed quote is detected at the end of the file: point at where it opens instead
      const q = /closing (["'])quote/.exec(e.message);
      const open = q ? text.lastIndexOf(q[1]!, e.pos[0] - 1) : -1;
      if (open >= 0) return new ConfigError(`invalid YAML: this ${q![1]}quoted string is never closed`, yf.at(open), `add the closing ${q![1]}`);
      if (/call stack/i.test(e.message)) return new ConfigError(`invalid YAML: nested more than ${MAX_DEPTH} levels deep`, yf.at(e.pos[0]), 'flatten the structure');
      return new ConfigError(`invalid YAML: ${cleanMessage(e.message)}`, yf.at(e.pos[0]), yamlHint(e.code));
    });
    throw errs.length === 1 ? errs[0]! : new ConfigErrors(errs);
  }
  // Replace each alias (`*name`) by a copy of its anchored node, so readers never meet one. The
  // copies are counted: nested aliases ("billion laughs") grow exponentially, so expansion stops
  // at MAX_ALIAS_NODES nodes (the yaml library's own maxAliasCount guards only toJS, which this
  // expansion would bypass).
  //
  // Each alias takes the last node anchored with its name before it, in document order: the walk
  // keeps them as it meets them (the library's own resolve() walks the whole document again for
  // every alias: quadratic in an inventory that shares its values by aliases). No `*` in the
  // text, no alias: no walk.
  let expanded = 0;
  let aliases = 0;
  const anchored = new Map<string, Node>();
  if (text.includes('*')) visit(doc, (_key, node) => {
    if (isAlias(node)) {
      const target = anchored.get(node.source);
      if (!target) return undefined;
      aliases++;
      expanded += nodeCount(target, MAX_ALIAS_NODES - expanded + 1);
      if (expanded > MAX_ALIAS_NODES || aliases > MAX_ALIASES) {
        const at = (node as { range?: [number, number, number] }).range;
        throw new ConfigError(
          `invalid YAML: aliases expand to more than ${aliases > MAX_ALIASES ? `${MAX_ALIASES} copies` : `${MAX_ALIAS_NODES} nodes`} (nested aliases grow exponentially)`,
          at ? yf.at(at[0]) : undefined,
          'write the values out, or use fewer nested anchors (&name) and aliases (*name)',
        );
      }
      return target.clone() as Node;
    }
    if (isNode(node) && node.anchor) anchored.set(node.anchor, node);
    return undefined;
  });
  // Deep nesting: readers walk the tree recursively, so bound the depth too.
  const depth = maxDepth(doc.contents as YNode, MAX_DEPTH + 1);
  if (depth > MAX_DEPTH) throw new ConfigError(`invalid YAML: nested more than ${MAX_DEPTH} levels deep`, yf.at(0), 'flatten the structure');
  return yf;
}

function yamlHint(code: string): string | undefined {
  switch (code) {
    case 'DUPLICATE_KEY':
      return 'each key may appear once in a map; remove or merge the duplicate';
    case 'BAD_INDENT':
    case 'MISSING_CHAR':
      return 'check the indentation and that brackets and quotes are closed';
    case 'TAB_AS_INDENT':
      return 'YAML indentation must use spaces, not tabs';
    case 'MULTIPLE_DOCS':
      return 'one YAML document per file: remove the `---` separator';
    default:
      return 'check the indentation and that quotes and brackets are closed';
  }
}

/** Read and parse a YAML file; a missing file is a ConfigError too. */
export async function loadYamlFile(path: string, opts: ParseOptions = {}): Promise<YamlFile> {
  let text: string;
  try {
    const st = await stat(path);
    if (st.isFile() && st.size > MAX_FILE_BYTES) throw tooBig(path, st.size);
    text = st.isFile() ? await readFile(path, 'utf8') : readTextBounded(path);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, undefined, 'check the path');
  }
  return parseYaml(text, path, opts);
}

export function loadYamlFileSync(path: string): YamlFile {
  let text: string;
  try {
    text = readTextBounded(path);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, undefined, 'check the path');
  }
  return parseYaml(text, path);
}

// ---------------------------------------------------------------- reading maps and values

/** One entry of a YAML map: the key's text and position, and the value node with its position. */
export interface Entry {
  key: string;
  keyPos: Pos;
  node: YNode;
  pos: Pos;
}

export function isNull(node: YNode): boolean {
  return node == null || (isScalar(node) && node.value == null);
}

function describe(node: YNode): string {
  if (isNull(node)) return 'nothing (null)';
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v)}`;
    return `${typeof v === 'number' ? 'the number' : typeof v === 'boolean' ? 'the boolean' : 'the value'} ${String(v)}`;
  }
  return 'an unsupported value';
}

/**
 * The entries of a map node. With `allowed`, an unknown key is reported at that key with the
 * closest allowed name as hint (the entry is still returned, so callers may ignore it).
 * A node that is not a map is reported (null counts as an empty map when `nullOk`).
 */
export function mapEntries(
  yf: YamlFile,
  node: YNode,
  errs: Errors,
  what: string,
  opts: { allowed?: readonly string[]; nullOk?: boolean; at?: Pos; allowedHint?: string } = {},
): Entry[] | undefined {
  if (isNull(node) && opts.nullOk) return [];
  if (!isMap(node)) {
    errs.add(`${what} must be a map, found ${describe(node)}`, yf.pos(node, opts.at), 'write it as `key: value` lines');
    return undefined;
  }
  const out: Entry[] = [];
  for (const pair of (node as YAMLMap).items) {
    const keyNode = pair.key as YNode;
    const keyPos = yf.pos(keyNode, yf.pos(node));
    if (!isScalar(keyNode) || keyNode.value == null || typeof keyNode.value === 'object') {
      errs.add(`${what}: a key must be a plain name`, keyPos);
      continue;
    }
    const key = String(keyNode.value);
    const valueNode = pair.value as YNode;
    const pos = valueNode && (valueNode as { range?: unknown }).range ? yf.pos(valueNode) : keyPos;
    if (opts.allowed && !opts.allowed.includes(key)) {
      const near = suggest(key, opts.allowed);
      errs.add(
        `unknown key '${key}' in ${what}`,
        keyPos,
        near ? `did you mean '${near}'?` : (opts.allowedHint ?? `allowed keys: ${opts.allowed.join(', ')}`),
      );
      continue;
    }
    out.push({ key, keyPos, node: valueNode, pos });
  }
  return out;
}

/** Plain JS value of a node (null for an empty value). */
export function toJS(node: YNode): unknown {
  if (node == null) return null;
  return (node as Node).toJSON();
}

export function getString(yf: YamlFile, e: Entry, errs: Errors, what = e.key): string | undefined {
  const n = e.node;
  if (isScalar(n) && typeof n.value === 'string') return n.value;
  if (isScalar(n) && (typeof n.value === 'number' || typeof n.value === 'boolean')) return String(n.source ?? n.value);
  errs.add(`'${what}' must be a string, found ${describe(n)}`, e.pos);
  return undefined;
}

export function getInt(
  yf: YamlFile,
  e: Entry,
  errs: Errors,
  opts: { min?: number; max?: number; what?: string } = {},
): number | undefined {
  const n = e.node;
  const what = opts.what ?? e.key;
  let v: unknown = isScalar(n) ? n.value : undefined;
  if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) v = Number(v);
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    errs.add(`'${what}' must be an integer, found ${describe(n)}`, e.pos);
    return undefined;
  }
  if ((opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max)) {
    errs.add(`'${what}' must be between ${opts.min ?? '-∞'} and ${opts.max ?? '∞'}, found ${v}`, e.pos);
    return undefined;
  }
  return v;
}

export function getBool(yf: YamlFile, e: Entry, errs: Errors, what = e.key): boolean | undefined {
  const n = e.node;
  if (isScalar(n) && typeof n.value === 'boolean') return n.value;
  if (isScalar(n) && typeof n.value === 'string') {
    const b = yamlBool(n.value);
    if (b !== undefined) return b;
  }
  errs.add(`'${what}' must be true or false, found ${describe(n)}`, e.pos);
  return undefined;
}

export function getChoice<T extends string>(
  yf: YamlFile,
  e: Entry,
  errs: Errors,
  choices: readonly T[],
  what = e.key,
): T | undefined {
  const n = e.node;
  const v = isScalar(n) ? n.value : undefined;
  if (typeof v === 'string' && (choices as readonly string[]).includes(v)) return v as T;
  const near = typeof v === 'string' ? suggest(v, choices) : undefined;
  errs.add(
    `'${what}' must be one of ${choices.join(', ')}; found ${describe(n)}`,
    e.pos,
    near ? `did you mean '${near}'?` : undefined,
  );
  return undefined;
}

/** A string or a list of strings (as for `tags` and `notify`), normalised to a list. */
export function getStringList(yf: YamlFile, e: Entry, errs: Errors, what = e.key): string[] | undefined {
  const n = e.node;
  if (isNull(n)) return [];
  if (isScalar(n) && (typeof n.value === 'string' || typeof n.value === 'number')) {
    return String(n.value)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  }
  if (isSeq(n)) {
    const out: string[] = [];
    let ok = true;
    for (const item of n.items as YNode[]) {
      if (isScalar(item) && (typeof item.value === 'string' || typeof item.value === 'number')) out.push(String(item.value));
      else {
        errs.add(`'${what}' items must be strings, found ${describe(item)}`, yf.pos(item, e.pos));
        ok = false;
      }
    }
    return ok ? out : undefined;
  }
  errs.add(`'${what}' must be a string or a list of strings, found ${describe(n)}`, e.pos);
  return undefined;
}

/** A map of variables (`vars:`, `defaults.yaml`): keys must be valid names. */
export function getVars(yf: YamlFile, node: YNode, errs: Errors, what: string, at?: Pos): Record<string, unknown> | undefined {
  const entries = mapEntries(yf, node, errs, what, { nullOk: true, at });
  if (!entries) return undefined;
  const out: Record<string, unknown> = {};
  const positions = new Map<string, Pos>();
  for (const e of entries) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(e.key)) {
      errs.add(`invalid variable name '${e.key}' in ${what}`, e.keyPos, 'names use letters, digits and _ and do not start with a digit');
      continue;
    }
    out[e.key] = toJS(e.node);
    positions.set(e.key, e.pos);
    recordNodePositions(yf, e.node, e.key, positions);
  }
  setPositions(out, positions);
  return out;
}

export { describe as describeNode };
