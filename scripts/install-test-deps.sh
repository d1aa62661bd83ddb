#!/bin/sh
# Install what the SSH integration tests and the benchmark need: a real OpenSSH server, the
# OpenSSH client tools (ssh, ssh-keygen, ssh-agent), sudo, and unshare (util-linux).
# Idempotent: installs only what is missing, and says what it installs. Needs root (apt-get).
set -eu

missing=""
need() { # need <command path> <debian package>
  if [ ! -x "$1" ] && ! command -v "$1" >/dev/null 2>&1; then
    case " $missing " in *" $2 "*) ;; *) missing="$missing $2" ;; esac
  fi
}
need /usr/sbin/sshd openssh-server
need ssh openssh-client
need ssh-keygen openssh-client
need ssh-agent openssh-client
need sudo sudo
need unshare util-linux

if [ -z "$missing" ]; then
  echo "install-test-deps: nothing to install (openssh-server, openssh-client, sudo, util-linux present)"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: need root to install:$missing" >&2
  exit 1
fi

echo "install-test-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
echo "install-test-deps: installed:$missing"
