#!/usr/bin/env bash
# `podrun up --wait` of the seed pod-command.yaml against `podman kube play` of the same
# file, in the same run, on the same images (issue 15's target: podrun <= 0.1x podman).
# podman runs privately (its own storage, runroot, containers.conf with runc, cgroupfs
# and the file event logger, as this hybrid host needs) with --network none, so it does
# no network set-up that podrun's bridge would not also do.
# Usage: bench/kube-play.sh [ROUNDS]   (root)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SEED=$PWD/tests/seed-examples
PODRUN=${PODRUN:-$PWD/target/release/podrun}
[ -x "$PODRUN" ] || cargo build --release
work=$(mktemp -d /tmp/podrun-bench-kube.XXXXXX)
export PODRUN_REGISTRIES_CONFIG=$work/registries.json CONTAINERS_REGISTRIES_CONF=$work/registries.conf
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
# podman reads the same file: docker.io blocked, so it too uses only local images.
printf 'unqualified-search-registries = ["docker.io"]\n[[registry]]\nlocation = "docker.io"\nblocked = true\n' >"$CONTAINERS_REGISTRIES_CONF"
export PODRUN_ROOT=$work/root PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs
mkdir -p "$work"/{storage,run,tmp,volumes}
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
events_logfile_path = "$work/events.log"
tmp_dir = "$work/tmp"
volume_path = "$work/volumes"
infra_image = "docker.io/library/pause:podrun"
infra_command = "/pause"
CONF
printf '[storage]\ndriver = "overlay"\nrunroot = "%s/run"\ngraphroot = "%s/storage"\n' "$work" "$work" >"$work/storage.conf"
export CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf
podman() { /usr/bin/podman --root "$work/storage" --runroot "$work/run" --tmpdir "$work/tmp" "$@"; }
cleanup() {
  "$PODRUN" delete pod pod-command -n dev --grace-period 0 --force >/dev/null 2>&1 || true
  podman pod rm -af -t 0 >/dev/null 2>&1 || true
  podman system prune -f >/dev/null 2>&1 || true
  grep " $work/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
bash rootfs-fixtures/build.sh busybox nginx >/dev/null
bash rootfs-fixtures/load.sh "$PODRUN" busybox nginx >/dev/null
# The images podman needs: the fixtures and an infra image holding podrun's pause.
dest="containers-storage:[overlay@$work/storage+$work/run]"
for img in busybox:1.30 nginx:1.17.1; do
  skopeo --insecure-policy copy -q "oci:rootfs-fixtures/out/${img%%:*}:${img#*:}" "${dest}docker.io/library/$img"
done
pause_bin=$(ls -t target/release/build/podrun-*/out/pause 2>/dev/null | head -1)
mkdir -p "$work/pause-rootfs" && install -m 0755 "$pause_bin" "$work/pause-rootfs/pause"
python3 rootfs-fixtures/mkoci.py --out "$work/pause-oci" --name docker.io/library/pause:podrun \
  --layer "$work/pause-rootfs" --entrypoint '["/pause"]' >/dev/null
skopeo --insecure-policy copy -q "oci:$work/pause-oci:podrun" "${dest}docker.io/library/pause:podrun"
ms() { python3 -c "import sys; print(f'{(int(sys.argv[2])-int(sys.argv[1]))/1e6:.1f}')" "$1" "$2"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
ours=(); theirs=()
for _ in $(seq "$ROUNDS"); do
  t0=$(date +%s%N)
  "$PODRUN" up --wait "$SEED/pod-command.yaml" >/dev/null
  t1=$(date +%s%N)
  ours+=("$(ms "$t0" "$t1")")
  "$PODRUN" delete pod pod-command -n dev --grace-period 0 >/dev/null
  t0=$(date +%s%N)
  podman kube play --network none "$SEED/pod-command.yaml" >/dev/null
  t1=$(date +%s%N)
  theirs+=("$(ms "$t0" "$t1")")
  podman kube down "$SEED/pod-command.yaml" >/dev/null
done
a=$(printf '%s\n' "${ours[@]}" | median)
b=$(printf '%s\n' "${theirs[@]}" | median)
echo "pod-command: podrun up --wait median $a ms, podman kube play median $b ms ($ROUNDS rounds)"
python3 -c "print(f'ratio podrun / podman: {float(\"$a\")/float(\"$b\"):.2f} (target <= 0.10)')"
