#!/usr/bin/env bash
# Deployment benchmark (issue 16): with `podrun serve` running, a REPLICAS-replica
# Deployment from `apply` until `get deploy` says REPLICAS/REPLICAS Ready (target: 100 in
# <= 5 s on this 2-core VM); then an image-free rolling update of it (a template
# annotation: `rollout restart`) until `rollout status` says it rolled out.
# Usage: bench/deployment.sh [REPLICAS]   (root; builds fixtures if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
PODRUN=${PODRUN:-$PWD/target/release/podrun}
[ -x "$PODRUN" ] || cargo build --release
work=$(mktemp -d /tmp/podrun-bench-deploy.XXXXXX)
export PODRUN_REGISTRIES_CONFIG=$work/registries.json CONTAINERS_REGISTRIES_CONF=$work/registries.conf
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
export PODRUN_ROOT=$work/root PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs
export PODRUN_NODE_CONFIG=$work/config.yaml PODRUN_NETWORK=none
echo "maxPods: $((N * 2 + 10))" >"$PODRUN_NODE_CONFIG"
agent=
cleanup() {
  "$PODRUN" delete deployment bench >/dev/null 2>&1 || true
  sleep 1
  [ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
  for d in "$PODRUN_ROOT"/pods/*/; do
    [ -d "$d" ] || continue
    n=$(basename "$d")
    "$PODRUN" delete pod "${n#*_}" -n "${n%%_*}" --grace-period 0 --force >/dev/null 2>&1 &
  done
  wait || true
  rm -rf "$work"
}
trap cleanup EXIT
bash rootfs-fixtures/build.sh busybox >/dev/null
bash rootfs-fixtures/load.sh "$PODRUN" busybox >/dev/null
ms() { python3 -c "import sys; print(f'{(int(sys.argv[2])-int(sys.argv[1]))/1e6:.0f}')" "$1" "$2"; }
"$PODRUN" serve --manifests "$work/manifests" 2>"$work/agent.log" &
agent=$!
while [ ! -S "$PODRUN_ROOT/agent.sock" ]; do sleep 0.05; done
cat >"$work/d.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench
spec:
  replicas: $N
  selector:
    matchLabels: {app: bench}
  template:
    metadata:
      labels: {app: bench}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: c
        image: busybox:1.30
        command: ["sleep", "36000"]
YAML
t0=$(date +%s%N)
"$PODRUN" apply -f "$work/d.yaml" >/dev/null
while :; do
  ready=$("$PODRUN" get deploy bench 2>/dev/null | awk 'NR==2 {print $2}')
  [ "$ready" = "$N/$N" ] && break
  [ $(( ($(date +%s%N) - t0) / 1000000000 )) -gt 300 ] && break
  sleep 0.05
done
t1=$(date +%s%N)
echo "Deployment of $N replicas: READY $ready after $(ms "$t0" "$t1") ms from apply (target: 100 within 5000 ms)"
t0=$(date +%s%N)
"$PODRUN" rollout restart deployment/bench >/dev/null
"$PODRUN" rollout status deployment/bench --timeout=300s >/dev/null || echo "rollout did not finish"
t1=$(date +%s%N)
echo "rolling update (restart) of $N replicas: rolled out after $(ms "$t0" "$t1") ms"
