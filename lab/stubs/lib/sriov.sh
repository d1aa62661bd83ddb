# SR-IOV units for the systemctl stub: a unit of /etc/systemd/system that writes sriov_numvfs is
# run by the lab's SR-IOV logic (src/lab/sriov-cli.ts), which applies the kernel's rules and
# changes the node's generated sysfs and lspci listing. `start` of a oneshot unit that already ran
# (RemainAfterExit) does nothing, as systemd does; `restart` always runs it.
# Usage: sriov_unit CMD UNIT (after common.sh). Returns the unit's status; marks it failed on error.
sriov_unit() {
  local cmd="$1" u="$2" f="/etc/systemd/system/$2"
  [ -f "$f" ] && grep -q sriov_numvfs "$f" || return 0
  if [ "$cmd" = start ] && ! grep -qx "$u" "$RUN/stopped-units" 2>/dev/null && ! grep -qx "$u" "$RUN/failed-units" 2>/dev/null; then return 0; fi
  if ( . "$LAB_NODE/lab.env"; cd "$REPO" && "$NODE_BIN" $NODE_ARGS "${BOOT_CLI%/boot-cli.*}/sriov-cli.${BOOT_CLI##*.}" "$LAB_NODE" "$u" ); then
    local c; c=$(grep -vx "$u" "$RUN/failed-units" 2>/dev/null); printf '%s\n' "$c" | sed '/^$/d' > "$RUN/failed-units"
    return 0
  fi
  echo "Job for $u failed because the control process exited with error code." >&2
  echo "See \"systemctl status $u\" and \"journalctl -xeu $u\" for details." >&2
  grep -qx "$u" "$RUN/failed-units" 2>/dev/null || echo "$u" >> "$RUN/failed-units"
  return 1
}
