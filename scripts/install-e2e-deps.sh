#!/bin/sh
# Install what the end-to-end lane (test/e2e) needs: QEMU (x86 system emulator and qemu-img),
# debootstrap and the disk tools that build the guest image (sfdisk, losetup, partx, mkfs.ext4),
# and the OpenSSH client the test uses to look inside the guest.
# Same as `scripts/install-deps.sh e2e` (idempotent, one `apt-get update` at most; needs root only
# when something is missing).
set -eu
exec sh "$(dirname "$0")/install-deps.sh" --as install-e2e-deps e2e
