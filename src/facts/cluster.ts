/**
 * Facts of the Proxmox cluster and the guests of the node: `pvecm status` / `pvecm nodes`,
 * corosync.conf, `qm list` and `pct list`. Each probe section (a POSIX sh snippet) sits next to
 * its pure parser, and clusterFacts() turns the sections into their Facts fields. Parsers are
 * tested against real outputs in `test/fixtures/facts/`.
 */
import type { Facts } from './types.ts';
import { lines, nonEmpty, type ProbeSection, type SectionText } from './text.ts';

export const CLUSTER_SECTIONS: ProbeSection[] = [
  ['pvecm', `command -v pvecm >/dev/null 2>&1 && pvecm status 2>&1`],
  ['pvecm-nodes', `command -v pvecm >/dev/null 2>&1 && pvecm nodes 2>&1`],
  // Membership evidence that needs neither pmxcfs nor corosync running: the lines
  // grep -E '^[[:space:]]*(cluster_name|name)[[:space:]]*:' prints, matched with shell builtins.
  [
    'corosync',
    `for f in /etc/pve/corosync.conf /etc/corosync/corosync.conf; do [ -f "$f" ] || continue; echo "file $f"; ` +
      `{ while IFS= read -r __l || [ -n "$__l" ]; do __t=\${__l#"\${__l%%[![:space:]]*}"}; ` +
      `case "$__t" in cluster_name*) __t=\${__t#cluster_name} ;; name*) __t=\${__t#name} ;; *) continue ;; esac; ` +
      `__t=\${__t#"\${__t%%[![:space:]]*}"}; case "$__t" in :*) printf '%s\\n' "$__l" ;; esac; done; } < "$f" 2>/dev/null; done`,
  ],
  ['qm', `command -v qm >/dev/null 2>&1 && qm list 2>/dev/null`],
  ['pct', `command -v pct >/dev/null 2>&1 && pct list 2>/dev/null`],
];

/** The cluster sections → their Facts fields (`guests`: the running ones). */
export function clusterFacts(sec: SectionText): Pick<Facts, 'cluster' | 'guests'> {
  return {
    cluster: parseCluster({ status: sec('pvecm'), nodes: sec('pvecm-nodes'), corosync: sec('corosync') }),
    guests: [...parseQmList(sec('qm')), ...parsePctList(sec('pct'))].filter((g) => g.status === 'running'),
  };
}

// ---------------------------------------------------------------- cluster and guests

/**
 * `pvecm status` alone: the `Name:` of its "Cluster information" block (printed only when pmxcfs
 * could read /etc/pve/corosync.conf, see pve-cluster src/PVE/CLI/pvecm.pm) and the quorum
 * figures of `corosync-quorumtool -siH`. Its membership list shows corosync addresses (`-i`),
 * not names, so `nodes` stays empty here: names come from `pvecm nodes` (see parseCluster).
 */
export function parsePvecmStatus(text: string): Facts['cluster'] {
  const out: Facts['cluster'] = { name: null, quorate: false, expectedVotes: 0, totalVotes: 0, nodes: [] };
  for (const line of lines(text)) {
    const kv = /^([A-Za-z][A-Za-z ]*?):\s+(.*)$/.exec(line.trim());
    if (!kv) continue;
    const [, key, value] = kv;
    if (key === 'Name' && out.name === null) out.name = value.trim();
    else if (key === 'Quorate') out.quorate = /^yes/i.test(value.trim());
    else if (key === 'Expected votes') out.expectedVotes = Number.parseInt(value, 10) || 0;
    else if (key === 'Total votes') out.totalVotes = Number.parseInt(value, 10) || 0;
  }
  // Without a quorum block the tool printed an error (standalone, or corosync not answering).
  // The Name: line stays (printed before corosync-quorumtool ran).
  if (!hasQuorumBlock(text)) return { name: out.name, quorate: false, expectedVotes: 0, totalVotes: 0, nodes: [] };
  return out;
}

function hasQuorumBlock(text: string): boolean {
  return /^Quorum information|^Votequorum information/m.test(text);
}

/**
 * `pvecm nodes` (= `corosync-quorumtool -l`): member names, `(local)` marks this node.
 * `    Nodeid      Votes Name` / `         1          1 pve1 (local)`.
 */
export function parsePvecmNodes(text: string): string[] {
  const out: string[] = [];
  let inList = false;
  for (const line of lines(text)) {
    if (/^\s*Nodeid\s+Votes\s+(Qdevice\s+)?Name/.test(line)) {
      inList = true;
      continue;
    }
    if (!inList) continue;
    const m = /^\s*(?:0x)?[0-9a-fA-F]+\s+\d+\s+(?:[A-Z,]+\s+)?(\S+)(?:\s+\(local\))?\s*$/.exec(line);
    if (m && m[1] !== 'Qdevice') out.push(m[1]);
  }
  return out;
}

/**
 * The probe's corosync section: `file <path>` for each corosync.conf present, then the
 * `cluster_name:` and `name:` lines of that file (totem and nodelist).
 */
export function parseCorosyncSection(text: string): { files: string[]; clusterName: string | null; names: string[] } {
  const out = { files: [] as string[], clusterName: null as string | null, names: [] as string[] };
  for (const line of lines(text)) {
    const f = /^file (\/\S+)$/.exec(line.trim());
    if (f) {
      out.files.push(f[1]);
      continue;
    }
    const kv = /^\s*(cluster_name|name)\s*:\s*(\S+)\s*$/.exec(line);
    if (!kv) continue;
    if (kv[1] === 'cluster_name') out.clusterName ??= kv[2];
    else if (!out.names.includes(kv[2])) out.names.push(kv[2]);
  }
  return out;
}

export interface ClusterInput {
  /** `pvecm status` (stderr merged). */
  status: string;
  /** `pvecm nodes` (stderr merged). */
  nodes?: string;
  /** The probe's corosync section (parseCorosyncSection). */
  corosync?: string;
}

/**
 * Cluster membership from evidence that does not depend on the `Name:` line: a corosync.conf in
 * /etc/pve or /etc/corosync, members listed by `pvecm nodes`, or a quorum block in
 * `pvecm status`. A member whose `pvecm status` has no quorum block (corosync down: "Cannot
 * initialize CMAP service") is a member of unknown quorum (`quorumUnknown` says why): the reboot
 * coordinator refuses to reboot it.
 */
export function parseCluster(input: ClusterInput): Facts['cluster'] {
  const status = parsePvecmStatus(input.status);
  const conf = parseCorosyncSection(input.corosync ?? '');
  const listed = parsePvecmNodes(input.nodes ?? '');
  const quorumKnown = hasQuorumBlock(input.status);
  const member = conf.files.length > 0 || listed.length > 0 || quorumKnown;
  if (!member) return { ...status, member: false };
  const out: Facts['cluster'] = {
    ...status,
    name: status.name ?? conf.clusterName,
    member: true,
    nodes: listed.length > 0 ? listed : conf.names,
  };
  if (!quorumKnown) {
    const said = nonEmpty(input.status).map((l) => l.trim()).filter((l) => !/^-+$/.test(l));
    out.quorumUnknown = said.length ? said[said.length - 1] : '`pvecm status` printed nothing';
  }
  return out;
}

/** `qm list`: every VM with its status (running or not). */
export function parseQmList(text: string): Facts['guests'] {
  const out: Facts['guests'] = [];
  for (const line of nonEmpty(text)) {
    const m = /^\s*(\d+)\s+(.+?)\s+(running|stopped|paused|suspended|prelaunch|unknown)\s+\d+/.exec(line);
    if (m) out.push({ kind: 'qm', id: m[1], name: m[2].trim(), status: m[3] });
  }
  return out;
}

/** `pct list`: `VMID Status Lock Name` (the lock column may be empty). */
export function parsePctList(text: string): Facts['guests'] {
  const out: Facts['guests'] = [];
  for (const line of nonEmpty(text)) {
    const m = /^\s*(\d+)\s+(\S+)\s+(?:(\S+)\s+)?(\S+)\s*$/.exec(line);
    if (m) out.push({ kind: 'pct', id: m[1], name: m[4], status: m[2] });
  }
  return out;
}
