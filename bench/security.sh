#!/usr/bin/env bash
# Security cost (issue 8): wall time of `podrun run` of a busybox bundle running `true`,
# bare (all capabilities, no masked/read-only paths, no seccomp) vs containerd's default
# hardening (14 capabilities, masked and read-only /proc paths, no_new_privs) vs the
# hardening plus the RuntimeDefault seccomp profile (taken from a real pod's config.json).
# Usage: bench/security.sh [RUNS]   (root; hyperfine; PODRUN=path to use another build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-200}
PODRUN=${PODRUN:-$PWD/target/debug/podrun}
[ -x "$PODRUN" ] || cargo build
command -v hyperfine >/dev/null || { echo "bench/security.sh needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench/security.sh needs jq" >&2; exit 1; }
work=$(mktemp -d /tmp/podrun-bench-sec.XXXXXX)
# Pulls never leave the machine: docker.io only through mirrors (none configured here).
export PODRUN_REGISTRIES_CONFIG=$work/registries.json CONTAINERS_REGISTRIES_CONF=$work/registries.conf
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
cleanup() {
  for d in "$work"/proot/pods/*/; do
    [ -d "$d" ] || continue
    n=$(basename "$d")
    PODRUN_ROOT=$work/proot PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs \
      "$PODRUN" delete pod "${n#*_}" -n "${n%%_*}" --grace-period 0 --force >/dev/null 2>&1 || true
  done
  for id in $("$PODRUN" --root "$work/root" list -q 2>/dev/null); do
    "$PODRUN" --root "$work/root" delete --force "$id" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The RuntimeDefault profile exactly as the pod path generates it.
bash rootfs-fixtures/build.sh busybox >/dev/null
PODRUN_DATA_DIR=$work/data bash rootfs-fixtures/load.sh "$PODRUN" busybox >/dev/null
export PODRUN_ROOT=$work/proot PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs
"$PODRUN" up -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: sec}
spec:
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  containers: [{name: c, image: busybox:1.30, command: [sleep, "3600"]}]
EOF
cfg=""
for _ in $(seq 100); do
  cfg=$(grep -l '"seccomp"' "$work"/proot/containers/*/config.json 2>/dev/null | head -1 || true)
  [ -n "$cfg" ] && break
  sleep 0.1
done
[ -n "$cfg" ] || { echo "no pod container config.json with seccomp found" >&2; exit 1; }
jq '.linux.seccomp' "$cfg" >"$work/seccomp.json"
unset PODRUN_ROOT PODRUN_DATA_DIR PODRUN_POD_LOG_DIR

mk() { # mk NAME JQ-FILTER
  local b=$work/$1
  mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
  cp /bin/busybox "$b/rootfs/bin/busybox"
  ln -sf busybox "$b/rootfs/bin/sh"; ln -sf busybox "$b/rootfs/bin/true"
  "$PODRUN" spec --bundle "$b"
  jq --slurpfile sc "$work/seccomp.json" "$2" "$b/config.json" >"$b/c.json"
  mv "$b/c.json" "$b/config.json"
}
# CAP_SYS_RESOURCE left out: the test host does not hold it.
ALL='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_DAC_READ_SEARCH","CAP_FOWNER","CAP_FSETID","CAP_KILL","CAP_SETGID","CAP_SETUID","CAP_SETPCAP","CAP_LINUX_IMMUTABLE","CAP_NET_BIND_SERVICE","CAP_NET_BROADCAST","CAP_NET_ADMIN","CAP_NET_RAW","CAP_IPC_LOCK","CAP_IPC_OWNER","CAP_SYS_MODULE","CAP_SYS_RAWIO","CAP_SYS_CHROOT","CAP_SYS_PTRACE","CAP_SYS_PACCT","CAP_SYS_ADMIN","CAP_SYS_BOOT","CAP_SYS_NICE","CAP_SYS_TIME","CAP_SYS_TTY_CONFIG","CAP_MKNOD","CAP_LEASE","CAP_AUDIT_WRITE","CAP_AUDIT_CONTROL","CAP_SETFCAP"]'
DEF='["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"]'
base='.process.terminal=false | .process.args=["true"] | .root.readonly=false'
mk bare "$base | .process.capabilities={bounding:$ALL,effective:$ALL,permitted:$ALL} | .process.noNewPrivileges=false | del(.linux.maskedPaths) | del(.linux.readonlyPaths) | del(.linux.seccomp)"
mk hardened "$base | .process.capabilities={bounding:$DEF,effective:$DEF,permitted:$DEF} | .process.noNewPrivileges=true | .linux.maskedPaths=[\"/proc/acpi\",\"/proc/kcore\",\"/proc/keys\",\"/proc/latency_stats\",\"/proc/timer_list\",\"/proc/timer_stats\",\"/proc/sched_debug\",\"/proc/scsi\",\"/sys/firmware\",\"/sys/devices/virtual/powercap\"] | .linux.readonlyPaths=[\"/proc/bus\",\"/proc/fs\",\"/proc/irq\",\"/proc/sys\",\"/proc/sysrq-trigger\"] | del(.linux.seccomp)"
mk seccomp "$base | .process.capabilities={bounding:$DEF,effective:$DEF,permitted:$DEF} | .process.noNewPrivileges=true | .linux.maskedPaths=[\"/proc/acpi\",\"/proc/kcore\",\"/proc/keys\",\"/proc/latency_stats\",\"/proc/timer_list\",\"/proc/timer_stats\",\"/proc/sched_debug\",\"/proc/scsi\",\"/sys/firmware\",\"/sys/devices/virtual/powercap\"] | .linux.readonlyPaths=[\"/proc/bus\",\"/proc/fs\",\"/proc/irq\",\"/proc/sys\",\"/proc/sysrq-trigger\"] | .linux.seccomp=\$sc[0]"

# Sanity: the seccomp bundle really runs filtered.
jq '.process.args=["sh","-c","grep ^Seccomp: /proc/self/status"]' "$work/seccomp/config.json" >"$work/probe.json"
cp "$work/seccomp/config.json" "$work/seccomp.orig.json"; cp "$work/probe.json" "$work/seccomp/config.json"
"$PODRUN" --root "$work/root" run --bundle "$work/seccomp" probe-$$ | grep -q 'Seccomp:.2' || { echo "seccomp not applied" >&2; exit 1; }
cp "$work/seccomp.orig.json" "$work/seccomp/config.json"

echo "podrun: $PODRUN; $(jq '[.syscalls[].names | length] | add' "$work/seccomp.json") syscall names in the profile"
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$work/h.json" \
  -n bare "$PODRUN --root $work/root run --bundle $work/bare b-$$" \
  -n hardened "$PODRUN --root $work/root run --bundle $work/hardened h-$$" \
  -n hardened+seccomp "$PODRUN --root $work/root run --bundle $work/seccomp s-$$"
jq -r '.results[] | "\(.command): mean \(.mean*1000 | .*100|round/100) ms, median \(.median*1000 | .*100|round/100) ms"' "$work/h.json"
jq -r '(.results | map({(.command): .median}) | add) as $m |
  "hardening adds \((($m.hardened - $m.bare)*1000) | .*100|round/100) ms, seccomp adds \((($m["hardened+seccomp"] - $m.hardened)*1000) | .*100|round/100) ms, together \((($m["hardened+seccomp"] - $m.bare)*1000) | .*100|round/100) ms (medians)"' "$work/h.json"
