// The lab's imitation of the guest side of Proxmox VE: `qm config|set|create|pending|start`,
// `pct config|set`, and `pvesh get|create|set|delete` for /cluster/mapping/pci and
// /nodes/NODE/hardware/pci. It reads and writes the real file formats under /etc/pve (one
// directory shared by the members of a lab cluster, bind-mounted as /etc/pve on each):
//   qemu-server PVE::QemuServer::parse_vm_config / write_vm_config (`key: value` sorted,
//     `#` description lines first, `[PENDING]` with `delete:`, snapshots as `[name]`)
//   pve-common PVE::SectionConfig + pve-guest-common PVE::Mapping::PCI for mapping/pci.cfg
//   pve-manager PVE::API2::Cluster::Mapping::PCI for the API (digest guard, --check-node checks)
// and refuses what they refuse, with their messages. Usage: node pve.mjs qm|pct|pvesh ARGS...
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmdirSync, writeFileSync, readlinkSync, statSync } from 'node:fs';
import { join, basename } from 'node:path';
import { hostname } from 'node:os';

const LAB_NODE = process.env.LAB_NODE;
const LAB_DIR = process.env.LAB_DIR;
const ME = hostname();
const PVE = '/etc/pve';
const RUN = join(LAB_NODE, 'gen/run');

class ApiError extends Error {
  constructor(msg, code = 255) {
    super(msg);
    this.code = code;
  }
}
const die = (msg, code = 255) => {
  throw new ApiError(msg, code);
};
const sha1 = (s) => createHash('sha1').update(s).digest('hex');
const read = (p) => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
};
function writeAtomic(p, content) {
  const tmp = `${p}.tmp.${process.pid}`;
  writeFileSync(tmp, content);
  renameSync(tmp, p);
}

// ------------------------------------------------------------------ cluster state

function clusterName() {
  return (read(join(LAB_NODE, 'cluster')) ?? '').trim() || null;
}
function members() {
  const c = clusterName();
  if (!c) return [ME];
  return (read(join(LAB_DIR, 'clusters', c, 'members')) ?? '').split('\n').filter(Boolean);
}
function nodeUp(n) {
  return (read(join(LAB_DIR, 'nodes', n, 'state')) ?? '').trim() === 'up';
}
/** pmxcfs refuses writes without quorum. */
function assertQuorate() {
  const m = members();
  if (m.length === 1) return;
  const up = m.filter(nodeUp).length;
  if (up < Math.floor(m.length / 2) + 1) die("cluster not ready - no quorum?\n");
}
/** cfs_lock_file: one writer at a time (mkdir is atomic on the shared directory). */
function withLock(name, fn) {
  const dir = join(PVE, 'priv', 'lock', name);
  mkdirSync(join(PVE, 'priv', 'lock'), { recursive: true });
  const until = Date.now() + 10000;
  for (;;) {
    try {
      mkdirSync(dir);
      break;
    } catch {
      if (Date.now() > until) die(`cfs-lock '${name}' error: got lock request timeout\n`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    return fn();
  } finally {
    rmdirSync(dir);
  }
}

// ------------------------------------------------------------------ property strings

function parseProps(v, defaultKey) {
  const o = {};
  for (const part of v.split(',')) {
    if (part === '') continue;
    const i = part.indexOf('=');
    if (i < 0) {
      if (defaultKey && o[defaultKey] === undefined) o[defaultKey] = part;
      else die(`400 Parameter verification failed.\nvalue '${v}': invalid format - missing key in comma-separated list property\n`);
    } else {
      const k = part.slice(0, i);
      if (o[k] !== undefined) die(`400 Parameter verification failed.\nvalue '${v}': invalid format - duplicate key in comma-separated list property: ${k}\n`);
      o[k] = part.slice(i + 1);
    }
  }
  return o;
}
const PCI_RE = '(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\\.[a-f0-9])?';
// Proxmox VE's own schema booleans (what `qm set` accepts), simulated; not passthru's truth tables (src/model/truth.ts).
const BOOL = /^(0|1|yes|no|on|off|true|false)$/i;
const CONFIGID = /^[a-z][a-z0-9_-]+$/i;

/** Check a property string against a format: key → RegExp | 'bool' | 'int'. */
function checkFormat(param, value, fmt, defaultKey, required = []) {
  const o = parseProps(value, defaultKey);
  const errs = [];
  for (const [k, v] of Object.entries(o)) {
    const f = fmt[k];
    if (!f) errs.push(`${param}.${k}: property is not defined in schema and the schema does not allow additional properties`);
    else if (f === 'bool' && !BOOL.test(v)) errs.push(`${param}.${k}: type check ('boolean') failed - got '${v}'`);
    else if (f === 'int' && !/^-?\d+$/.test(v)) errs.push(`${param}.${k}: type check ('integer') failed - got '${v}'`);
    else if (f instanceof RegExp && !f.test(v)) errs.push(`${param}.${k}: value does not match the regex pattern`);
  }
  for (const r of required) if (o[r] === undefined) errs.push(`${param}.${r}: property is missing and it is not optional`);
  if (errs.length) die(`400 Parameter verification failed.\n${param}: invalid format - format error\n${errs.join('\n')}\n`);
  return o;
}

// ------------------------------------------------------------------ VM configs

function parseVmConfig(raw, kind) {
  const res = { main: {}, descr: [], pending: null, sections: [] };
  let cur = res.main;
  let rawSection = null;
  const pendingRe = kind === 'qm' ? /^\[PENDING\]\s*$/i : /^\[pve:pending\]\s*$/i;
  for (const line of raw.split('\n')) {
    if (/^\s*$/.test(line)) continue;
    if (pendingRe.test(line)) {
      cur = res.pending = {};
      rawSection = null;
      continue;
    }
    if (/^\[[^\]]*\]\s*$/.test(line)) {
      // snapshots and special sections are kept verbatim
      rawSection = { header: line, lines: [] };
      res.sections.push(rawSection);
      cur = null;
      continue;
    }
    if (rawSection) {
      rawSection.lines.push(line);
      continue;
    }
    const c = /^#(.*)$/.exec(line);
    if (c) {
      if (cur === res.main) res.descr.push(c[1]);
      continue;
    }
    const kv = /^([a-z][a-z0-9_.-]*):\s*(.*?)\s*$/i.exec(line) ?? /^(lxc\.[a-z0-9_.-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (kv && cur) {
      if (kv[1].startsWith('lxc.')) (cur.__lxc ??= []).push([kv[1], kv[2]]);
      else cur[kv[1]] = kv[2];
    }
  }
  return res;
}

function writeVmConfig(c, kind) {
  const gen = (conf) => {
    let out = '';
    for (const k of Object.keys(conf).filter((k) => k !== '__lxc').sort()) out += `${k}: ${conf[k]}\n`;
    for (const [k, v] of conf.__lxc ?? []) out += `${k}: ${v}\n`;
    return out;
  };
  let raw = c.descr.map((d) => `#${d}\n`).join('') + gen(c.main);
  if (c.pending && Object.keys(c.pending).length) raw += `\n${kind === 'qm' ? '[PENDING]' : '[pve:pending]'}\n` + gen(c.pending);
  for (const s of c.sections) raw += `\n${s.header}\n${s.lines.join('\n')}\n`;
  return raw;
}

function confDir(kind, node = ME) {
  return join(PVE, 'nodes', node, kind === 'qm' ? 'qemu-server' : 'lxc');
}
function confPath(kind, id, node = ME) {
  return join(confDir(kind, node), `${id}.conf`);
}
function loadGuest(kind, id) {
  if (!/^\d+$/.test(id ?? '')) die(`400 Parameter verification failed.\nvmid: type check ('integer') failed - got '${id ?? ''}'\n`);
  const p = confPath(kind, id);
  const raw = read(p);
  if (raw === null) die(`Configuration file 'nodes/${ME}/${kind === 'qm' ? 'qemu-server' : 'lxc'}/${id}.conf' does not exist\n`, 2);
  return { path: p, raw, conf: parseVmConfig(raw, kind) };
}

// guests.tsv holds the run state (qm list): kind id name status mem disk pid
function guestRows() {
  return (read(join(RUN, 'guests.tsv')) ?? '').split('\n').filter(Boolean).map((l) => l.split('\t'));
}
function saveRows(rows) {
  writeAtomic(join(RUN, 'guests.tsv'), rows.map((r) => r.join('\t')).join('\n') + (rows.length ? '\n' : ''));
}
function isRunning(kind, id) {
  return guestRows().some((r) => r[0] === kind && r[1] === id && r[3] === 'running');
}

/** Options applied at once even on a running VM (qemu-server's fast-plug options). */
const FASTPLUG = new Set(['name', 'description', 'onboot', 'protection', 'tags', 'startup', 'lock']);

const CPU_TYPES = /^(host|max|kvm64|kvm32|qemu64|qemu32|x86-64-v2|x86-64-v2-AES|x86-64-v3|x86-64-v4|Skylake-Client|Cascadelake-Server|EPYC|EPYC-Rome|EPYC-Milan|Icelake-Server|SapphireRapids)$/;
const HOSTPCI_FMT = {
  host: new RegExp(`^${PCI_RE}(;${PCI_RE})*$`, 'i'),
  mapping: CONFIGID,
  rombar: 'bool',
  romfile: /^[^,;]+$/,
  pcie: 'bool',
  'x-vga': 'bool',
  'legacy-igd': 'bool',
  mdev: /^[^/.:]+$/,
  'vendor-id': /^0x[0-9a-fA-F]{4}$/,
  'device-id': /^0x[0-9a-fA-F]{4}$/,
  'sub-vendor-id': /^0x[0-9a-fA-F]{4}$/,
  'sub-device-id': /^0x[0-9a-fA-F]{4}$/,
  driver: /^(vfio|keep)$/,
};
const STORAGE_VOL = /^[a-z][a-z0-9_.-]*:[^,]+$/i;

/** Validate one `qm set` option as qemu-server's schema does; returns the value to store. */
function qmValue(key, v, vmid, conf) {
  const bad = (why) => die(`400 Parameter verification failed.\n${key}: ${why}\n`);
  if (/^hostpci\d+$/.test(key)) {
    if (Number(key.slice(7)) > 15) bad('property is not defined in schema and the schema does not allow additional properties');
    const o = checkFormat(key, v, HOSTPCI_FMT, 'host');
    if (o.host !== undefined && o.mapping !== undefined) die("Cannot set both 'host' and 'mapping'.\n");
    if (o.host === undefined && o.mapping === undefined) die("either 'host' or 'mapping' must be set.\n");
    return v;
  }
  if (/^usb\d+$/.test(key)) {
    checkFormat(key, v, { host: /^(?:(?:0x)?[0-9a-f]{4}:(?:0x)?[0-9a-f]{4}|\d+-\d+(\.\d+)*|spice)$/i, mapping: CONFIGID, usb3: 'bool' }, 'host');
    return v;
  }
  switch (key) {
    case 'machine':
      if (!/^(pc|q35|pc-(i440fx|q35)-\d+\.\d+(\+pve\d+)?)(,viommu=(intel|virtio))?$/.test(v)) bad(`value does not match the regex pattern`);
      return v;
    case 'bios':
      if (!/^(seabios|ovmf)$/.test(v)) bad(`value '${v}' does not have a value in the enumeration 'seabios, ovmf'`);
      return v;
    case 'cpu': {
      const o = checkFormat(key, v, { cputype: /./, hidden: 'bool', 'hv-vendor-id': /^[a-zA-Z0-9]{1,12}$/, flags: /^[+-][a-z0-9_-]+(;[+-][a-z0-9_-]+)*$/i, 'phys-bits': /^(host|\d+)$/, 'guest-phys-bits': /^\d+$/ }, 'cputype');
      if (o.cputype && !CPU_TYPES.test(o.cputype)) die(`400 Parameter verification failed.\ncpu: value '${o.cputype}' does not have a value in the enumeration of built-in models and is not a custom model\n`);
      return v;
    }
    case 'hugepages':
      if (!/^(any|2|1024)$/.test(v)) bad(`value '${v}' does not have a value in the enumeration 'any, 2, 1024'`);
      return v;
    case 'numa':
    case 'onboot':
    case 'balloon':
    case 'agent':
      if (key === 'balloon' ? !/^\d+$/.test(v) : !BOOL.test(v.split(',')[0])) bad(`type check ('boolean') failed - got '${v}'`);
      return v;
    case 'memory':
      if (!/^\d+$/.test(v.replace(/^current=/, ''))) bad(`type check ('integer') failed - got '${v}'`);
      if (Number(v.replace(/^current=/, '')) < 16) bad('value must have a minimum value of 16');
      return v;
    case 'cores':
    case 'sockets':
    case 'vcpus':
      if (!/^\d+$/.test(v) || Number(v) < 1) bad(`type check ('integer') failed - got '${v}'`);
      return v;
    case 'affinity':
      if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v)) bad('invalid format - value does not look like a valid CPU affinity (e.g. 0,2-5)');
      return v;
    case 'args':
    case 'name':
    case 'description':
    case 'tags':
    case 'ostype':
    case 'vga':
    case 'scsihw':
    case 'boot':
    case 'net0':
    case 'scsi0':
    case 'virtio0':
    case 'sata0':
    case 'ide2':
    case 'smbios1':
    case 'vmgenid':
    case 'meta':
      if (key === 'name' && !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(v)) bad('value does not match the regex pattern');
      if (key === 'ostype' && !/^(other|wxp|w2k|w2k3|w2k8|wvista|win7|win8|win10|win11|l24|l26|solaris)$/.test(v)) bad(`value '${v}' does not have a value in the enumeration`);
      return v;
    case 'efidisk0':
    case 'tpmstate0': {
      const o = parseProps(v, 'file');
      if (!o.file || !STORAGE_VOL.test(o.file)) bad("invalid format - format error\nfile: value does not look like a valid volume");
      if (key === 'tpmstate0' && o.version && !/^v(1\.2|2\.0)$/.test(o.version)) bad("invalid format - version: value 'x' does not have a value in the enumeration 'v1.2, v2.0'");
      // STORAGE:SIZE allocates a new volume, as qemu-server does (size 0 for an EFI vars disk).
      const m = /^([a-z][a-z0-9_.-]*):(\d+(?:\.\d+)?)$/i.exec(o.file);
      if (m) {
        const n = nextDiskNo(vmid, conf);
        const size = key === 'efidisk0' ? (o.efitype === '4m' ? '4M' : '128K') : '4M';
        const rest = Object.entries(o).filter(([k]) => k !== 'file').map(([k, x]) => `${k}=${x}`);
        return [`${m[1]}:vm-${vmid}-disk-${n}`, ...rest, `size=${size}`].join(',');
      }
      return v;
    }
    default:
      bad('property is not defined in schema and the schema does not allow additional properties');
  }
}

function nextDiskNo(vmid, conf) {
  const used = new Set();
  for (const v of Object.values({ ...conf.main, ...(conf.pending ?? {}) })) {
    const m = new RegExp(`vm-${vmid}-disk-(\\d+)`).exec(String(v));
    if (m) used.add(Number(m[1]));
  }
  let n = 0;
  while (used.has(n)) n++;
  return n;
}

/** `--key value` pairs (a flag given twice keeps both, in order). */
function parseArgs(args) {
  const out = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--') && !(a.startsWith('-') && a.length > 1 && !/^-\d/.test(a))) die(`400 unable to parse option '${a}'\n`);
    const k = a.replace(/^--?/, '');
    const eq = k.indexOf('=');
    if (eq >= 0) out.push([k.slice(0, eq), k.slice(eq + 1)]);
    else if (i + 1 < args.length && !args[i + 1].startsWith('--')) out.push([k, args[++i]]);
    else out.push([k, '1']);
  }
  return out;
}

function qmSet(kind, id, args) {
  const pairs = parseArgs(args);
  assertQuorate();
  return withLock(`${kind === 'qm' ? 'lock' : 'lxc'}-${id}`, () => {
    const g = loadGuest(kind, id);
    const conf = g.conf;
    let digest = null;
    let del = [];
    const set = [];
    for (const [k, v] of pairs) {
      if (k === 'digest') digest = v;
      else if (k === 'delete') del.push(...v.split(/[,;\s]+/).filter(Boolean));
      else if (k === 'skiplock' || k === 'force') continue;
      else set.push([k, v]);
    }
    if (digest && digest !== sha1(g.raw)) die('detected modified configuration - file changed by other user? Try again.\n');
    if (conf.main.lock) die(`VM is locked (${conf.main.lock})\n`);
    const seen = new Set();
    for (const [k] of set) {
      if (seen.has(k)) die(`400 Parameter verification failed.\n${k}: duplicate parameter\n`);
      seen.add(k);
      if (del.includes(k)) die(`cannot set and delete '${k}' at the same time\n`);
    }
    const values = set.map(([k, v]) => [k, kind === 'qm' ? qmValue(k, v, id, conf) : pctValue(k, v)]);
    const running = isRunning(kind, id);
    for (const [k, v] of values) {
      // pve-container vmconfig_hotplug_pending: a devN not yet in the config is hot-plugged into a
      // running container (applied at once); one that replaces an existing entry waits.
      const hotplug = kind === 'pct' && /^dev\d+$/.test(k) && !(k in conf.main);
      if (running && !FASTPLUG.has(k) && !hotplug) {
        conf.pending ??= {};
        conf.pending[k] = v;
        if (conf.pending.delete) conf.pending.delete = conf.pending.delete.split(',').filter((x) => x !== k).join(',') || undefined;
        if (conf.pending.delete === undefined) delete conf.pending.delete;
      } else if (k === 'description') {
        conf.descr = v.split('\n');
      } else conf.main[k] = v;
    }
    for (const k of del) {
      if (running && !FASTPLUG.has(k)) {
        conf.pending ??= {};
        delete conf.pending[k];
        const d = new Set((conf.pending.delete ?? '').split(',').filter(Boolean));
        if (k in conf.main) d.add(k);
        if (d.size) conf.pending.delete = [...d].join(',');
      } else delete conf.main[k];
    }
    writeAtomic(g.path, writeVmConfig(conf, kind));
    const shown = [...values.map(([k, v]) => `-${k} '${v}'`), ...(del.length ? [`-delete ${del.join(',')}`] : [])];
    if (kind === 'qm') process.stdout.write(`update VM ${id}: ${shown.join(' ')}\n`);
  });
}

function pctValue(key, v) {
  const bad = (why) => die(`400 Parameter verification failed.\n${key}: ${why}\n`);
  if (/^dev\d+$/.test(key)) {
    // pve-container PVE::LXC::Config $dev_desc (mode pattern 0[0-7]{3}, uid/gid integers >= 0),
    // verify_lxc_dev_string, parse_device, then update_pct_config's
    // PVE::LXC::Tools::get_device_mode_and_rdev (the path must be a device on this node).
    const o = checkFormat(key, v, { path: /^[^,]*$/, mode: /^0[0-7]{3}$/, uid: /^\d+$/, gid: /^\d+$/, 'deny-write': 'bool' }, 'path');
    if (o.path !== undefined && (/\/\.\.?(?:\/|$)/.test(o.path) || !o.path.startsWith('/dev/')))
      die(`400 Parameter verification failed.\n${key}: invalid format - ${o.path} is not a valid device path\n`);
    if (o.path === undefined) die('Path has to be defined\n');
    let st;
    try {
      st = statSync(o.path);
    } catch {
      die(`Device ${o.path} does not exist\n`);
    }
    if (!st.isCharacterDevice() && !st.isBlockDevice()) die(`${o.path} is not a device\n`);
    return v;
  }
  if (/^(mp|net)\d+$/.test(key) || ['hostname', 'memory', 'swap', 'cores', 'onboot', 'description', 'features', 'tags', 'rootfs', 'unprivileged'].includes(key)) return v;
  bad('property is not defined in schema and the schema does not allow additional properties');
}

function printConfig(kind, id, current) {
  const g = loadGuest(kind, id);
  const c = g.conf;
  const eff = { ...c.main };
  if (!current && c.pending) {
    for (const [k, v] of Object.entries(c.pending)) if (k !== 'delete' && k !== '__lxc') eff[k] = v;
    for (const k of (c.pending.delete ?? '').split(',').filter(Boolean)) delete eff[k];
  }
  let out = '';
  if (c.descr.length) out += `description: ${c.descr.join('\n').replace(/\n/g, '%0A')}\n`;
  eff.digest = sha1(g.raw);
  for (const k of Object.keys(eff).filter((k) => k !== '__lxc').sort()) out += `${k}: ${eff[k]}\n`;
  for (const [k, v] of c.main.__lxc ?? []) out += `${k}: ${v}\n`;
  process.stdout.write(out);
}

function vmidInUse(id) {
  for (const n of readdirSync(join(PVE, 'nodes'))) {
    if (existsSync(confPath('qm', id, n)) || existsSync(confPath('pct', id, n))) return n;
  }
  return null;
}

function qmCreate(id, args) {
  if (!/^\d+$/.test(id ?? '') || Number(id) < 100) die(`400 Parameter verification failed.\nvmid: value must have a minimum value of 100\n`);
  assertQuorate();
  withLock(`vmid-${id}`, () => {
    const on = vmidInUse(id);
    if (on) die(`unable to create VM ${id} - VM ${id} already exists on node '${on}'\n`);
    const conf = { main: {}, descr: [], pending: null, sections: [] };
    for (const [k, v] of parseArgs(args)) {
      if (k === 'start') continue;
      conf.main[k] = qmValue(k, v, id, conf);
    }
    conf.main.smbios1 ??= `uuid=${randomUUID()}`;
    conf.main.vmgenid ??= randomUUID();
    conf.main.meta ??= `creation-qemu=9.0.2,ctime=${Math.floor(Date.now() / 1000)}`;
    mkdirSync(confDir('qm'), { recursive: true });
    writeAtomic(confPath('qm', id), writeVmConfig(conf, 'qm'));
    const rows = guestRows();
    rows.push(['qm', id, conf.main.name ?? `VM ${id}`, 'stopped', conf.main.memory ?? '2048', '0.00', '0']);
    saveRows(rows);
  });
}

// ------------------------------------------------------------------ PCI devices (sysfs) of a node

/** PVE::SysFSTools::pci_device_info for a node of the lab, read from its booted sysfs. */
function pciInfo(node, addr) {
  const base = node === ME ? '/sys/bus/pci/devices' : join(LAB_DIR, 'nodes', node, 'gen/sys/bus/pci/devices');
  const d = join(base, addr);
  if (!existsSync(join(d, 'vendor'))) return null;
  const rd = (f) => (read(join(d, f)) ?? '').trim();
  let group = null;
  try {
    group = Number(basename(readlinkSync(join(d, 'iommu_group'))));
  } catch {
    /* no IOMMU */
  }
  const sv = rd('subsystem_vendor');
  const sd = rd('subsystem_device');
  return {
    id: addr,
    vendor: rd('vendor'),
    device: rd('device'),
    class: rd('class'),
    subsystem_vendor: sv || undefined,
    subsystem_device: sd || undefined,
    iommugroup: group ?? -1,
    mdev: existsSync(join(d, 'mdev_supported_types')) ? 1 : undefined,
  };
}
function listPci(node) {
  const base = node === ME ? '/sys/bus/pci/devices' : join(LAB_DIR, 'nodes', node, 'gen/sys/bus/pci/devices');
  let names = [];
  try {
    names = readdirSync(base).sort();
  } catch {
    /* none */
  }
  return names.map((a) => pciInfo(node, a)).filter(Boolean);
}
const strip0x = (s) => String(s ?? '').replace(/0x/g, '');

// ------------------------------------------------------------------ mapping/pci.cfg

const MAPFILE = join(PVE, 'mapping', 'pci.cfg');
const MAP_FMT = {
  node: /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/,
  id: /^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$/,
  'subsystem-id': /^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$/,
  path: new RegExp(`^(?:[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:\\.[a-f0-9])?;)*[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:\\.[a-f0-9])?$`),
  iommugroup: 'int',
  description: /^.{0,4096}$/,
};

function readMappings() {
  const raw = read(MAPFILE) ?? '';
  const ids = new Map();
  let cur = null;
  for (const line of raw.split('\n')) {
    if (/^\s*#/.test(line)) continue;
    if (line.trim() === '') {
      cur = null;
      continue;
    }
    const h = /^(\S+)\s*$/.exec(line);
    if (h) {
      cur = { map: [] };
      ids.set(h[1], cur);
      continue;
    }
    const p = /^\s+(\S+)(?:\s+(.*\S))?\s*$/.exec(line);
    if (!p || !cur) continue;
    if (p[1] === 'map') cur.map.push(p[2] ?? '');
    else cur[p[1]] = p[2] ?? '';
  }
  return { ids, digest: sha1(raw) };
}
function writeMappings(ids) {
  let out = '';
  for (const [id, m] of ids) {
    out += `${id}\n`;
    for (const e of m.map) out += `\tmap ${e}\n`;
    for (const k of ['description', 'live-migration-capable', 'mdev']) if (m[k] !== undefined && m[k] !== '') out += `\t${k} ${m[k]}\n`;
    out += '\n';
  }
  mkdirSync(join(PVE, 'mapping'), { recursive: true });
  writeAtomic(MAPFILE, out);
}
/** PVE::Mapping::PCI::assert_valid for one entry, against the node's hardware. */
function assertValid(name, entry, mdevCfg, node) {
  const paths = (entry.path ?? '').split(';');
  paths.forEach((p0, idx) => {
    const path = /\.[a-f0-9]$/i.test(p0) ? p0 : `${p0}.0`;
    const info = pciInfo(node, path);
    if (!info) throw new Error(`pci device '${path}' not found\n`);
    const expected = { id: `${strip0x(info.vendor)}:${strip0x(info.device)}`, iommugroup: info.iommugroup >= 0 ? String(info.iommugroup) : undefined, 'subsystem-id': undefined, mdev: info.mdev ? '1' : '0' };
    if (info.subsystem_vendor && info.subsystem_device) expected['subsystem-id'] = `${strip0x(info.subsystem_vendor)}:${strip0x(info.subsystem_device)}`;
    const configured = { id: entry.id, iommugroup: entry.iommugroup, 'subsystem-id': entry['subsystem-id'], mdev: mdevCfg ? '1' : '0' };
    for (const prop of Object.keys(expected).sort()) {
      if (prop === 'iommugroup' && idx > 0) continue;
      const e = expected[prop];
      const c = configured[prop];
      if (e === undefined && c === undefined) continue;
      if (e !== undefined && c === undefined) throw new Error(`missing expected property '${prop}' for device '${path}'\n`);
      if (e === undefined && c !== undefined) throw new Error(`unexpected property '${prop}' configured for device '${path}'\n`);
      if (strip0x(e) !== strip0x(c)) throw new Error(`'${prop}' does not match for '${name}' (${strip0x(e)} != ${strip0x(c)})\n`);
    }
  });
}
function mappingParams(pairs, creating) {
  const p = { map: [] };
  for (const [k, v] of pairs) {
    if (k === 'map') p.map.push(checkFormat('map', v, MAP_FMT, undefined, ['node', 'id', 'path']) && v);
    else if (['id', 'description', 'mdev', 'live-migration-capable', 'digest', 'delete', 'output-format'].includes(k)) p[k] = v;
    else die(`400 Parameter verification failed.\n${k}: property is not defined in schema and the schema does not allow additional properties\n`);
  }
  if (creating && !p.id) die('400 Parameter verification failed.\nid: property is missing and it is not optional\n');
  if (p.id !== undefined && !CONFIGID.test(p.id)) die(`400 Parameter verification failed.\nid: invalid format - invalid configuration ID '${p.id}'\n`);
  if (creating && !p.map.length) die('400 Parameter verification failed.\nmap: property is missing and it is not optional\n');
  for (const b of ['mdev', 'live-migration-capable']) if (p[b] !== undefined && !BOOL.test(p[b])) die(`400 Parameter verification failed.\n${b}: type check ('boolean') failed - got '${p[b]}'\n`);
  return p;
}
/** SectionConfig stores each map item as given; normalise key order to Proxmox's (sorted). */
const canonMap = (v) => Object.entries(parseProps(v)).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => `${k}=${x}`).join(',');

function output(data, fmt) {
  if (fmt === 'json') process.stdout.write(JSON.stringify(data) + '\n');
  else if (fmt === 'json-pretty') process.stdout.write(JSON.stringify(data, null, 4) + '\n');
  else if (fmt === 'yaml') die('400 Parameter verification failed.\noutput-format: yaml is not supported by this lab\n');
  else {
    // text: one block per object, `key value` lines (pvesh's plain rendering is a table; the
    // lab prints the same data as key/value lines)
    const objs = Array.isArray(data) ? data : [data];
    for (const o of objs) {
      for (const [k, v] of Object.entries(o)) process.stdout.write(`${k}: ${Array.isArray(v) ? v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : x)).join('\n  ') : v}\n`);
      process.stdout.write('\n');
    }
  }
}

function pvesh(cmd, path, args) {
  if (!['get', 'create', 'set', 'delete', 'ls', 'usage'].includes(cmd ?? '')) die(`ERROR: unknown command 'pvesh ${cmd ?? ''}'\n`);
  if (!path) die('400 not enough arguments\n');
  const pairs = parseArgs(args);
  const fmt = pairs.find(([k]) => k === 'output-format')?.[1];
  const rest = pairs.filter(([k]) => k !== 'output-format' && k !== 'noborder' && k !== 'noheader' && k !== 'human-readable');
  const p = path.replace(/\/+$/, '');
  let m;
  if (cmd === 'get' && (m = /^\/nodes\/([^/]+)\/hardware\/pci$/.exec(p))) {
    const node = m[1] === 'localhost' ? ME : m[1];
    if (!members().includes(node)) die(`hostname lookup '${node}' failed - failed to get address info for: ${node}: Name or service not known\n`);
    if (!nodeUp(node)) die(`500 Can't connect to ${node}:8006 (No route to host)\n`);
    for (const [k] of rest) if (k !== 'pci-class-blacklist' && k !== 'verbose') die(`400 Parameter verification failed.\n${k}: property is not defined in schema and the schema does not allow additional properties\n`);
    const bl = rest.find(([k]) => k === 'pci-class-blacklist')?.[1] ?? '05;06;0b';
    const black = bl.split(/[;,]/).filter(Boolean);
    const list = listPci(node).filter((d) => !black.some((b) => strip0x(d.class).startsWith(b)));
    return output(list, fmt);
  }
  if (p === '/cluster/mapping/pci' && cmd === 'get') {
    const checkNode = rest.find(([k]) => k === 'check-node')?.[1];
    for (const [k] of rest) if (k !== 'check-node') die(`400 Parameter verification failed.\n${k}: property is not defined in schema and the schema does not allow additional properties\n`);
    if (checkNode !== undefined) {
      // The API proxies to the node to check; it must be a member and reachable.
      if (!members().includes(checkNode)) die(`hostname lookup '${checkNode}' failed - failed to get address info for: ${checkNode}: Name or service not known\n`);
      if (!nodeUp(checkNode)) die(`500 Can't connect to ${checkNode}:8006 (No route to host)\n`);
    }
    const { ids, digest } = readMappings();
    const res = [];
    for (const [id, e] of ids) {
      const entry = { ...e, id, digest };
      if (checkNode !== undefined) {
        entry.checks = [];
        const mine = e.map.map((x) => parseProps(x)).filter((x) => x.node === checkNode);
        if (!mine.length) entry.checks.push({ severity: 'warning', message: `No mapping for node ${checkNode}.` });
        for (const x of mine) {
          try {
            assertValid(id, x, e.mdev === '1', checkNode);
          } catch (err) {
            entry.checks.push({ severity: 'error', message: `Invalid configuration: ${err.message}` });
          }
        }
      }
      res.push(entry);
    }
    return output(res, fmt);
  }
  if ((m = /^\/cluster\/mapping\/pci\/([^/]+)$/.exec(p)) && cmd === 'get') {
    const { ids, digest } = readMappings();
    const e = ids.get(m[1]);
    if (!e) die(`mapping '${m[1]}' not found\n`);
    return output({ ...e, digest }, fmt);
  }
  if (p === '/cluster/mapping/pci' && cmd === 'create') {
    const prm = mappingParams(rest, true);
    assertQuorate();
    withLock('file-mapping_pci', () => {
      const { ids } = readMappings();
      if (ids.has(prm.id)) die(`create hardware mapping failed: pci ID '${prm.id}' already defined\n`);
      const e = { map: prm.map.map(canonMap) };
      for (const k of ['description', 'mdev', 'live-migration-capable']) if (prm[k] !== undefined) e[k] = prm[k];
      ids.set(prm.id, e);
      writeMappings(ids);
    });
    return;
  }
  if ((m = /^\/cluster\/mapping\/pci\/([^/]+)$/.exec(p)) && cmd === 'set') {
    const prm = mappingParams(rest, false);
    assertQuorate();
    withLock('file-mapping_pci', () => {
      const { ids, digest } = readMappings();
      if (prm.digest && prm.digest !== digest) die('update hardware mapping failed: detected modified configuration - file changed by other user? Try again.\n');
      const e = ids.get(m[1]);
      if (!e) die(`update hardware mapping failed: pci ID '${m[1]}' does not exist\n`);
      for (const k of (prm.delete ?? '').split(/[,;\s]+/).filter(Boolean)) delete e[k];
      if (prm.map.length) e.map = prm.map.map(canonMap);
      for (const k of ['description', 'mdev', 'live-migration-capable']) if (prm[k] !== undefined) e[k] = prm[k];
      writeMappings(ids);
    });
    return;
  }
  if ((m = /^\/cluster\/mapping\/pci\/([^/]+)$/.exec(p)) && cmd === 'delete') {
    assertQuorate();
    withLock('file-mapping_pci', () => {
      const { ids } = readMappings();
      ids.delete(m[1]);
      writeMappings(ids);
    });
    return;
  }
  die(`No '${cmd}' handler defined for '${path}'\n`);
}

// ------------------------------------------------------------------ qm start: what a VM start checks

function qmStart(id) {
  const g = loadGuest('qm', id);
  if (isRunning('qm', id)) die(`VM ${id} already running\n`);
  const c = g.conf;
  // pending changes apply at start
  if (c.pending) {
    for (const [k, v] of Object.entries(c.pending)) if (k !== 'delete') c.main[k] = v;
    for (const k of (c.pending.delete ?? '').split(',').filter(Boolean)) delete c.main[k];
    c.pending = null;
  }
  const q35 = /q35/.test(c.main.machine ?? '');
  const { ids } = readMappings();
  const used = new Set();
  for (const k of Object.keys(c.main).filter((k) => /^hostpci\d+$/.test(k)).sort()) {
    const o = parseProps(c.main[k], 'host');
    let devs = [];
    if (o.mapping) {
      const e = ids.get(o.mapping);
      const mine = (e?.map ?? []).map((x) => parseProps(x)).filter((x) => x.node === ME);
      if (!mine.length) die(`PCI device mapping not found for '${o.mapping}'\n`);
      try {
        assertValid(o.mapping, mine[0], e.mdev === '1', ME);
      } catch (err) {
        die(`PCI device mapping invalid (hardware probably changed): ${err.message}`);
      }
      devs = mine[0].path.split(';');
    } else devs = o.host.split(';');
    if (o.pcie === '1' && !q35) die('q35 machine model is not enabled');
    for (const dv of devs) {
      const full = /^[a-f0-9]{4,}:/i.test(dv) && dv.split(':').length === 3 ? dv : `0000:${dv}`;
      const fns = /\.[0-7]$/.test(full) ? [full] : listPci(ME).map((x) => x.id).filter((a) => a.startsWith(`${full}.`));
      if (!fns.length) die(`no PCI device found for '${dv}'\n`);
      for (const f of fns) {
        if (used.has(f)) die(`device '${f}' assigned more than once\n`);
        used.add(f);
        // another running VM holding it
        for (const r of guestRows().filter((r) => r[0] === 'qm' && r[1] !== id && r[3] === 'running')) {
          const other = read(confPath('qm', r[1]));
          if (other && new RegExp(`hostpci\\d+:.*(${f.replace(/\.[0-7]$/, '').replace(/[.]/g, '\\.')}|mapping=${o.mapping ?? '\\0'})`).test(other)) die(`PCI device '${f}' already in use by VMID '${r[1]}'\n`);
        }
      }
    }
  }
  writeAtomic(g.path, writeVmConfig(c, 'qm'));
  const rows = guestRows().map((r) => (r[0] === 'qm' && r[1] === id ? [r[0], r[1], r[2], 'running', r[4], r[5], String(10000 + Math.floor(Math.random() * 50000))] : r));
  saveRows(rows);
}

// ------------------------------------------------------------------ main

function main(argv) {
  const [tool, cmd, ...rest] = argv;
  if (tool === 'pvesh') return pvesh(cmd, rest[0], rest.slice(1));
  if (tool === 'qm' || tool === 'pct') {
    const id = rest[0];
    switch (cmd) {
      case 'config': {
        const cur = parseArgs(rest.slice(1)).some(([k, v]) => k === 'current' && v !== '0');
        return printConfig(tool, id, cur);
      }
      case 'set':
        return qmSet(tool, id, rest.slice(1));
      case 'create':
        if (tool !== 'qm') break;
        return qmCreate(id, rest.slice(1));
      case 'start':
        if (tool !== 'qm') break;
        return qmStart(id);
      case 'pending': {
        const g = loadGuest(tool, id);
        const c = g.conf;
        const keys = new Set([...Object.keys(c.main), ...Object.keys(c.pending ?? {})].filter((k) => k !== 'delete' && k !== '__lxc'));
        const dels = (c.pending?.delete ?? '').split(',').filter(Boolean);
        for (const k of [...keys].sort()) {
          const cur = c.main[k];
          const nw = c.pending?.[k];
          if (dels.includes(k)) process.stdout.write(`del ${k}: ${cur}\n`);
          else if (nw !== undefined && cur !== undefined) process.stdout.write(`cur ${k}: ${cur}\nnew ${k}: ${nw}\n`);
          else if (nw !== undefined) process.stdout.write(`new ${k}: ${nw}\n`);
          else process.stdout.write(`cur ${k}: ${cur}\n`);
        }
        return;
      }
    }
    die(`400 unknown command '${tool} ${cmd}'\n`);
  }
  die(`unknown tool ${tool}\n`);
}

try {
  main(process.argv.slice(2));
} catch (e) {
  if (e instanceof ApiError) {
    process.stderr.write(e.message.endsWith('\n') ? e.message : e.message + '\n');
    process.exit(e.code);
  }
  throw e;
}
