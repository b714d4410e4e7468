#!/usr/bin/env bash
# Imports the built fixture layouts (rootfs-fixtures/out/*) into podrun's image store,
# under every tag of tags.sh (nginx:1.17.1 and nginx:latest, ...).
# Usage: load.sh [PODRUN_BINARY] [IMAGE...]   (store: $PODRUN_DATA_DIR or /var/lib/podrun)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/tags.sh"
OUT=${FIXTURES_OUT:-$HERE/out}
PODRUN=${1:-$HERE/../target/debug/podrun}
shift || true
images=("$@")
[ ${#images[@]} -gt 0 ] || images=(busybox nginx debian)
[ -x "$PODRUN" ] || { echo "load.sh: $PODRUN is not built (cargo build)" >&2; exit 1; }
for i in "${images[@]}"; do
    [ -f "$OUT/$i/index.json" ] || { echo "load.sh: $OUT/$i missing: run rootfs-fixtures/build.sh $i" >&2; exit 1; }
    "$PODRUN" import --quiet "$OUT/$i"
    read -r -a tags <<<"${FIXTURE_TAGS[$i]}"
    for t in "${tags[@]:1}"; do
        "$PODRUN" import --quiet --tag "docker.io/library/$i:$t" "$OUT/$i"
    done
done
