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
# Pulls never leave the machine: docker.io only through mirrors (none configured here).
export PODRUN_REGISTRIES_CONFIG=$W/registries.json CONTAINERS_REGISTRIES_CONF=$W/registries.conf
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
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

# Each run pulls into a fresh directory and nothing is deleted between runs: on ext4,
# creating inodes right after deleting thousands makes the allocator crawl through the
# recently deleted ones, which would measure the filesystem, not the pull.
bench_pull() { # bench_pull NAME REF RUNS
    local name=$1 ref=$2 runs=$3
    echo "== pull + unpack $name from a loopback registry ($runs runs each)"
    hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$W/pull-$name.json" \
        -n "podrun pull" "$PODRUN --data-dir $W/p/\$(date +%s%N) pull -q $ref" \
        -n "skopeo copy" "skopeo copy --quiet --src-tls-verify=false docker://$ref dir:$W/s/\$(date +%s%N)"
    local p s
    # Medians: other builds share these cores, and a mean takes every stall in.
    p=$(jq '.results[] | select(.command=="podrun pull") | .median' "$W/pull-$name.json")
    s=$(jq '.results[] | select(.command=="skopeo copy") | .median' "$W/pull-$name.json")
    python3 -c "print(f'pull $name (medians): podrun {$p*1000:.1f} ms, skopeo copy {$s*1000:.1f} ms, ratio {$p/$s:.2f}x (target <= 1.5x)')"
    # Deleted only at exit (see above).
}
mkdir -p "$W/p" "$W/s"
bench_pull nginx:1.17.1 "$REF" "$RUNS"
if [ -f "$HERE/rootfs-fixtures/out/debian/index.json" ]; then
    skopeo copy --quiet --dest-tls-verify=false oci:"$HERE/rootfs-fixtures/out/debian:latest" \
        docker://127.0.0.1:$PORT/library/debian:latest
    bench_pull debian "127.0.0.1:$PORT/library/debian:latest" 5
fi

echo "== prepare a container rootfs from a present image"
"$PODRUN" --data-dir "$W/data" pull -q $REF >/dev/null
hyperfine --style basic --warmup 3 --runs 50 -N --export-json "$W/mount.json" \
    --prepare "$PODRUN --data-dir $W/data image unmount bench-ctr" \
    -n "image mount" "$PODRUN --data-dir $W/data image mount $REF bench-ctr"
M=$(jq '.results[0].median' "$W/mount.json")
CPU=$(jq '.results[0].user + .results[0].system' "$W/mount.json")
MODE=$("$PODRUN" --data-dir "$W/data" image mount $REF bench-ctr | awk '{print $2}')
"$PODRUN" --data-dir "$W/data" image unmount bench-ctr
printf 'rootfs: %.2f ms per prepare (median wall; %.2f ms CPU) (mode %s, process start included; target < 5 ms)\n' \
    "$(python3 -c "print($M*1000)")" "$(python3 -c "print($CPU*1000)")" "$MODE"
