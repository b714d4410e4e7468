#!/usr/bin/env bash
# Probe benchmark (issue 5): PODS pods x 2 busybox containers, each with an exec liveness
# probe and an httpGet readiness probe every 1 s, for SECS seconds. Prints the supervisors'
# own CPU (utime+stime) as % of one core and per probe, the probe processes' CPU (children),
# and how late probes fired against their period (p50/p99/max).
# Usage: [PROBES=both|exec|http] bench/probes.sh [PODS] [SECS]   (root; release build; fixtures built if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
PODS=${1:-50}
SECS=${2:-300}
PODRUN=${PODRUN:-$PWD/target/release/podrun}
[ -x "$PODRUN" ] || cargo build --release
work=$(mktemp -d /tmp/podrun-bench-probes.XXXXXX)
# Pulls never leave the machine: docker.io only through mirrors (none configured here).
export PODRUN_REGISTRIES_CONFIG=$work/registries.json CONTAINERS_REGISTRIES_CONF=$work/registries.conf
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
export PODRUN_ROOT=$work/root PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs PODRUN_PROBE_TRACE=$work/trace
cleanup() {
  local pids
  pids=$(for f in "$PODRUN_ROOT"/pods/*/supervisor.pid; do [ -f "$f" ] && cat "$f"; echo; done)
  for i in $(seq "$PODS"); do "$PODRUN" delete pod "probe-$i" --grace-period 0 --force >/dev/null 2>&1 & done
  wait || true
  # A forced delete returns before the supervisors finish tearing down (they still
  # release their IPs under $work): wait for them, up to 30 s.
  for _ in $(seq 300); do
    alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  rm -rf "$work"
}
trap cleanup EXIT
bash rootfs-fixtures/build.sh busybox >/dev/null
bash rootfs-fixtures/load.sh "$PODRUN" busybox >/dev/null
# PROBES=exec or PROBES=http keeps only that kind (to see what each costs).
PROBES=${PROBES:-both}
ctr() { # ctr NAME PORT
  cat <<YAML
  - name: $1
    image: busybox:1.30
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p $2 -h /www"]
YAML
  if [ "$PROBES" != http ]; then cat <<YAML
    livenessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
YAML
  fi
  if [ "$PROBES" != exec ]; then cat <<YAML
    readinessProbe:
      httpGet: {path: /, port: $2}
      periodSeconds: 1
YAML
  fi
}
for i in $(seq "$PODS"); do
  { printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe-%s\nspec:\n  containers:\n' "$i"; ctr a 8080; ctr b 8081; } | "$PODRUN" up -f - >/dev/null
done
sleep 5
ready=$("$PODRUN" get pods | grep -c ' 2/2 ' || true)
echo "probes: $PROBES" 
echo "$PODS pods up, $ready with 2/2 ready"
hz=$(getconf CLK_TCK)
sups=$(for f in "$PODRUN_ROOT"/pods/*/supervisor.pid; do cat "$f"; echo; done)
cpu() { for p in $sups; do awk '{print $14+$15, $16+$17}' /proc/$p/stat; done | awk '{s+=$1; c+=$2} END {print s, c}'; }
switches() { for p in $sups; do awk '/ctxt_switches/ {n+=$2} END {print n}' /proc/$p/status; done | awk '{s+=$1} END {print s}'; }
: > "$PODRUN_PROBE_TRACE"
read -r s0 c0 < <(cpu)
x0=$(switches)
t0=$(date +%s.%N)
sleep "$SECS"
read -r s1 c1 < <(cpu)
x1=$(switches)
t1=$(date +%s.%N)
python3 - "$s0" "$s1" "$c0" "$c1" "$t0" "$t1" "$hz" "$x0" "$x1" "$PODRUN_PROBE_TRACE" <<'PY'
import sys
s0, s1, c0, c1, t0, t1, hz, x0, x1 = (float(x) for x in sys.argv[1:10])
lines = [l.split() for l in open(sys.argv[10]) if l.strip()]
n = len(lines)
wall = t1 - t0
own = (s1 - s0) / hz
kids = (c1 - c0) / hz
late = sorted(int(l[2]) for l in lines) or [0]
fails = sum(1 for l in lines if l[3] != "true")
pct = lambda q: late[min(len(late) - 1, int(q * len(late)))] / 1000
print(f"{n} probes in {wall:.0f} s ({n / wall:.0f}/s), {fails} failed")
print(f"supervisors' own CPU: {own:.2f} s = {100 * own / wall:.2f}% of one core (target < 5%); {1e6 * own / max(n, 1):.0f} us per probe")
print(f"supervisors' context switches: {(x1 - x0) / max(n, 1):.2f} per probe")
print(f"probe processes (exec probes, reaped children): {kids:.2f} s = {100 * kids / wall:.2f}% of one core")
print(f"lateness vs period: p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {late[-1] / 1000:.1f} ms (target every probe within 100 ms)")
over = sorted((l for l in lines if int(l[2]) > 100_000), key=lambda l: -int(l[2]))
if over:
    print(f"{len(over)} probes later than 100 ms; the latest: " + ", ".join(f"{l[0]} {l[1]} {int(l[2]) / 1000:.0f} ms" for l in over[:5]))
PY
