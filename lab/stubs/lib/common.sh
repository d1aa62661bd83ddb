# Shared by the lab's stub tools. LAB_NODE (the node's directory on the machine) and LAB_DIR
# (the lab's) are set by the node's sshd (SetEnv); fall back to the node's own record.
# Sourcing this file starts no process, and neither do its functions (but the fallbacks named):
# the facts probe runs a dozen stubs, and a process start costs more than everything a stub does.
# Functions that give a value set a variable (`profile_var v kind`), so that no `$(...)` is needed
# (their own locals start with __, so that they never hide the caller's variable).
if [ -z "$LAB_NODE" ] && [ -r /etc/passthru-lab/env ]; then . /etc/passthru-lab/env; fi
: "${LAB_NODE:?not inside a passthru lab node}"
G="$LAB_NODE/gen"
RUN="$G/run"
# Answers kept between calls (see answer_get below and src/lab/answers.ts).
ANS="$RUN/answers"
PROFILE_JSON="$LAB_NODE/profile.json"
__lab_krel=; __lab_prof_state=; declare -gA __lab_prof=()
# kernel_rel VAR: the kernel the node booted (last boot).
kernel_rel() { [ -n "$__lab_krel" ] || read -r __lab_krel < "$RUN/kernel"; printf -v "$1" '%s' "$__lab_krel"; }
# node_hostname VAR: the node's host name (what hostname(1) prints: the UTS namespace's name).
node_hostname() { local __h; read -r __h < /proc/sys/kernel/hostname; printf -v "$1" '%s' "$__h"; }
# profile_var VAR KEY: a value of the profile by a dotted path (empty when missing; objects and
# arrays as JSON), from $RUN/profile.tsv, which the boot writes once (src/lab/node.ts profileTsv):
# read once per call of the stub into an associative array. Without it (a node from before the
# file existed), node reads profile.json.
profile_var() {
  if [ -z "$__lab_prof_state" ]; then
    __lab_prof_state=none
    if [ -r "$RUN/profile.tsv" ]; then
      # `path<TAB>value` lines (neither holds a tab: profileTsv), the file read whole
      local __pl __pk __pv __pls=()
      mapfile -t __pls < "$RUN/profile.tsv"
      for __pl in "${__pls[@]}"; do
        __pk=${__pl%%$'\t'*}; __pv=; [ "$__pk" = "$__pl" ] || __pv=${__pl#*$'\t'}
        [ -n "${__lab_prof[$__pk]+x}" ] || __lab_prof[$__pk]=$__pv
      done
      __lab_prof_state=tsv
    fi
  fi
  if [ "$__lab_prof_state" = tsv ]; then printf -v "$1" '%s' "${__lab_prof[$2]}"; return 0; fi
  printf -v "$1" '%s' "$(node -e 'const p=require(process.argv[1]);let v=p;for(const k of process.argv[2].split(".")){v=v==null?undefined:v[k]}process.stdout.write(v==null?"":typeof v=="object"?JSON.stringify(v):String(v))' "$PROFILE_JSON" "$2")"
}
# The same value printed (for `$(profile_get KEY)` where a process does not matter).
profile_get() { local v; profile_var v "$1"; printf '%s' "$v"; }
bootloader() { profile_get bootloader; }
now_ms() { local t="$EPOCHREALTIME"; if [[ "$t" == *.??????* ]]; then local f="${t#*.}"; printf '%s%s\n' "${t%.*}" "${f:0:3}"; else date +%s%3N; fi; }
is_pve() { local k; profile_var k kind; [ "$k" = pve ]; }
die() { echo "$*" >&2; exit 1; }
# read_file VAR FILE: VAR = the file without its trailing newlines (what `$(cat FILE)` gives);
# status 1 (and VAR empty) when the file cannot be read.
read_file() {
  local __x=
  [ -r "$2" ] || { printf -v "$1" '%s' ''; return 1; }
  IFS= read -r -d '' __x < "$2"
  while [[ "$__x" == *$'\n' ]]; do __x=${__x%$'\n'}; done
  printf -v "$1" '%s' "$__x"
}
# has_line FILE LINE: the file has that line (grep -qx without a process; no file: no).
has_line() { local l; [ -r "$1" ] || return 1; while IFS= read -r l || [ -n "$l" ]; do [ "$l" = "$2" ] && return 0; done < "$1"; return 1; }
# __lab_isort ARRAY BEFORE: sort the array in place by the function BEFORE A B (A goes first).
# Insertion sort: for the few lines a stub sorts.
__lab_isort() {
  local -n __s="$1"; local __i __j __x __n=${#__s[@]}
  for ((__i = 1; __i < __n; __i++)); do
    __x=${__s[__i]}; __j=$__i
    while ((__j > 0)) && "$2" "$__x" "${__s[__j-1]}"; do __s[__j]=${__s[__j-1]}; __j=$((__j - 1)); done
    __s[__j]=$__x
  done
}
__lab_str_before() { [[ "$1" < "$2" ]]; }
# sort_lines ARRAY: sort the array's elements in place, in the order `sort` prints them (both
# compare in the current locale; a node's is POSIX).
sort_lines() { __lab_isort "$1" __lab_str_before; }
# guest_rows ARRAY KIND: the lines of $RUN/guests.tsv (kind id name status mem disk pid) of that
# kind (qm, pct), by id as `sort -t<TAB> -k2,2n` orders them (equal ids: by the whole line).
guest_rows() {
  local -n __r="$1"; local __l
  __r=()
  [ -r "$RUN/guests.tsv" ] || return 0
  while IFS= read -r __l || [ -n "$__l" ]; do [ "${__l%%$'\t'*}" = "$2" ] && __r+=("$__l"); done < "$RUN/guests.tsv"
  __lab_isort "$1" __lab_guest_before
}
# __lab_guest_before A B: row A sorts before row B (the id as a number, then the whole line).
__lab_guest_before() {
  local a="${1#*$'\t'}" b="${2#*$'\t'}"
  a=${a%%$'\t'*}; b=${b%%$'\t'*}
  [[ "$a" =~ ^[[:blank:]]*([0-9]*) ]]; a=${BASH_REMATCH[1]}; [[ "$b" =~ ^[[:blank:]]*([0-9]*) ]]; b=${BASH_REMATCH[1]}
  a=$((10#${a:-0})); b=$((10#${b:-0}))
  if ((a != b)); then ((a < b)); else [[ "$1" < "$2" ]]; fi
}
# Answers: what a stub prints (or the index it reads) computed once from the node's files and kept
# in $ANS/NAME, written by the boot or by the tool that changed those files. An answer is used only
# while it is strictly newer than every file it was computed from (equal times count as stale:
# file times are as coarse as the kernel's clock tick); otherwise it is computed again and kept
# (atomically: a temporary file in the same directory, then mv).
# answer_fresh NAME INPUT...: the kept answer may be used.
answer_fresh() { local a="$ANS/$1" i; shift; [ -f "$a" ] || return 1; for i; do [ "$a" -nt "$i" ] || return 1; done; }
# answer_get VAR NAME COMPUTE INPUT...: VAR = the answer, kept or computed by the function COMPUTE
# (which sets __answer from the inputs). A computed answer is kept only when no input changed since
# before COMPUTE read it: a stamp written first must be strictly newer than every input.
answer_get() {
  local __v="$1" __n="$2" __f="$3" __a="$ANS/$2" __i; shift 3
  if answer_fresh "$__n" "$@"; then local __x=; IFS= read -r -d '' __x < "$__a"; printf -v "$__v" '%s' "$__x"; return 0; fi
  [ -d "$ANS" ] || mkdir -p "$ANS" 2>/dev/null
  local __s="$__a.$$.stamp" __t="$__a.$$.tmp" __ok=1
  { : > "$__s"; } 2>/dev/null || __ok=0
  __answer=; "$__f"
  printf -v "$__v" '%s' "$__answer"
  [ $__ok = 1 ] || return 0
  if { printf '%s' "$__answer" > "$__t"; } 2>/dev/null; then
    for __i; do [ "$__s" -nt "$__i" ] || __ok=0; done
    if [ $__ok = 1 ]; then mv -f "$__t" "$__a"; rm -f "$__s"; else rm -f "$__t" "$__s"; fi
  else rm -f "$__s"; fi
  return 0
}
