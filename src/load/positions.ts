/**
 * Where each variable's value was written. Loaders register, for a vars object they build, the
 * position of every value by its dotted path (`hugepages.count`, `vfio_ids.1`), so that a check
 * made later (argument specs, at load) can point at the exact value in the exact file.
 */
import { isMap, isScalar, isSeq, type Node, type Pair } from 'yaml';
import type { Pos } from '../model/types.ts';

/** A YAML node (or nothing), and what turns one into a position: yaml.ts's YamlFile. */
type YNode = Node | null | undefined;
interface Positioned {
  pos(node: YNode): Pos;
}

const REGISTRY = new WeakMap<object, Map<string, Pos>>();

/** Remember the positions of a vars object's values (replacing earlier ones). */
export function setPositions(vars: object, positions: Map<string, Pos>): void {
  REGISTRY.set(vars, positions);
}

/** The positions registered for a vars object (empty when none). */
export function positionsOf(vars: object): Map<string, Pos> {
  return REGISTRY.get(vars) ?? new Map();
}

/** Position of the value at `path` (or of the closest enclosing value that has one). */
export function positionOf(vars: object, path: string): Pos | undefined {
  const m = REGISTRY.get(vars);
  if (!m) return undefined;
  let p = path;
  for (;;) {
    const hit = m.get(p);
    if (hit) return hit;
    const i = p.lastIndexOf('.');
    if (i < 0) return undefined;
    p = p.slice(0, i);
  }
}

/** Record the position of `node` at `path` and of everything inside it (depth-bounded). */
export function recordNodePositions(yf: Positioned, node: YNode, path: string, into: Map<string, Pos>, depth = 0): void {
  if (!node || depth > 32) return;
  if ((node as { range?: unknown }).range) into.set(path, yf.pos(node));
  if (isScalar(node)) return;
  if (isSeq(node)) node.items.forEach((item, i) => recordNodePositions(yf, item as YNode, `${path}.${i}`, into, depth + 1));
  else if (isMap(node)) {
    for (const pair of node.items as Pair[]) {
      const k = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (k !== undefined) recordNodePositions(yf, pair.value as YNode, `${path}.${k}`, into, depth + 1);
    }
  }
}

/** Copy the positions of `key` and everything under it from one map to another. */
export function copyPositions(from: Map<string, Pos>, to: Map<string, Pos>, key: string): void {
  for (const k of [...to.keys()]) if (k === key || k.startsWith(`${key}.`)) to.delete(k);
  for (const [k, p] of from) if (k === key || k.startsWith(`${key}.`)) to.set(k, p);
}
