#!/usr/bin/env bash
# Demo: run a busybox container through podrun's OCI CLI (runc's command line).
set -euo pipefail
cd "$(dirname "$0")/.."
podrun=${PODRUN:-$PWD/target/debug/podrun}
work=$(mktemp -d /tmp/podrun-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for app in sh echo cat hostname id ls; do ln -s busybox "$work/bundle/rootfs/bin/$app"; done
cd "$work/bundle"
"$podrun" spec
# Replace the default `sh` with a one-shot greeting (no terminal needed).
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sh", "-c", "echo hello from a podrun container on $(hostname), uid $(id -u)"/' config.json
echo "+ podrun run --bundle $work/bundle demo-$$"
"$podrun" run --bundle "$work/bundle" "demo-$$"
