#!/bin/sh
# Supervisor of one lab node (started detached by labUp; its pid is recorded in supervisor.pid).
# Runs the node's sshd in a fresh namespace; when the node's processes are gone (the `reboot`
# stub killed them), waits REBOOT_DELAY, runs the boot logic, and starts a fresh namespace.
N="$1"
. "$N/lab.env"
echo $$ > "$N/supervisor.pid"
child=
trap 'touch "$N/stop"; [ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT
first=1
while [ ! -f "$N/stop" ]; do
  if [ -z "$first" ]; then
    echo rebooting > "$N/state"
    sleep "$REBOOT_DELAY"
    [ -f "$N/stop" ] && break
    (cd "$REPO" && "$NODE_BIN" $NODE_ARGS "$BOOT_CLI" "$N") >>"$N/boot.log" 2>&1 \
      || echo "boot logic failed, starting with the previous state" >>"$N/boot.log"
  fi
  first=
  started=$(date +%s)
  unshare -m -u --propagation private sh "$LAB_SRC/node-ns.sh" "$N" 2>>"$N/ns.log" &
  child=$!
  echo "$child" > "$N/ns.pid"
  wait "$child"
  child=
  [ -f "$N/stop" ] && break
  if ! grep -q '^rebooting$' "$N/state"; then
    # Not a reboot: sshd died or never started. Do not loop on a node that cannot start.
    echo "down $(date +%s%3N)" >> "$N/boots.log"
    if [ $(( $(date +%s) - started )) -lt 3 ]; then echo failed > "$N/state"; exit 1; fi
  fi
done
grep -q "^failed$" "$N/state" || echo down > "$N/state"
