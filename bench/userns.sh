#!/usr/bin/env bash
# User-namespace cost (issue 13 part 5): wall time of `podrun up` of a one-container
# busybox pod until its container runs, and of its delete, plain against
# `hostUsers: false` (a range lease, the pause in a new user namespace, idmapped image
# layers, an idmapped emptyDir), interleaved round by round so both see the same load.
# Usage: bench/userns.sh [ROUNDS]   (root; builds fixtures if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-30}
PODRUN=${PODRUN:-$PWD/target/release/podrun}
[ -x "$PODRUN" ] || cargo build --release
work=$(mktemp -d /tmp/podrun-bench-userns.XXXXXX)
export PODRUN_ROOT=$work/root PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs
cleanup() {
  for d in "$PODRUN_ROOT"/pods/*/; do
    [ -d "$d" ] || continue
    n=$(basename "$d"); "$PODRUN" delete pod "${n#*_}" -n "${n%%_*}" --grace-period 0 --force >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
bash rootfs-fixtures/build.sh busybox >/dev/null
bash rootfs-fixtures/load.sh "$PODRUN" busybox >/dev/null
ms() { python3 -c "import sys; print(f'{(int(sys.argv[2])-int(sys.argv[1]))/1e6:.2f}')" "$1" "$2"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

manifest() { # manifest NAME HOSTUSERS_LINE
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n%s  terminationGracePeriodSeconds: 0\n  volumes:\n  - name: e\n    emptyDir: {}\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: ["sleep", "3600"]\n    volumeMounts:\n    - {name: e, mountPath: /e}\n' "$1" "$2"
}
manifest plain "" >"$work/plain.yaml"
manifest userns $'  hostUsers: false\n' >"$work/userns.yaml"

one() { # one NAME -> "up_ms down_ms"
  local t0 t1 t2
  t0=$(date +%s%N)
  "$PODRUN" up "$work/$1.yaml" >/dev/null
  t1=$(date +%s%N)
  "$PODRUN" delete pod "$1" --grace-period 0 >/dev/null
  t2=$(date +%s%N)
  echo "$(ms "$t0" "$t1") $(ms "$t1" "$t2")"
}
# Warm-up (page cache, pause install, the bridge), then interleaved rounds.
one plain >/dev/null; one userns >/dev/null
: >"$work/plain.txt"; : >"$work/userns.txt"
for i in $(seq "$ROUNDS"); do
  if ((i % 2)); then order="plain userns"; else order="userns plain"; fi
  for k in $order; do one "$k" >>"$work/$k.txt"; done
done
up_p=$(awk '{print $1}' "$work/plain.txt" | median)
up_u=$(awk '{print $1}' "$work/userns.txt" | median)
dn_p=$(awk '{print $2}' "$work/plain.txt" | median)
dn_u=$(awk '{print $2}' "$work/userns.txt" | median)
echo "podrun up, one busybox container + emptyDir ($ROUNDS interleaved rounds, medians):"
echo "  plain            up ${up_p} ms, delete ${dn_p} ms"
echo "  hostUsers: false up ${up_u} ms, delete ${dn_u} ms"
python3 -c "print(f'  extra start cost of the user namespace: {float(\"$up_u\")-float(\"$up_p\"):+.2f} ms (target <= 5 ms)')"
left=$(find "$PODRUN_DATA_DIR/userns" -maxdepth 1 -name '[0-9]*' 2>/dev/null | wc -l)
echo "  range leases left after the rounds: $left"
