# Shared by the lab's stub tools. LAB_NODE (the node's directory on the machine) and LAB_DIR
# (the lab's) are set by the node's sshd (SetEnv); fall back to the node's own record.
if [ -z "$LAB_NODE" ] && [ -r /etc/passthru-lab/env ]; then . /etc/passthru-lab/env; fi
: "${LAB_NODE:?not inside a passthru lab node}"
G="$LAB_NODE/gen"
RUN="$G/run"
PROFILE_JSON="$LAB_NODE/profile.json"
kernel_release() { cat "$RUN/kernel"; }
# A value of profile.json by a dotted path (node is on the machine; used only where shell is awkward).
profile_get() { node -e 'const p=require(process.argv[1]);let v=p;for(const k of process.argv[2].split(".")){v=v==null?undefined:v[k]}process.stdout.write(v==null?"":typeof v=="object"?JSON.stringify(v):String(v))' "$PROFILE_JSON" "$1"; }
# Reads a top-level string field of profile.json (written by labUp with 2-space JSON.stringify).
profile_field() { sed -n "s/^  \"$1\": \"\\{0,1\\}\\([^\",]*\\)\"\\{0,1\\},\\{0,1\\}$/\\1/p" "$PROFILE_JSON" | head -1; }
bootloader() { profile_field bootloader; }
now_ms() { date +%s%3N; }
is_pve() { [ "$(profile_field kind)" = pve ]; }
die() { echo "$*" >&2; exit 1; }
