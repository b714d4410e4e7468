#!/usr/bin/env bash
# OCI runtime benchmark (issue 2): `podrun run` against `runc run` of the same busybox
# /bin/true bundle, alternating, N runs each (default 30). Prints the median wall time of
# each, the median of the per-pair ratios podrun/runc, and each one's peak RSS (the
# largest max-RSS of the runtime process over its runs, from /usr/bin/time -f %M).
# Usage: bench/oci.sh [RUNS]   (root; needs runc, busybox-static, /usr/bin/time)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
for t in runc /bin/busybox /usr/bin/time python3; do
  command -v "$t" >/dev/null || { echo "bench/oci.sh: $t is missing (apt-get install runc busybox-static time python3)" >&2; exit 1; }
done
PODRUN=${PODRUN:-$PWD/target/release/podrun}
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
work=$(mktemp -d /tmp/podrun-bench-oci.XXXXXX)
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

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
# one RUNTIME ID -> "wall_ms rss_kb"
one() {
  local rt=$1 id=$2 root=$work/$1 t0 t1 rss
  t0=$(date +%s%N)
  if [ "$rt" = podrun ]; then
    /usr/bin/time -f %M -o "$work/rss" "$PODRUN" --root "$root" run --bundle "$b" "$id" >/dev/null
  else
    /usr/bin/time -f %M -o "$work/rss" runc --root "$root" run --bundle "$b" "$id" >/dev/null
  fi
  t1=$(date +%s%N)
  rss=$(tail -n1 "$work/rss")
  echo "$(( (t1 - t0) / 1000 )) $rss"
}
# Warm the page cache once for each.
one podrun warm-p >/dev/null; one runc warm-r >/dev/null

p_ms=(); r_ms=(); ratios=(); p_rss=0; r_rss=0
for i in $(seq "$RUNS"); do
  read -r pus prss < <(one podrun "p$i")
  read -r rus rrss < <(one runc "r$i")
  p_ms+=("$(awk -v u="$pus" 'BEGIN{printf "%.2f", u/1000}')")
  r_ms+=("$(awk -v u="$rus" 'BEGIN{printf "%.2f", u/1000}')")
  ratios+=("$(awk -v a="$pus" -v b="$rus" 'BEGIN{printf "%.4f", a/b}')")
  (( prss > p_rss )) && p_rss=$prss
  (( rrss > r_rss )) && r_rss=$rrss
done
pm=$(printf '%s\n' "${p_ms[@]}" | median)
rm_=$(printf '%s\n' "${r_ms[@]}" | median)
ratio=$(printf '%s\n' "${ratios[@]}" | median)
echo "runs:                $RUNS each, alternating (busybox /bin/true, runc's default config)"
echo "podrun run median:   $pm ms"
echo "runc run median:     ${rm_} ms"
echo "median ratio:        $ratio (podrun/runc; target <= 0.5)"
echo "peak RSS podrun:     $p_rss KiB"
echo "peak RSS runc:       $r_rss KiB"
