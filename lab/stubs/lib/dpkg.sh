# The node's installed packages for the stubs (after common.sh), without a process: the index
# $ANS/dpkg.tsv of /var/lib/dpkg/status, one `name<TAB>version<TAB>status` line per package in
# name order (`LC_ALL=C sort`), the first Package:, Version: and Status: line of each stanza, the
# last stanza of a name winning. The boot writes it (src/lab/answers.ts dpkgIndex), apt-get after
# it changed the status file; kept only while newer than the status file (answer_get in common.sh).
DPKG_STATUS=${LAB_DPKG_STATUS:-/var/lib/dpkg/status}   # LAB_DPKG_STATUS: for the unit tests of the stubs
declare -gA DPKG_VER=() DPKG_ST=(); DPKG_NAMES=(); __dpkg_loaded=
# The index from the status file (COMPUTE of answer_get): one pass with shell builtins, then sort.
__dpkg_index() {
  local l n v t names=() out=
  local -A ver=() st=()
  __dpkg_flush() { [ -n "$n" ] && { [ -n "${ver[$n]+x}" ] || names+=("$n"); ver[$n]=$v; st[$n]=$t; }; n=; v=; t=; }
  if [ -r "$DPKG_STATUS" ]; then
    while IFS= read -r l || [ -n "$l" ]; do
      case "$l" in
        '') __dpkg_flush ;;
        'Package: '*) [ -n "$n" ] || n=${l#Package: } ;;
        'Version: '*) [ -n "$v" ] || v=${l#Version: } ;;
        'Status: '*) [ -n "$t" ] || t=${l#Status: } ;;
      esac
    done < "$DPKG_STATUS"
    __dpkg_flush
  fi
  if [ ${#names[@]} -gt 0 ]; then
    mapfile -t names < <(printf '%s\n' "${names[@]}" | LC_ALL=C sort)
    for n in "${names[@]}"; do out+="$n"$'\t'"${ver[$n]}"$'\t'"${st[$n]}"$'\n'; done
  fi
  __answer=$out
}
# dpkg_load: DPKG_NAMES (in order), DPKG_VER[name], DPKG_ST[name] of the installed packages.
dpkg_load() {
  [ -n "$__dpkg_loaded" ] && return 0
  local idx l n r lines=()
  # the kept index read whole (mapfile: a few reads, where a loop of read would take one per byte of a pipe)
  if answer_fresh dpkg.tsv "$DPKG_STATUS"; then mapfile -t lines < "$ANS/dpkg.tsv"
  else answer_get idx dpkg.tsv __dpkg_index "$DPKG_STATUS"; [ -z "$idx" ] || mapfile -t lines <<<"${idx%$'\n'}"; fi
  DPKG_NAMES=(); DPKG_VER=(); DPKG_ST=()
  for l in "${lines[@]}"; do
    [ -n "$l" ] || continue
    n=${l%%$'\t'*}; r=${l#*$'\t'}
    DPKG_NAMES+=("$n"); DPKG_VER[$n]=${r%%$'\t'*}; DPKG_ST[$n]=${r#*$'\t'}
  done
  __dpkg_loaded=1
}
# dpkg_reload: after this process changed the status file (apt-get): load (and keep) the index again.
dpkg_reload() { __dpkg_loaded=; dpkg_load; }
# dpkg_has PATTERN: a package matching the pattern (dpkg-query -W PATTERN succeeds) is installed.
dpkg_has() {
  dpkg_load
  case "$1" in *[*?[]*) ;; *) [ -n "${DPKG_VER[$1]+x}" ]; return ;; esac
  local n; for n in "${DPKG_NAMES[@]}"; do [[ "$n" == $1 ]] && return 0; done; return 1
}
# dpkg_version VAR NAME: the installed version of a package (dpkg-query -W -f='${Version}' NAME).
dpkg_version() { dpkg_load; printf -v "$1" '%s' "${DPKG_VER[$2]}"; }
