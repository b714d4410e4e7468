#!/usr/bin/env bash
# Serves the fixture images from a loopback registry (Debian's docker-registry) and points
# podrun's docker.io at it, so `podrun pull nginx:1.17.1` (and imagePullPolicy Always /
# IfNotPresent) work with no internet.
#   registry.sh start [DATA_DIR]   start on a free port, push busybox/nginx/debian (those
#                                  built) under every tag of tags.sh, write
#                                  DATA_DIR/registries.json (docker.io reached only
#                                  through this mirror: "mirrorOnly")
#   registry.sh stop  [DATA_DIR]   stop it (by pid) and remove the mirror entry
# DATA_DIR defaults to $PODRUN_DATA_DIR or /var/lib/podrun. State: DATA_DIR/fixture-registry/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/tags.sh"
OUT=${FIXTURES_OUT:-$HERE/out}
cmd=${1:-}
DATA=${2:-${PODRUN_DATA_DIR:-/var/lib/podrun}}
STATE=$DATA/fixture-registry

case $cmd in
start)
    for t in docker-registry skopeo python3; do
        command -v $t >/dev/null || { echo "registry.sh: $t is not installed" >&2; exit 1; }
    done
    if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
        echo "registry.sh: already running at $(cat "$STATE/addr")"; exit 0
    fi
    mkdir -p "$STATE"
    PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
    cat > "$STATE/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $STATE/storage
http:
  addr: 127.0.0.1:$PORT
EOF
    docker-registry serve "$STATE/config.yml" >"$STATE/log" 2>&1 &
    echo $! > "$STATE/pid"
    echo "127.0.0.1:$PORT" > "$STATE/addr"
    for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
    pushed=0
    for name in busybox nginx debian; do
        [ -f "$OUT/$name/index.json" ] || continue
        read -r -a tags <<<"${FIXTURE_TAGS[$name]}"
        for tag in "${tags[@]}"; do
            skopeo copy --quiet --dest-tls-verify=false "oci:$OUT/$name:${tags[0]}" \
                "docker://127.0.0.1:$PORT/library/$name:$tag"
        done
        pushed=$((pushed + 1))
    done
    [ $pushed -gt 0 ] || echo "registry.sh: no fixtures built yet (bash rootfs-fixtures/build.sh)" >&2
    python3 - "$DATA/registries.json" "http://127.0.0.1:$PORT" <<'EOF'
import json, os, sys
path, url = sys.argv[1], sys.argv[2]
cfg = json.load(open(path)) if os.path.exists(path) else {}
cfg.setdefault("mirrors", {})["docker.io"] = [url]
# Only through the mirror: a fixture the registry lacks fails here, never asks docker.io.
if "docker.io" not in cfg.setdefault("mirrorOnly", []):
    cfg["mirrorOnly"].append("docker.io")
tmp = path + ".tmp"
json.dump(cfg, open(tmp, "w"), indent=2)
os.rename(tmp, path)
EOF
    echo "registry at 127.0.0.1:$PORT serves docker.io for $DATA"
    ;;
stop)
    if [ -f "$STATE/pid" ]; then
        kill "$(cat "$STATE/pid")" 2>/dev/null || true
        rm -f "$STATE/pid"
    fi
    if [ -f "$DATA/registries.json" ]; then
        python3 - "$DATA/registries.json" <<'EOF'
import json, os, sys
path = sys.argv[1]
cfg = json.load(open(path))
cfg.get("mirrors", {}).pop("docker.io", None)
if "docker.io" in cfg.get("mirrorOnly", []):
    cfg["mirrorOnly"].remove("docker.io")
for k in ("mirrors", "mirrorOnly"):
    if not cfg.get(k):
        cfg.pop(k, None)
if cfg:
    json.dump(cfg, open(path + ".tmp", "w"), indent=2); os.rename(path + ".tmp", path)
else:
    os.remove(path)
EOF
    fi
    rm -rf "$STATE"
    ;;
*)
    echo "usage: registry.sh start|stop [DATA_DIR]" >&2; exit 2 ;;
esac
