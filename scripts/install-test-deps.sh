#!/bin/sh
# Install what the SSH integration tests and the benchmark need: a real OpenSSH server, the
# OpenSSH client tools (ssh, ssh-keygen, ssh-agent), sudo, and unshare (util-linux).
# Same as `scripts/install-deps.sh test` (idempotent; needs root only when something is missing).
set -eu
exec sh "$(dirname "$0")/install-deps.sh" --as install-test-deps test
