#!/bin/sh
# `npm test`: the type check and the unit and lab tests (ava), and the real-kernel lane
# (`npm run test:e2e`: builds its disk image when it is not cached, boots it in QEMU). The lane
# runs in the background while the other tests run, not after them: it is one QEMU process
# emulating a CPU, and its image build waits on the network and on dpkg, so the two overlap well
# on two cores (the lane's output is printed, whole, after ava's).
#
# What the tests need is installed first, in one go (scripts/install-deps.sh: idempotent, needs
# root only for what is missing; the tests install what they miss themselves too, and say so
# when they cannot).
# Exit status: ava's when it failed (the type check's when that failed: nothing else runs), else
# the lane's.
set -u
cd "$(dirname "$0")/.."

sh scripts/install-deps.sh --as npm-test test oracle e2e || echo "npm-test: not everything could be installed; the tests that need it will say so" >&2

npm run typecheck || exit $?

e2e_log=$(mktemp)
e2e_pid=""
# Interrupted: the lane's whole process group (npm, ava, its worker, QEMU) is stopped too.
stop_e2e() {
  if [ -n "$e2e_pid" ]; then
    kill -TERM -- "-$e2e_pid" 2>/dev/null
    wait "$e2e_pid" 2>/dev/null
    e2e_pid=""
  fi
}
trap 'rm -f "$e2e_log"' EXIT
trap 'stop_e2e; exit 130' INT
trap 'stop_e2e; exit 143' TERM
echo "npm-test: the real-kernel lane runs in the background (npm run test:e2e); its output follows ava's"
# setsid: a process group of its own, so that stop_e2e reaches all of it.
setsid -w npm run test:e2e >"$e2e_log" 2>&1 </dev/null &
e2e_pid=$!

npx ava
ava_rc=$?

# The lane is never left running: it is waited for, whatever ava did (it stops its own QEMU).
wait "$e2e_pid"
e2e_rc=$?
echo "npm-test: the real-kernel lane (npm run test:e2e), exit $e2e_rc:"
cat "$e2e_log"
[ "$ava_rc" = 0 ] || exit "$ava_rc"
exit "$e2e_rc"
