#!/usr/bin/env bash
# OCI runtime benchmark (issue 2): `podrun run` against `runc run` of the same busybox
# /bin/true bundle, alternating, N runs each (default 30). Prints the median wall time of
# each, the median of the per-pair ratios podrun/runc, and each one's peak RSS (the
# largest max-RSS of the runtime command over its runs, from wait4's rusage).
# Usage: bench/oci.sh [RUNS]   (root; needs runc, busybox-static, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
for t in runc /bin/busybox python3; do
  command -v "$t" >/dev/null || { echo "bench/oci.sh: $t is missing (apt-get install runc busybox-static python3)" >&2; exit 1; }
done
PODRUN=${PODRUN:-$PWD/target/release/podrun}
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
work=$(mktemp -d /tmp/podrun-bench-oci.XXXXXX)
# Pulls never leave the machine: docker.io only through mirrors (none configured here).
export PODRUN_REGISTRIES_CONFIG=$work/registries.json CONTAINERS_REGISTRIES_CONF=$work/registries.conf
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
cleanup() {
  for id in $("$PODRUN" --root "$work/podrun" list -q 2>/dev/null); do "$PODRUN" --root "$work/podrun" delete -f "$id" >/dev/null 2>&1 || true; done
  for id in $(runc --root "$work/runc" list -q 2>/dev/null); do runc --root "$work/runc" delete -f "$id" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The bundle: busybox with its applet links, runc's default config running /bin/true.
b=$work/bundle
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/sys" "$b/rootfs/dev" "$b/rootfs/tmp"
cp /bin/busybox "$b/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$b/rootfs/bin/$a"; done
(cd "$b" && runc spec)
python3 - "$b/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"))
PY

# Alternate the two runtimes; time each with posix_spawn + wait4 (no shell in between),
# peak RSS from wait4's rusage.
python3 - "$PODRUN" "$work" "$b" "$RUNS" <<'PY'
import os, statistics, sys, time
podrun, work, bundle, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
runc = "/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else "runc"
devnull = os.open("/dev/null", os.O_RDWR)
def one(rt, i):
    exe = podrun if rt == "podrun" else runc
    argv = [exe, "--root", f"{work}/{rt}", "run", "--bundle", bundle, f"{rt[0]}{i}"]
    fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
    t0 = time.perf_counter()
    pid = os.posix_spawnp(exe, argv, os.environ, file_actions=fa)
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{rt} run failed (exit {os.waitstatus_to_exitcode(status)})")
    return (t1 - t0) * 1000
def rss(rt, i):
    # Through /usr/bin/time: a spawned child's maxrss would count python's own pages
    # from before exec. GNU time forks a small process and reports the runtime's peak
    # (including the children it reaps: runc init, the container process).
    exe = podrun if rt == "podrun" else runc
    out = f"{work}/rss"
    argv = ["/usr/bin/time", "-f", "%M", "-o", out, exe, "--root", f"{work}/{rt}", "run", "--bundle", bundle, f"{rt[0]}m{i}"]
    fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa)
    os.waitpid(pid, 0)
    return int(open(out).read().split()[-1])
one("podrun", "warm"); one("runc", "warm")
p, r, ratios = [], [], []
for i in range(runs):
    pm = one("podrun", i)
    rm = one("runc", i)
    p.append(pm); r.append(rm); ratios.append(pm / rm)
prss = max(rss("podrun", i) for i in range(5)) if os.path.exists("/usr/bin/time") else "n/a (no /usr/bin/time)"
rrss = max(rss("runc", i) for i in range(5)) if os.path.exists("/usr/bin/time") else "n/a"
print(f"runs:                {runs} each, alternating (busybox /bin/true, runc's default config)")
print(f"podrun run median:   {statistics.median(p):.2f} ms")
print(f"runc run median:     {statistics.median(r):.2f} ms")
print(f"median ratio:        {statistics.median(ratios):.2f} (podrun/runc; target <= 0.5)")
print(f"peak RSS podrun:     {prss} KiB")
print(f"peak RSS runc:       {rrss} KiB")
PY
