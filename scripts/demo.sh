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

# Then a pod: the seed's pod-command (nginx + a busybox writing the time every 3 s).
cd "$(dirname "$0")/.."
seed=$(cd .. && pwd)/shared/seed-examples/pod-command.yaml
[ -f "$seed" ] || seed=$PWD/tests/seed-examples/pod-command.yaml
bash rootfs-fixtures/build.sh busybox nginx >/dev/null
bash rootfs-fixtures/load.sh "$podrun" busybox nginx >/dev/null
"$podrun" delete pod pod-command -n dev --grace-period 0 >/dev/null 2>&1 || true
echo "+ podrun up $seed"
"$podrun" up "$seed"
sleep 4
echo "+ podrun get pods -n dev"
"$podrun" get pods -n dev
echo "+ podrun exec pod-command -n dev -c busybox -- tail -n 2 /tmp/hello.txt"
"$podrun" exec pod-command -n dev -c busybox -- tail -n 2 /tmp/hello.txt
echo "+ podrun delete pod pod-command -n dev --grace-period 0"
"$podrun" delete pod pod-command -n dev --grace-period 0
