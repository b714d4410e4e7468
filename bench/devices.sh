#!/usr/bin/env bash
# Device filter cost (issue 13): what loading and attaching the eBPF device program adds
# to a container start, as podrun itself times it (`--debug` log lines of
# src/runtime/cgroups/devices_bpf.rs: load_us = BPF_PROG_LOAD incl. the verifier,
# attach_us = id lookup + BPF_PROG_ATTACH, total_us = from opening the cgroup to
# detaching nothing), over RUNS `podrun run` of a busybox `true` with runc's default
# rules, then `podrun run` wall time with the eBPF filter vs without it (hyperfine).
# On a hybrid host the filter goes on its cgroup2 hierarchy (PODRUN_DEVICES_BPF=1) and
# "without" is the v1 devices cgroup; on pure v2 (run it in the VM) "without" does not
# exist and only the figures are printed.
# Usage: bench/devices.sh [RUNS]   (root; hyperfine, jq; PODRUN=path to use another build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-200}
PODRUN=${PODRUN:-$PWD/target/debug/podrun}
[ -x "$PODRUN" ] || cargo build
command -v jq >/dev/null || { echo "bench/devices.sh needs jq" >&2; exit 1; }
work=$(mktemp -d /tmp/podrun-bench-dev.XXXXXX)
cleanup() {
  for id in $("$PODRUN" --root "$work/root" list -q 2>/dev/null); do
    "$PODRUN" --root "$work/root" delete --force "$id" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

b=$work/bundle
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
cp /bin/busybox "$b/rootfs/bin/busybox"
ln -sf busybox "$b/rootfs/bin/sh"; ln -sf busybox "$b/rootfs/bin/true"
"$PODRUN" spec --bundle "$b"
jq '.process.terminal=false | .process.args=["true"]' "$b/config.json" >"$b/c.json"
mv "$b/c.json" "$b/config.json"

hybrid=0
if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ -d /sys/fs/cgroup/devices ]; then
  hybrid=1
  export PODRUN_DEVICES_BPF=1
fi
log=$work/debug.log
for i in $(seq "$RUNS"); do
  "$PODRUN" --root "$work/root" --debug --log "$log" run --bundle "$b" "d-$$-$i"
done
grep -m1 -o 'device filter on [^"]*' "$log" || true
summary() { # summary FIELD
  grep -o "$1=[0-9.]*" "$log" | cut -d= -f2 | sort -g |
    awk -v f="$1" '{ v[NR] = $1; s += $1 }
      END { if (NR == 0) { print f ": no samples"; exit 1 }
            printf "%-9s n=%d  median %.1f us  p90 %.1f us  mean %.1f us  max %.1f us\n",
              f, NR, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], s / NR, v[NR] }'
}
echo "per container start (target: total <= 500 us):"
summary load_us
summary attach_us
summary total_us

if [ "$hybrid" = 1 ] && command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$work/h.json" \
    -n "v1 devices cgroup" "env PODRUN_DEVICES_BPF=0 $PODRUN --root $work/root run --bundle $b v-$$" \
    -n "eBPF filter" "env PODRUN_DEVICES_BPF=1 $PODRUN --root $work/root run --bundle $b e-$$" >/dev/null
  jq -r '.results[] | "podrun run, \(.command): median \(.median*1000 | .*100|round/100) ms, mean \(.mean*1000 | .*100|round/100) ms (σ \(.stddev*1000 | .*100|round/100) ms)"' "$work/h.json"
fi
