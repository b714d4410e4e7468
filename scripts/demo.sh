#!/usr/bin/env bash
# Demo: a busybox container through podrun's OCI CLI (runc's command line), then the seed's
# pod-command pod (nginx + busybox): up, get pods, exec, logs, curl its IP, delete.
# Everything lives in a throw-away directory (state, images, logs) and on a bridge of its
# own; the demo removes it all on exit, so it leaves no pod, mount, cgroup, link or process.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
podrun=${PODRUN:-$repo/target/debug/podrun}
[ -x "$podrun" ] || { echo "demo.sh: $podrun is not built (cargo build)" >&2; exit 1; }
work=$(mktemp -d /tmp/podrun-demo.XXXXXX)
export PODRUN_ROOT=$work/run PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs
# A bridge and subnet of the demo's own, so nothing of a real node's network is touched.
export PODRUN_BRIDGE=podrun-demo PODRUN_POD_CIDR=10.251.19.0/24
# The images come from the fixtures; a pull must never leave the machine.
export PODRUN_REGISTRIES_CONFIG=$work/registries.json
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
bridge_existed=0
ip link show "$PODRUN_BRIDGE" >/dev/null 2>&1 && bridge_existed=1

cleanup() {
    set +e
    "$podrun" delete pod pod-command -n dev --grace-period 0 >/dev/null 2>&1
    # Wait for the supervisor to finish its teardown before removing its directories.
    for _ in $(seq 100); do
        [ -n "$(ls -A "$PODRUN_ROOT/pods" 2>/dev/null)" ] || break
        sleep 0.1
    done
    "$podrun" delete --force "demo-$$" >/dev/null 2>&1
    if [ $bridge_existed = 0 ]; then
        ip link del "$PODRUN_BRIDGE" 2>/dev/null
        nft delete table ip podrun_podrun_demo 2>/dev/null
    fi
    # Container rootfs overlays are unmounted by delete; a failed run may leave one.
    for m in $(awk -v w="$work" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

step() { echo; echo "+ $*"; }

mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for app in sh echo cat hostname id ls; do ln -s busybox "$work/bundle/rootfs/bin/$app"; done
(cd "$work/bundle" && "$podrun" spec)
# Replace the default `sh` with a one-shot greeting (no terminal needed).
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sh", "-c", "echo hello from a podrun container on $(hostname), uid $(id -u)"/' "$work/bundle/config.json"
step "podrun run --bundle $work/bundle demo-$$"
"$podrun" run --bundle "$work/bundle" "demo-$$"

# Then a pod: the seed's pod-command (nginx + a busybox writing the time every 3 s).
seed=$repo/../shared/seed-examples/pod-command.yaml
[ -f "$seed" ] || seed=$repo/tests/seed-examples/pod-command.yaml
bash "$repo/rootfs-fixtures/build.sh" busybox nginx >/dev/null
bash "$repo/rootfs-fixtures/load.sh" "$podrun" busybox nginx >/dev/null
step "podrun up $seed --wait"
"$podrun" up "$seed" --wait --timeout 60s
sleep 4
step "podrun get pods -n dev -o wide"
"$podrun" get pods -n dev -o wide
step "podrun exec pod-command -n dev -c busybox -- tail -n 2 /tmp/hello.txt"
"$podrun" exec pod-command -n dev -c busybox -- tail -n 2 /tmp/hello.txt
pod_json=$("$podrun" get pods pod-command -n dev -o json)
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]) or "")' "$1" <<<"$pod_json"; }
ip=$(field 'd["status"].get("podIP")') uid=$(field 'd["metadata"]["uid"]')
if [ -n "$ip" ]; then
    step "curl -s http://$ip/ | grep title"
    curl -s --max-time 5 "http://$ip/" | grep '<title>'
fi
step "podrun logs pod-command -n dev -c nginx"
"$podrun" logs pod-command -n dev -c nginx
step "podrun delete pod pod-command -n dev --grace-period 0"
"$podrun" delete pod pod-command -n dev --grace-period 0
step "podrun get pods -n dev"
"$podrun" get pods -n dev
# The pod's cgroups go with it (as kubelet's pod<uid> directories).
for _ in $(seq 50); do
    left=$(find /sys/fs/cgroup -maxdepth 5 -type d -name "pod$uid" 2>/dev/null)
    [ -z "$left" ] && break
    sleep 0.1
done
[ -z "$left" ] || { echo "demo.sh: cgroups left behind: $left" >&2; exit 1; }
