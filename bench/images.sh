#!/usr/bin/env bash
# Image benchmarks (root):
#  1. pull + unpack of the nginx fixture from a loopback registry (podrun pull) against
#     `skopeo copy` of the same image to a local dir, in the same run. Target: ≤ 1.5x.
#  2. preparing a container rootfs from a present image (`podrun image mount`, an
#     overlay mount; process start included). Target: < 5 ms.
# Usage: bench/images.sh [PODRUN_BINARY]   (default: target/release/podrun, built if missing)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
PODRUN=${1:-$HERE/target/release/podrun}
RUNS=${RUNS:-10}
for t in hyperfine skopeo docker-registry jq; do
    command -v $t >/dev/null || { echo "images.sh: $t is not installed" >&2; exit 1; }
done
[ -x "$PODRUN" ] || (cd "$HERE" && cargo build --release --bin podrun)
bash "$HERE/rootfs-fixtures/build.sh" nginx >/dev/null

W=$(mktemp -d /tmp/podrun-bench-images.XXXXXX)
REG_PID=""
cleanup() {
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
    "$PODRUN" --data-dir "$W/data" image unmount bench-ctr >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $W/registry
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$W/registry.yml" >/dev/null 2>&1 &
REG_PID=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
REF=127.0.0.1:$PORT/library/nginx:1.17.1
skopeo copy --quiet --dest-tls-verify=false oci:"$HERE/rootfs-fixtures/out/nginx:1.17.1" docker://$REF

echo "== pull + unpack nginx:1.17.1 from a loopback registry ($RUNS runs each)"
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$W/pull.json" \
    --prepare "rm -rf $W/data" -n "podrun pull" "$PODRUN --data-dir $W/data pull -q $REF" \
    --prepare "rm -rf $W/skopeo" -n "skopeo copy" "skopeo copy --quiet --src-tls-verify=false docker://$REF dir:$W/skopeo"
P=$(jq '.results[] | select(.command=="podrun pull") | .mean' "$W/pull.json")
S=$(jq '.results[] | select(.command=="skopeo copy") | .mean' "$W/pull.json")
RATIO=$(python3 -c "print(f'{$P/$S:.2f}')")
printf 'pull: podrun %.1f ms, skopeo copy %.1f ms, ratio %sx (target <= 1.5x)\n' \
    "$(python3 -c "print($P*1000)")" "$(python3 -c "print($S*1000)")" "$RATIO"

echo "== prepare a container rootfs from a present image"
"$PODRUN" --data-dir "$W/data" pull -q $REF >/dev/null
hyperfine --style basic --warmup 3 --runs 50 -N --export-json "$W/mount.json" \
    --prepare "$PODRUN --data-dir $W/data image unmount bench-ctr" \
    -n "image mount" "$PODRUN --data-dir $W/data image mount $REF bench-ctr"
M=$(jq '.results[0].mean' "$W/mount.json")
MODE=$("$PODRUN" --data-dir "$W/data" image mount $REF bench-ctr | awk '{print $2}')
"$PODRUN" --data-dir "$W/data" image unmount bench-ctr
printf 'rootfs: %.2f ms per prepare (mode %s, process start included; target < 5 ms)\n' \
    "$(python3 -c "print($M*1000)")" "$MODE"
