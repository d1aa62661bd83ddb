#!/bin/sh
# Install what the end-to-end lane (test/e2e) needs: QEMU (x86 system emulator and qemu-img),
# debootstrap and the disk tools that build the guest image (sfdisk, losetup, partx, mkfs.ext4),
# and the OpenSSH client the test uses to look inside the guest.
# Idempotent: installs only what is missing (one `apt-get update` at most), and says what.
# Needs root (apt-get).
set -eu

missing=""
need() { # need <command or path> <debian package>
  if [ ! -x "$1" ] && ! command -v "$1" >/dev/null 2>&1; then
    case " $missing " in *" $2 "*) ;; *) missing="$missing $2" ;; esac
  fi
}
need qemu-system-x86_64 qemu-system-x86
need qemu-img qemu-utils
need debootstrap debootstrap
need sfdisk fdisk
need losetup mount
need partx util-linux
need mkfs.ext4 e2fsprogs
need ssh openssh-client
need ssh-keygen openssh-client

if [ -z "$missing" ]; then
  echo "install-e2e-deps: nothing to install (qemu-system-x86, qemu-utils, debootstrap, fdisk, openssh-client present)"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-e2e-deps: need root to install:$missing" >&2
  exit 1
fi

echo "install-e2e-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Update the package lists only when they are absent or older than a day.
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
  apt-get update -qq
fi
# shellcheck disable=SC2086
if ! apt-get install -y -qq --no-install-recommends $missing; then
  # Stale lists (packages moved): refresh once and retry.
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
echo "install-e2e-deps: installed:$missing"
