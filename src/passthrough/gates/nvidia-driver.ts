/**
 * The NVIDIA driver inside a Linux guest (role nvidia-driver): the preflight that refuses a host
 * that is not a Debian guest seeing an NVIDIA GPU, and computes the APT components and packages;
 * the gate that proves, on the booted guest, that `nvidia-smi` lists every NVIDIA GPU the guest sees.
 */
import type { Facts, PciDevice } from '../../facts/types.ts';
import { DEBIAN_RELEASES, DEBIAN_SOURCES, editDeb822, editOneLine, parseOsRelease, SOURCES_LIST, type SourcesEdit } from '../apt-sources.ts';
import { fail, pass, type CheckInput, type CheckResult } from './check.ts';

/** The `nvidia-smi` query the gate runs: one CSV row per GPU the driver drives. */
export const NVIDIA_SMI_QUERY = 'nvidia-smi --query-gpu=pci.bus_id,name,driver_version --format=csv,noheader';

/** NVIDIA display devices (vendor 10de, PCI class 03xx) the guest sees. */
export function nvidiaGpus(f: Facts): PciDevice[] {
  return f.pci.filter((d) => d.vendor.toLowerCase() === '10de' && d.class.startsWith('03'));
}

/** Packages of the driver, each pinned to `version` when one is given (they come from one source package). */
export function driverPackages(version: string): string[] {
  const pin = (p: string) => (version ? `${p}=${version}` : p);
  // Named, not left to Recommends: the apt module installs without recommends, and nvidia-smi
  // (the gate), libcuda1 (CUDA in containers) and the DKMS module are recommends of some of them.
  return [pin('nvidia-driver'), pin('nvidia-kernel-dkms'), pin('nvidia-smi'), pin('libcuda1'), 'firmware-misc-nonfree'];
}

/**
 * Headers for DKMS: those of the kernel the reboot boots (facts.kernelNext), and the flavour's
 * metapackage (`linux-headers-amd64` for `6.1.0-27-amd64`) so that a later kernel gets its headers
 * and the module rebuilt.
 */
export function headerPackages(f: Facts): string[] {
  const k = f.kernelNext || f.kernelRelease;
  // 6.1.0-27-amd64 (bookworm), 6.12.12+deb13-amd64 (trixie)
  const flavour = /^\d+\.\d+\.\d+(?:-\d+|\+deb\d+)-([a-z0-9][a-z0-9-]*)$/.exec(k)?.[1];
  return [`linux-headers-${k}`, ...(flavour ? [`linux-headers-${flavour}`] : [])];
}

/** Where the version pin lives (apt_preferences(5)). */
export const NVIDIA_PIN_PATH = '/etc/apt/preferences.d/passthru-nvidia-driver';

/**
 * The pin of `nvidia_driver_version`: every binary package built from the driver's source package
 * (nvidia-driver, its -libs, -kernel-dkms, -kernel-support, nvidia-smi, libcuda1, libnvidia-ml1, ...)
 * at that version, priority 1001 so that apt keeps it there (an `apt upgrade` too) and resolves the
 * exact-version dependencies of the named packages to it. `pkg=V` alone leaves those at their
 * candidate and fails whenever V is not the candidate. Empty when no version is asked.
 */
export function driverPin(version: string): string {
  if (!version) return '';
  return (
    '# passthru (role nvidia-driver): the NVIDIA driver stays at nvidia_driver_version\n' +
    'Package: src:nvidia-graphics-drivers\n' +
    `Pin: version ${version}\n` +
    'Pin-Priority: 1001\n'
  );
}

/** `535.216.01-1~deb12u1` → `535.216.01` (what nvidia-smi reports as driver_version). */
export const upstreamVersion = (v: string): string => v.replace(/^\d+:/, '').replace(/-[^-]*$/, '');

/**
 * Before anything changes in the guest: a Debian release the role knows (os-release), not a
 * Proxmox VE node, an NVIDIA GPU visible (lspci), and the Debian archive configured in
 * /etc/apt/sources.list or /etc/apt/sources.list.d/debian.sources. Data: the sources files with
 * the components added, the packages and the headers to install.
 */
export function preflightNvidiaDriver({ facts: f, vars, osRelease, aptSources }: CheckInput): CheckResult {
  if (f.pveVersion) {
    return fail(
      `expected a Linux guest (a VM that owns the GPU), found a Proxmox VE node (pve-manager ${f.pveVersion})`,
      'nvidia-driver goes inside the VM the GPU is passed through to: put the VM in the gpu_guests group, not the Proxmox node. Nothing was changed.',
    );
  }
  if (!osRelease) {
    return fail('expected /etc/os-release naming the distribution, found none', 'this role supports Debian 11, 12 and 13 guests. Nothing was changed.');
  }
  const os = parseOsRelease(osRelease);
  const rel = DEBIAN_RELEASES[os.codename];
  if (os.id !== 'debian' || !rel) {
    const found = os.prettyName || `${os.id || 'an unknown distribution'} ${os.versionId}`.trim();
    const hint =
      os.id === 'ubuntu' || /\bubuntu\b/i.test(osRelease)
        ? 'Ubuntu packages the driver differently (nvidia-driver-NNN in restricted; `ubuntu-drivers install`): not handled by this role.'
        : 'install the driver the way that distribution documents.';
    return fail(`expected Debian 11 (bullseye), 12 (bookworm) or 13 (trixie) in /etc/os-release, found ${found}`, `${hint} Nothing was changed.`);
  }
  const gpus = nvidiaGpus(f);
  if (gpus.length === 0) {
    const seen = f.pci.filter((d) => d.class.startsWith('03')).map((d) => `${d.address} ${d.id}${d.driver ? ` (${d.driver})` : ''}`);
    return fail(
      `expected an NVIDIA GPU (vendor 10de, class 03xx) visible in this guest, found ${seen.length ? `only ${seen.join(', ')}` : 'no display device'} in lspci`,
      "pass the GPU to this VM first (on its Proxmox node: hostpci0 of the VM, as playbooks/ai-vm.yaml's passthrough-vm stage does) and start the VM with it. Nothing was changed.",
    );
  }
  const edits: SourcesEdit[] = [];
  const list = aptSources?.[SOURCES_LIST];
  const deb822 = aptSources?.[DEBIAN_SOURCES];
  if (deb822 != null) edits.push(editDeb822(deb822, os.codename, rel.components));
  if (list != null) edits.push(editOneLine(list, os.codename, rel.components));
  if (!edits.some((e) => e.entries > 0)) {
    return fail(
      `expected the Debian archive for ${os.codename} (component main) in ${DEBIAN_SOURCES} or ${SOURCES_LIST}, found ${edits.length ? 'no such entry' : 'neither file'}`,
      `add the entry with the components ${['main', ...rel.components].join(' ')} by hand (the role adds components to an entry it finds, it does not invent a mirror). Nothing was changed.`,
    );
  }
  const version = typeof vars.nvidia_driver_version === 'string' ? vars.nvidia_driver_version : '';
  const empty = { path: '', content: '', changed: false, added: [] as string[] };
  const byPath = (p: string) => {
    const e = edits.find((x) => x.path === p);
    return e ? { path: e.path, content: e.content, changed: e.changed, added: e.added } : { ...empty, path: p };
  };
  const data = {
    distribution: `Debian ${rel.version} (${os.codename})`,
    components: rel.components,
    sourcesList: byPath(SOURCES_LIST),
    debianSources: byPath(DEBIAN_SOURCES),
    packages: driverPackages(version),
    pin: { path: NVIDIA_PIN_PATH, content: driverPin(version) },
    headers: headerPackages(f),
    gpus: gpus.map((g) => ({ address: g.address, id: g.id, name: g.name, driver: g.driver })),
  };
  const adding = edits.flatMap((e) => e.added.map((a) => `${e.path} ${a}`));
  return pass(
    `Debian ${rel.version} (${os.codename}) guest with ${gpus.map((g) => `${g.address} (${g.driver ?? 'no driver'})`).join(', ')}; ${adding.length ? `components to add: ${adding.join('; ')}` : `components ${rel.components.join(' ')} already enabled`}`,
    data,
  );
}

/** `00000000:01:00.0` (nvidia-smi) → `0000:01:00.0`. */
export function busId(s: string): string {
  const m = /^(?:([0-9a-fA-F]+):)?([0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])$/.exec(s.trim());
  if (!m) return s.trim().toLowerCase();
  const dom = (m[1] ?? '0').replace(/^0+/, '') || '0';
  return `${dom.padStart(4, '0')}:${m[2]}`.toLowerCase();
}

export interface SmiGpu {
  address: string;
  name: string;
  driver: string;
}

/** Rows of `nvidia-smi --query-gpu=pci.bus_id,name,driver_version --format=csv,noheader`. */
export function parseSmiQuery(stdout: string): SmiGpu[] {
  const out: SmiGpu[] = [];
  for (const line of stdout.split('\n')) {
    const cells = line.split(',').map((c) => c.trim());
    if (cells.length < 3 || !/^[0-9a-fA-F]+:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/.test(cells[0]!)) continue;
    out.push({ address: busId(cells[0]!), name: cells.slice(1, -1).join(', '), driver: cells[cells.length - 1]! });
  }
  return out;
}

/**
 * On the booted guest: `nvidia-smi` lists every NVIDIA GPU the guest sees (by bus id), each
 * driven by the nvidia driver, at the pinned version when one is set. A GPU still driven by
 * nouveau while the driver package is installed is a reboot that has not happened yet (pending).
 */
export function gateNvidiaDriver({ facts: f, vars, nvidiaSmiQuery: smi }: CheckInput): CheckResult {
  const gpus = nvidiaGpus(f);
  if (gpus.length === 0) return fail('expected an NVIDIA GPU visible in this guest, found none in lspci', 'pass the GPU to this VM and start it with the device');
  const installed = f.packages['nvidia-driver'];
  const onNouveau = gpus.filter((g) => g.driver === 'nouveau');
  if (!smi) return fail('expected the output of nvidia-smi, found none (not read)', 'run the gate through passthrough_check, which reads it');
  const first = (smi.stderr.trim() || smi.stdout.trim()).split('\n')[0] ?? '';
  if (smi.code !== 0) {
    if (smi.code === 127 || /command not found|not found/.test(first)) {
      return fail(
        'expected nvidia-smi to list the GPU, found no nvidia-smi command',
        installed ? `nvidia-driver ${installed} is installed but nvidia-smi is not: apt install nvidia-smi` : 'the driver is not installed: apt install nvidia-driver nvidia-smi (contrib non-free non-free-firmware enabled)',
      );
    }
    if (installed && onNouveau.length) {
      return {
        ok: false,
        msg: `expected the nvidia driver on ${onNouveau.map((g) => g.address).join(', ')}, found nouveau still driving it (nvidia-driver ${installed} installed, not booted yet)`,
        hint: 'reboot the guest: the package blacklists nouveau (/etc/modprobe.d/nvidia-blacklists-nouveau.conf, in the initramfs) and the nvidia module loads at the next boot; if nouveau is back after a reboot, check that file and run update-initramfs -u',
        pending: true,
      };
    }
    if (/version mismatch/i.test(first)) {
      return { ok: false, msg: `expected nvidia-smi to list the GPU, found "${first}"`, hint: 'the driver libraries were upgraded but the running module is the old one: reboot the guest', pending: true };
    }
    const kernel = f.kernelRelease;
    const built = Object.entries(f.dkms).filter(([m]) => m.startsWith('nvidia')).flatMap(([, ks]) => ks);
    const hint = !installed
      ? 'the nvidia-driver package is not installed'
      : !built.includes(kernel)
        ? `DKMS has no nvidia module for the running kernel ${kernel}: install linux-headers-${kernel}, run dkms autoinstall, then reboot`
        : 'the module is built but did not load: see `dmesg | grep -i nvrm`; with Secure Boot on, the DKMS module must be signed with an enrolled key (mokutil --sb-state)';
    return fail(`expected nvidia-smi to list the GPU, found it failing (exit ${smi.code}): ${first || 'no output'}`, hint);
  }
  const rows = parseSmiQuery(smi.stdout);
  const missing = gpus.filter((g) => !rows.some((r) => r.address === g.address.toLowerCase()));
  if (missing.length) {
    return fail(
      `expected nvidia-smi to list ${missing.map((g) => g.address).join(', ')}, found ${rows.length ? rows.map((r) => r.address).join(', ') : 'no GPU'}`,
      `lspci -nnk -s ${missing[0]!.address} shows which driver has it; a GPU on another driver (${missing.map((g) => g.driver ?? 'none').join(', ')}) is not the nvidia driver's`,
    );
  }
  const notNvidia = gpus.filter((g) => g.driver !== 'nvidia');
  if (notNvidia.length) {
    return fail(`expected the nvidia driver in use for ${notNvidia.map((g) => g.address).join(', ')}, found ${notNvidia.map((g) => g.driver ?? 'no driver').join(', ')}`, `lspci -nnk -s ${notNvidia[0]!.address}`);
  }
  const pinned = typeof vars.nvidia_driver_version === 'string' && vars.nvidia_driver_version ? upstreamVersion(vars.nvidia_driver_version) : '';
  const wrong = pinned ? rows.filter((r) => r.driver !== pinned) : [];
  if (wrong.length) {
    return fail(`expected driver ${pinned} (nvidia_driver_version), found ${wrong.map((r) => `${r.driver} on ${r.address}`).join(', ')}`, 'the running module is another version: check apt policy nvidia-driver, then reboot after the install');
  }
  const listed = gpus.map((g) => `${g.address} ${rows.find((r) => r.address === g.address.toLowerCase())!.name}`);
  return pass(`nvidia-smi lists ${listed.join(', ')} (driver ${rows[0]!.driver})`, { gpus: rows });
}
