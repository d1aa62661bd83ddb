#!/bin/sh
# Install what the tests need, on Debian/Ubuntu (apt-get), by group or by package name:
#   scripts/install-deps.sh test        # SSH integration tests and the benchmark: OpenSSH server and
#                                       # client tools (ssh, ssh-keygen, ssh-agent), sudo, unshare, and
#                                       # tmux (the terminal tests read the screen of a real terminal)
#   scripts/install-deps.sh e2e         # end-to-end lane (test/e2e): QEMU (x86 system emulator and
#                                       # qemu-img), debootstrap and the disk tools that build the guest
#                                       # image (sfdisk, losetup, partx, mkfs.ext4), the OpenSSH client
#   scripts/install-deps.sh oracle      # the differential tests' oracle: ansible-core (ansible-inventory
#                                       # and its Python modules), against which inventories and
#                                       # templates are checked
#   scripts/install-deps.sh test e2e jq # several groups, and any Debian package by name
# Options: --as NAME prefixes the messages with NAME (default: install-deps).
# Idempotent: installs only what is missing (a group's tools are looked up on PATH, a package by
# name through dpkg), runs `apt-get update` at most once (only when the package lists are absent
# or older than a day, or when an install fails on stale lists), and says what it installs.
# Exit 0 when everything is there; 1 when something is missing and we are not root, or apt fails;
# 2 on a usage error. Needs root only when something is missing.
set -eu

label=install-deps
usage() {
  echo "usage: install-deps.sh [--as NAME] GROUP|PACKAGE... (groups: test, oracle, e2e)" >&2
  exit 2
}

missing=""   # packages to install
wanted=""    # every package asked for (for the "nothing to install" line)
add() { # add <list variable> <package>: append unless already there
  eval "case \" \$$1 \" in *\" $2 \"*) ;; *) $1=\"\$$1 $2\" ;; esac"
}
need() { # need <command or path> <debian package>
  add wanted "$2"
  if [ ! -x "$1" ] && ! command -v "$1" >/dev/null 2>&1; then add missing "$2"; fi
}
need_pkg() { # need_pkg <debian package>
  add wanted "$1"
  case "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" in
    *" installed") ;;
    *) add missing "$1" ;;
  esac
}

group_test() {
  need /usr/sbin/sshd openssh-server
  need ssh openssh-client
  need ssh-keygen openssh-client
  need ssh-agent openssh-client
  need sudo sudo
  need unshare util-linux
  need tmux tmux
}
group_oracle() {
  need ansible-inventory ansible-core
  need ansible ansible-core
}
group_e2e() {
  need qemu-system-x86_64 qemu-system-x86
  need qemu-img qemu-utils
  need debootstrap debootstrap
  need sfdisk fdisk
  need losetup mount
  need partx util-linux
  need mkfs.ext4 e2fsprogs
  need ssh openssh-client
  need ssh-keygen openssh-client
}

[ $# -gt 0 ] || usage
parse() { # in a function, so that the script keeps its arguments for the re-run under the lock
  while [ $# -gt 0 ]; do
    case "$1" in
      --as) [ $# -ge 2 ] || usage; label=$2; shift 2; continue ;;
      -h|--help) usage ;;
      test) group_test ;;
      oracle) group_oracle ;;
      e2e) group_e2e ;;
      -*) usage ;;
      *)
        # A Debian package name (lower case letters, digits, + - .), nothing a shell would read.
        case "$1" in *[!a-z0-9+.-]*|[!a-z0-9]*|?) echo "$label: not a group or package name: $1" >&2; exit 2 ;; esac
        need_pkg "$1"
        ;;
    esac
    shift
  done
}
parse "$@"

if [ -z "$missing" ]; then
  echo "$label: nothing to install ($(echo $wanted | sed 's/ /, /g') present)"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "$label: need root to install:$missing" >&2
  exit 1
fi

# One install at a time: test files run in parallel and two of them may need the same package.
# The second waits for the first, then looks again and finds it installed (dpkg's own lock would
# make it fail instead).
lock=/run/lock/passthru-install-deps.lock
if [ -z "${PASSTHRU_INSTALL_LOCKED:-}" ] && command -v flock >/dev/null 2>&1 && [ -d /run/lock ]; then
  export PASSTHRU_INSTALL_LOCKED=1
  exec flock "$lock" sh "$0" "$@"
fi

echo "$label: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
updated=no
update() { apt-get update -qq -o DPkg::Lock::Timeout=300; updated=yes; }
# Update the package lists only when they are absent (fresh system) or older than a day.
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
  update
fi
# shellcheck disable=SC2086
if ! apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $missing; then
  [ "$updated" = no ] || exit 1
  # Stale lists (packages moved): refresh once and retry.
  update
  # shellcheck disable=SC2086
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $missing
fi
echo "$label: installed:$missing"
