# Shared by the lab's stub tools. LAB_NODE (the node's directory on the machine) and LAB_DIR
# (the lab's) are set by the node's sshd (SetEnv); fall back to the node's own record.
if [ -z "$LAB_NODE" ] && [ -r /etc/passthru-lab/env ]; then . /etc/passthru-lab/env; fi
: "${LAB_NODE:?not inside a passthru lab node}"
G="$LAB_NODE/gen"
RUN="$G/run"
PROFILE_JSON="$LAB_NODE/profile.json"
kernel_release() { local k; read -r k < "$RUN/kernel"; printf '%s\n' "$k"; }
# A value of the profile by a dotted path (nothing when missing; objects and arrays as JSON): from
# $RUN/profile.tsv, which the boot writes once (src/lab/node.ts profileTsv), with shell builtins.
profile_get() {
  if [ ! -r "$RUN/profile.tsv" ]; then
    node -e 'const p=require(process.argv[1]);let v=p;for(const k of process.argv[2].split(".")){v=v==null?undefined:v[k]}process.stdout.write(v==null?"":typeof v=="object"?JSON.stringify(v):String(v))' "$PROFILE_JSON" "$1"
    return
  fi
  local k v
  while IFS=$'\t' read -r k v; do [ "$k" = "$1" ] && { printf '%s' "$v"; return 0; }; done < "$RUN/profile.tsv"
  return 0
}
# A top-level string field of the profile.
profile_field() { profile_get "$1"; }
bootloader() { profile_field bootloader; }
now_ms() { date +%s%3N; }
is_pve() { [ "$(profile_field kind)" = pve ]; }
die() { echo "$*" >&2; exit 1; }
