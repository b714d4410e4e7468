#!/usr/bin/env bash
# Pending-pod benchmark (issue 14): idle CPU of the supervisors of pods refused by
# admission ("Too many pods") while the node runs its maximum. maxPods is set to
# PODS-PENDING, PODS one-container pods are brought up, and the CPU time (utime+stime
# from /proc) of the Pending pods' supervisors is measured over SECONDS of idleness.
# Target: ~0 (they wait on inotify for node.json or a pod's end; before issue 14 each
# re-read every pod's state once a second, ~0.9 % of a core each).
# Measured 2026-12-02 on the shared 2-core VM (release, 200 pods, 14 Pending, 20 s):
# before issue 14: 333 ticks, 1.19 % of a core each; after: 4 ticks, 0.014 % each. There
# fs.inotify.max_user_instances (128) is used up by the running supervisors, so these
# Pending pods take the fallback: three stats a second, admission only on a change.
# Usage: bench/pending.sh [PODS] [PENDING] [SECONDS]   (root; builds fixtures if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=${1:-200}
PENDING=${2:-14}
SECS=${3:-30}
PODRUN=${PODRUN:-$PWD/target/release/podrun}
[ -x "$PODRUN" ] || cargo build --release
work=$(mktemp -d /tmp/podrun-bench-pending.XXXXXX)
export PODRUN_REGISTRIES_CONFIG=$work/registries.json CONTAINERS_REGISTRIES_CONF=$work/registries.conf
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
export PODRUN_ROOT=$work/root PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs
export PODRUN_NODE_CONFIG=$work/config.yaml
echo "maxPods: $((PODS - PENDING))" >"$PODRUN_NODE_CONFIG"
cleanup() {
  for d in "$PODRUN_ROOT"/pods/*/; do
    [ -d "$d" ] || continue
    n=$(basename "$d")
    "$PODRUN" delete pod "${n#*_}" -n "${n%%_*}" --grace-period 0 --force >/dev/null 2>&1 &
  done
  wait
  rm -rf "$work"
}
trap cleanup EXIT
bash rootfs-fixtures/build.sh busybox >/dev/null
bash rootfs-fixtures/load.sh "$PODRUN" busybox >/dev/null
for i in $(seq "$PODS"); do
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p%s\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    imagePullPolicy: Never\n    command: [sleep, "3600"]\n' "$i" >"$work/p$i.yaml"
  "$PODRUN" up "$work/p$i.yaml" >/dev/null
done
pending=()
for d in "$PODRUN_ROOT"/pods/*/; do
  if python3 -c "import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s.get('phase')=='Pending' else 1)" "$d/status.json"; then
    pending+=("$(awk '{print $1}' "$d/supervisor.pid")")
  fi
done
echo "${#pending[@]} of $PODS pods Pending (maxPods $((PODS - PENDING)))"
[ "${#pending[@]}" -gt 0 ] || exit 1
ticks() { # summed utime+stime (clock ticks) of the given pids
  local t=0 f
  for p in "$@"; do
    f=$(cut -d' ' -f14,15 "/proc/$p/stat")
    t=$((t + ${f% *} + ${f#* }))
  done
  echo "$t"
}
sleep 2
t0=$(ticks "${pending[@]}")
sleep "$SECS"
t1=$(ticks "${pending[@]}")
hz=$(getconf CLK_TCK)
python3 -c "
n, d, hz, secs = ${#pending[@]}, $t1 - $t0, $hz, $SECS
print(f'idle CPU of {n} Pending supervisors over {secs} s: {d} ticks = {100*d/hz/secs:.3f} % of a core in all, {100*d/hz/secs/n:.4f} % each')"
