#!/usr/bin/env bash
# Pod benchmark (issue 4): wall time of `podrun up` of pod-command.yaml until both
# containers run and of `podrun delete`, against three `runc run -d` (pause + nginx +
# busybox over the same rootfs) in the same run; resident memory of one pod's supervisor
# and pause; 100 one-container pods up at once.
# Usage: bench/pod.sh [ROUNDS] [PODS]   (root; builds fixtures if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-10}
NPODS=${2:-100}
SEED=$(cd .. && pwd)/shared/seed-examples
PODRUN=${PODRUN:-$PWD/target/release/podrun}
[ -x "$PODRUN" ] || cargo build --release
work=$(mktemp -d /tmp/podrun-bench-pod.XXXXXX)
# Pulls never leave the machine: docker.io only through mirrors (none configured here).
export PODRUN_REGISTRIES_CONFIG=$work/registries.json CONTAINERS_REGISTRIES_CONF=$work/registries.conf
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
export PODRUN_ROOT=$work/root PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs
cleanup() {
  for d in "$PODRUN_ROOT"/pods/*/; do
    [ -d "$d" ] || continue
    n=$(basename "$d"); "$PODRUN" delete pod "${n#*_}" -n "${n%%_*}" --grace-period 0 --force >/dev/null 2>&1 || true
  done
  for id in $(runc --root "$work/runc" list -q 2>/dev/null); do runc --root "$work/runc" delete -f "$id" >/dev/null 2>&1 || true; done
  for r in "$work"/bundles/*/rootfs; do
    umount "$r" 2>/dev/null || true
    "$PODRUN" image unmount "bench-$(basename "$(dirname "$r")")" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
bash rootfs-fixtures/build.sh busybox nginx >/dev/null
bash rootfs-fixtures/load.sh "$PODRUN" busybox nginx >/dev/null
ms() { python3 -c "import sys; print(f'{(int(sys.argv[2])-int(sys.argv[1]))/1e6:.1f}')" "$1" "$2"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# runc: the same three processes (pause, nginx, the busybox loop) as three containers.
mkdir -p "$work/bundles" "$work/runc"
mkbundle() { # mkbundle NAME IMAGE ARGS_JSON
  local b=$work/bundles/$1
  mkdir -p "$b"
  local path
  path=$("$PODRUN" image mount "$2" "bench-$1" | awk '{print $1}')
  mkdir -p "$b/rootfs" && mount --bind "$path" "$b/rootfs"
  (cd "$b" && runc spec)
  python3 - "$b/config.json" "$3" <<'PY'
import json, sys
p, args = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(p)); c["process"]["terminal"] = False; c["process"]["args"] = args
c["root"]["readonly"] = False
json.dump(c, open(p, "w"))
PY
}
mkbundle pause busybox:1.30 '["sleep","1000000"]'
mkbundle nginx nginx:1.17.1 '["nginx","-g","daemon off;"]'
mkbundle busybox busybox:1.30 '["/bin/sh","-c","touch /tmp/hello.txt; while true; do echo $(date +%T) >> /tmp/hello.txt; sleep 3; done"]'

up_ms=(); down_ms=(); runc_ms=()
for i in $(seq "$ROUNDS"); do
  t0=$(date +%s%N)
  "$PODRUN" up "$SEED/pod-command.yaml" >/dev/null
  t1=$(date +%s%N)
  "$PODRUN" delete pod pod-command -n dev --grace-period 0 >/dev/null
  t2=$(date +%s%N)
  up_ms+=("$(ms "$t0" "$t1")"); down_ms+=("$(ms "$t1" "$t2")")
  t0=$(date +%s%N)
  for b in pause nginx busybox; do runc --root "$work/runc" run -d --bundle "$work/bundles/$b" "r$i-$b" >/dev/null 2>&1 </dev/null; done
  t1=$(date +%s%N)
  runc_ms+=("$(ms "$t0" "$t1")")
  for b in pause nginx busybox; do runc --root "$work/runc" delete -f "r$i-$b" >/dev/null 2>&1; done
done
up=$(printf '%s\n' "${up_ms[@]}" | median)
down=$(printf '%s\n' "${down_ms[@]}" | median)
rc=$(printf '%s\n' "${runc_ms[@]}" | median)
echo "pod-command: podrun up median ${up} ms, podrun delete (grace 0) median ${down} ms, 3x runc run -d median ${rc} ms ($ROUNDS rounds)"
python3 -c "print(f'ratio up / 3x runc run -d: {float(\"$up\")/float(\"$rc\"):.2f} (target <= 1.0)')"

# Memory of one pod's supervisor + pause.
"$PODRUN" up "$SEED/pod-command.yaml" >/dev/null
sup=$(awk '{print $1}' "$PODRUN_ROOT/pods/dev_pod-command/supervisor.pid")
rss_sup=$(awk '/VmRSS/ {print $2}' /proc/$sup/status)
sleep 2
pss_sup=$(awk '/^Pss:/ {print $2}' /proc/$sup/smaps_rollup)
pause_pid=
for p in $(cat /proc/$sup/task/$sup/children); do [ "$(cat /proc/$p/comm)" = pause ] && { pause_pid=$p; break; }; done
rss_pause=$(awk '/VmRSS/ {print $2}' /proc/$pause_pid/status)
echo "supervisor RSS ${rss_sup} KiB (PSS ${pss_sup} KiB), pause RSS ${rss_pause} KiB: total $((rss_sup + rss_pause)) KiB (target <= 2048)"
"$PODRUN" delete pod pod-command -n dev --grace-period 0 >/dev/null

# Many pods at once.
t0=$(date +%s%N)
fails=0
for i in $(seq "$NPODS"); do
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p%s\nspec:\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: ["sleep", "3600"]\n' "$i" | "$PODRUN" up -f - >/dev/null 2>"$work/up-$i.err" &
done
wait || true
t1=$(date +%s%N)
running=$("$PODRUN" get pods | grep -c ' Running ' || true)
echo "$NPODS pods up concurrently in $(ms "$t0" "$t1") ms: $running Running"
t0=$(date +%s%N)
for i in $(seq "$NPODS"); do "$PODRUN" delete pod "p$i" --grace-period 0 >/dev/null 2>&1 & done
wait || true
t1=$(date +%s%N)
echo "$NPODS pods deleted concurrently in $(ms "$t0" "$t1") ms; left: $(ls "$PODRUN_ROOT/pods" | grep -vc '^\.' || true)"
echo "podman kube play: not measured here; Debian's podman 4.3.1 needs crun (refuses this hybrid cgroup host) or runc with a containers.conf override."
