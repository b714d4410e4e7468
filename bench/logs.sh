#!/usr/bin/env bash
# Log writer benchmark (issue 17): one busybox container writes BYTES of `yes` output
# (2-byte lines, the worst case: one CRI record per 2 bytes) as fast as it can; the pod's
# supervisor turns it into rotated CRI log files (containerLogMaxSize 10Mi, 5 files).
# Prints the supervisor's own CPU (utime+stime) and its compressing children's, per GB
# the container wrote, and the wall time.
# Usage: bench/logs.sh [BYTES]   (root; release build; fixtures built if needed)
# Measured 2026-12-02 (release, load average ~20): 1 GB in 98 s, supervisor 32.5 s/GB
# (1.6 s per GB of log written), compressing children 12.2 s/GB.
set -euo pipefail
cd "$(dirname "$0")/.."
BYTES=${1:-1000000000}
PODRUN=${PODRUN:-$PWD/target/release/podrun}
[ -x "$PODRUN" ] || cargo build --release
work=$(mktemp -d /tmp/podrun-bench-logs.XXXXXX)
export PODRUN_REGISTRIES_CONFIG=$work/registries.json CONTAINERS_REGISTRIES_CONF=$work/registries.conf
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
export PODRUN_ROOT=$work/root PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs
export PODRUN_NODE_CONFIG=$work/config.yaml
printf 'containerLogMaxSize: 10Mi\ncontainerLogMaxFiles: 5\n' >"$PODRUN_NODE_CONFIG"
cleanup() {
  "$PODRUN" delete pod logbench --grace-period 0 --force >/dev/null 2>&1 || true
  for _ in $(seq 100); do [ -e "${spid:-/nonexistent}" ] && kill -0 "$(cat "$spid" | cut -d' ' -f1)" 2>/dev/null || break; sleep 0.1; done
  rm -rf "$work"
}
trap cleanup EXIT
bash rootfs-fixtures/build.sh busybox >/dev/null
bash rootfs-fixtures/load.sh "$PODRUN" busybox >/dev/null
"$PODRUN" up -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: logbench}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: busybox:1.30
    command: [sh, -c, 'sleep 1; yes | head -c $BYTES; echo; echo bench-done; sleep 3600']
YAML
spid=$PODRUN_ROOT/pods/default_logbench/supervisor.pid
pid=$(cut -d' ' -f1 "$spid")
ticks() { awk '{print $14+$15, $16+$17}' "/proc/$pid/stat"; }
read -r self0 kids0 < <(ticks)
t0=$(date +%s.%N)
until "$PODRUN" logs logbench --tail 1 2>/dev/null | grep -q bench-done; do sleep 0.2; done
t1=$(date +%s.%N)
read -r self1 kids1 < <(ticks)
hz=$(getconf CLK_TCK)
awk -v s=$((self1 - self0)) -v k=$((kids1 - kids0)) -v hz="$hz" -v b="$BYTES" -v t0="$t0" -v t1="$t1" 'BEGIN {
  gb = b / 1e9
  printf "wrote %.2f GB in %.1f s; supervisor CPU %.2f s (%.2f s/GB); compressing children %.2f s (%.2f s/GB)\n",
    gb, t1 - t0, s / hz, s / hz / gb, k / hz, k / hz / gb
}'
ls -l "$PODRUN_POD_LOG_DIR"/default_logbench_*/c/
