#!/bin/sh
# Runs inside a fresh mount + UTS namespace (unshare -m -u --propagation private): puts the
# node's own files over the paths a Proxmox host has, then becomes the node's sshd.
# Nothing here is visible outside the namespace; the machine's own files are not touched.
set -e
N="$1"
. "$N/lab.env"
R="$N/root"
G="$N/gen"
mount -t overlay lab-etc -o "lowerdir=/etc,upperdir=$R/etc,workdir=$N/overlay-work/etc" /etc
for d in default/grub.d kernel modprobe.d modules-load.d sysctl.d docker udev/rules.d systemd/system apt initramfs-tools passthru-lab; do
  mount --bind "$R/etc/$d" "/etc/$d"
done
# /usr as an overlay too: what a role writes there (a DKMS source under /usr/src, an APT keyring
# under /usr/share/keyrings) lands in the node's own tree, never in the machine's.
mount -t overlay lab-usr -o "lowerdir=/usr,upperdir=$R/usr,workdir=$N/overlay-work/usr" /usr
mount -t overlay lab-varlib -o "lowerdir=/var/lib,upperdir=$R/var/lib,workdir=$N/overlay-work/varlib" /var/lib
mount --bind "$R/var/lib/dpkg" /var/lib/dpkg
mount --bind "$R/var/lib/dkms" /var/lib/dkms
mount --bind "$R/boot" /boot
# root's home is the node's own (its dotfiles, not the machine's)
mount --bind "$R/root" /root
# Read-only views the node's last boot generated. A target this machine's kernel lacks (e.g.
# /proc/modules on a kernel without module support) cannot be created: the stubs read gen/ then.
bind() { if [ -e "$2" ]; then mount --bind "$1" "$2"; else echo "$2" >> "$N/unbound"; fi; }
: > "$N/unbound"
bind "$G/proc/cmdline" /proc/cmdline
bind "$G/proc/meminfo" /proc/meminfo
bind "$G/proc/cpuinfo" /proc/cpuinfo
bind "$G/proc/modules" /proc/modules
bind "$G/proc/boot_id" /proc/sys/kernel/random/boot_id
bind "$G/sys/kernel/iommu_groups" /sys/kernel/iommu_groups
bind "$G/sys/kernel/mm/hugepages" /sys/kernel/mm/hugepages
bind "$G/sys/class/iommu" /sys/class/iommu
bind "$G/sys/bus/pci/devices" /sys/bus/pci/devices
bind "$G/sys/bus/pci/drivers" /sys/bus/pci/drivers
mount --bind "$LAB_STUBS" /usr/local/sbin
# /etc/pve: the cluster's shared directory (or the node's own), see src/lab/pve-fs.ts
if [ -f "$N/pve-dir" ]; then
  P=$(cat "$N/pve-dir")
  mkdir -p /etc/pve
  mount --bind "$P" /etc/pve
  mount --bind "$P/nodes/$NODE_NAME/qemu-server" /etc/pve/qemu-server
  mount --bind "$P/nodes/$NODE_NAME/lxc" /etc/pve/lxc
  mount --bind "$P/nodes/$NODE_NAME" /etc/pve/local
fi
# /dev/dri of a profile with DRM nodes, inside this namespace only (src/lab/node-dev.sh)
[ -s "$G/dri.tsv" ] && . "$LAB_SRC/node-dev.sh"
# /run/lock: the node's own (pct's config locks, /run/lock/lxc/pve-config-ID.lock, are per node).
[ -d /run/lock ] && mount -t tmpfs -o mode=1777,size=1m lab-runlock /run/lock
hostname "$NODE_NAME"
echo up > "$N/state"
echo "up $(date +%s%3N) $(cat "$G/proc/boot_id")" >> "$N/boots.log"
exec /usr/sbin/sshd -D -e -f "$N/sshd_config" 2>>"$N/sshd.log"
