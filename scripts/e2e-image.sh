#!/bin/sh
# Build (once) the Debian 12 disk image the end-to-end lane boots in QEMU, and print the
# directory that holds it.
#
#   scripts/e2e-image.sh            build if missing; print the image directory on stdout
#   scripts/e2e-image.sh --key      print the cache key only
#   scripts/e2e-image.sh --dir      print the image directory without building
#
# The directory holds:
#   base.img                 raw disk: one ext4 partition, GRUB (BIOS), root=/dev/vda1
#   id_ed25519[.pub]         the key pair root accepts over SSH
#   ssh_host_ed25519_key.pub the guest's fixed SSH host key (generated at build time)
#
# Cache: ${PASSTHRU_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/passthru/e2e}/<key>/, where
# <key> hashes this script and its inputs (suite, mirror). The image is built in a temporary
# directory and renamed into place only once complete: an interrupted build leaves nothing
# that looks finished. Loop devices and mounts made here are always released (trap).
# Needs root (debootstrap, losetup, mount, chroot).
set -eu

SUITE=${E2E_SUITE:-bookworm}
MIRROR=${E2E_MIRROR:-http://deb.debian.org/debian}
DISK_SIZE=${E2E_DISK_SIZE:-3G}
# What the guest needs to boot, be reached, and run what the roles run (update-grub,
# update-initramfs, modprobe, lspci, sysctl, journalctl). No Proxmox tools.
PACKAGES=linux-image-amd64,openssh-server,grub-pc,initramfs-tools,pciutils,kmod,systemd-sysv,ifupdown,isc-dhcp-client,iproute2,procps,efibootmgr,zstd

CACHE=${PASSTHRU_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/passthru/e2e}
self=$0
KEY=$( { cat "$self"; printf '%s\n' "$SUITE" "$MIRROR" "$DISK_SIZE" "$PACKAGES"; } | sha256sum | cut -c1-16)
OUT=$CACHE/$KEY

log() { echo "e2e-image: $*" >&2; }

case "${1:-}" in
  --key) echo "$KEY"; exit 0 ;;
  --dir) echo "$OUT"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--key|--dir]" >&2; exit 64 ;;
esac

if [ -f "$OUT/base.img" ]; then
  echo "$OUT"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "building the image needs root (debootstrap, losetup, mount, chroot)"
  exit 1
fi
for tool in debootstrap sfdisk losetup partx mkfs.ext4 ssh-keygen chroot sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool: run scripts/install-e2e-deps.sh"; exit 1; }
done

mkdir -p "$CACHE"
# One build at a time per cache; a second caller waits, then finds the image built.
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if [ -f "$OUT/base.img" ]; then
  echo "$OUT"
  exit 0
fi

started=$(date +%s)
WORK=$(mktemp -d "$CACHE/.build-$KEY.XXXXXX")
MNT=$WORK/mnt
LOOP=""
CHILD=""

# Long steps run in their own process group, in the background, so a signal to this script
# runs the cleanup at once (sh defers traps until a foreground command ends) and stops them.
long() {
  setsid "$@" &
  CHILD=$!
  wait "$CHILD"
  rc=$?
  CHILD=""
  return "$rc"
}

cleanup() {
  rc=$?
  set +e
  if [ -n "$CHILD" ]; then
    kill -TERM "-$CHILD" 2>/dev/null
    sleep 2
    kill -KILL "-$CHILD" 2>/dev/null
    wait "$CHILD" 2>/dev/null
  fi
  for m in dev/pts dev proc sys run; do
    mountpoint -q "$MNT/$m" 2>/dev/null && umount -l "$MNT/$m"
  done
  mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
  if [ -n "$LOOP" ]; then
    partx -d "$LOOP" >/dev/null 2>&1
    losetup -d "$LOOP"
  fi
  rm -rf "$WORK"
  [ "$rc" = 0 ] || log "build failed (exit $rc); nothing was cached"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- disk
log "building $OUT (suite $SUITE, disk $DISK_SIZE)"
truncate -s "$DISK_SIZE" "$WORK/base.img"
echo 'type=83, bootable' | sfdisk -q --label dos "$WORK/base.img"
LOOP=$(losetup -P -f --show "$WORK/base.img")
partx -a "$LOOP" >/dev/null 2>&1 || true # partition nodes do not always appear by themselves
i=0
while [ ! -b "${LOOP}p1" ]; do
  i=$((i + 1)); [ "$i" -lt 50 ] || { log "${LOOP}p1 did not appear"; exit 1; }
  sleep 0.1
done
mkfs.ext4 -q -L root "${LOOP}p1"
mkdir -p "$MNT"
mount "${LOOP}p1" "$MNT"

# ---------------------------------------------------------------- root file system
# The debootstrapped tree is cached as a tarball keyed by what debootstrap got, so a change to
# the configuration below does not download and unpack everything again.
ROOTKEY=$(printf '%s\n' "$SUITE" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-16)
ROOTTAR=$CACHE/rootfs-$ROOTKEY.tar
if [ -f "$ROOTTAR" ]; then
  log "unpacking cached debootstrap tree $(basename "$ROOTTAR")"
  long tar -C "$MNT" --numeric-owner -xpf "$ROOTTAR"
else
  log "debootstrap $SUITE (minbase + $PACKAGES)"
  long debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$MNT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }
  rm -rf "$MNT/var/cache/apt/archives/"*.deb "$MNT/var/lib/apt/lists/"*_Packages
  long tar -C "$MNT" --numeric-owner -cpf "$ROOTTAR.tmp" .
  mv "$ROOTTAR.tmp" "$ROOTTAR"
fi

# ---------------------------------------------------------------- configuration
R=$MNT
echo e2e-vm >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\te2e-vm\n' >"$R/etc/hosts"
printf '/dev/vda1\t/\text4\terrors=remount-ro\t0\t1\n' >"$R/etc/fstab"

# Network: classic eth0 name, DHCP from QEMU's user network. allow-hotplug (not auto) keeps
# boot from waiting on DHCP.
cat >"$R/etc/network/interfaces" <<'EOT'
auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
EOT

# SSH: root logs in with the generated key only.
ssh-keygen -q -t ed25519 -N '' -C passthru-e2e -f "$WORK/id_ed25519"
mkdir -p "$R/root/.ssh"
chmod 700 "$R/root/.ssh"
cp "$WORK/id_ed25519.pub" "$R/root/.ssh/authorized_keys"
chmod 600 "$R/root/.ssh/authorized_keys"
# A fixed host key made now, so the test knows what the guest must present.
rm -f "$R"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C e2e-vm -f "$R/etc/ssh/ssh_host_ed25519_key"
cp "$R/etc/ssh/ssh_host_ed25519_key.pub" "$WORK/ssh_host_ed25519_key.pub"
cat >"$R/etc/ssh/sshd_config.d/e2e.conf" <<'EOT'
PermitRootLogin prohibit-password
PasswordAuthentication no
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
EOT
# A new disk, not a clone: no stale machine id shared by runs matters here, but keep one fixed.
passwd -R "$R" -l root >/dev/null 2>&1 || true

# GRUB: no menu wait, serial console, no `quiet`, root by device name (the guest's disk).
# The command line a role edits (GRUB_CMDLINE_LINUX_DEFAULT) holds only harmless flags here.
sed -i -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=0/' \
  -e 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT="systemd.show_status=1"/' \
  -e 's/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX="console=ttyS0,115200n8 net.ifnames=0"/' \
  "$R/etc/default/grub"
cat >>"$R/etc/default/grub" <<'EOT'
GRUB_TIMEOUT_STYLE=hidden
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_LINUX_UUID=true
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_RECOVERY=true
EOT

# Reboots and shutdowns must not sit on a 90 s stop timeout under emulation.
mkdir -p "$R/etc/systemd/system.conf.d"
cat >"$R/etc/systemd/system.conf.d/e2e.conf" <<'EOT'
[Manager]
DefaultTimeoutStopSec=10s
ShowStatus=yes
EOT
# Timers that only cost CPU (and can hold the dpkg lock) in a throwaway guest.
# e2scrub_reap alone held boot for 18 s; the VGA gettys have no display (-vga none).
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  getty@tty1.service getty-static.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$unit"
done

# ---------------------------------------------------------------- bootloader, initramfs
for m in dev dev/pts proc sys run; do
  mkdir -p "$R/$m"
done
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs tmpfs "$R/run"

# The initramfs built by the kernel's installation used MODULES=most (what a chroot needs: dep
# would resolve against this machine). Make sure it exists, then switch to dep for the much
# faster rebuilds the roles trigger inside the guest.
kver=$(ls "$R/lib/modules" | sort -V | tail -n 1)
if [ ! -f "$R/boot/initrd.img-$kver" ]; then
  log "building the first initramfs (MODULES=most)"
  chroot "$R" update-initramfs -c -k "$kver" >&2
fi
sed -i 's/^MODULES=.*/MODULES=dep/' "$R/etc/initramfs-tools/initramfs.conf"
grep -q '^MODULES=dep$' "$R/etc/initramfs-tools/initramfs.conf"

log "grub-install on $LOOP"
chroot "$R" grub-install --target=i386-pc --modules="part_msdos ext2" "$LOOP" >&2 2>"$WORK/grub.log" || {
  cat "$WORK/grub.log" >&2; exit 1; }
chroot "$R" update-grub >"$WORK/grub.log" 2>&1 || { cat "$WORK/grub.log" >&2; exit 1; }
# In the chroot the root device is the loop partition: point the kernel at the guest's disk.
sed -i -E "s#root=/dev/loop[0-9]+p1#root=/dev/vda1#g" "$R/boot/grub/grub.cfg"
grep -q 'root=/dev/vda1' "$R/boot/grub/grub.cfg" || { log "grub.cfg has no root=/dev/vda1"; exit 1; }
if grep -q 'root=/dev/loop' "$R/boot/grub/grub.cfg"; then log "grub.cfg still names a loop device"; exit 1; fi

sync
for m in run sys proc dev/pts dev; do umount "$R/$m"; done
umount "$MNT"
partx -d "$LOOP" >/dev/null 2>&1 || true
losetup -d "$LOOP"
LOOP=""

# ---------------------------------------------------------------- publish atomically
mkdir "$WORK/out"
mv "$WORK/base.img" "$WORK/id_ed25519" "$WORK/id_ed25519.pub" "$WORK/ssh_host_ed25519_key.pub" "$WORK/out/"
echo "$KEY" >"$WORK/out/KEY"
mv -T "$WORK/out" "$OUT"
log "built $OUT in $(( $(date +%s) - started )) s"
echo "$OUT"
