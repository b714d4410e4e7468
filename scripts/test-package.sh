#!/usr/bin/env bash
# Package test: `cargo install --path .` and `cargo deb` from this checkout, then the
# .deb's contents and control fields checked and the package unpacked into a throw-away
# root (dpkg -x), whose podrun runs a container and a pod (pause embedded). Root; leaves
# nothing behind but target/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-deb >/dev/null || { echo "test-package.sh: cargo-deb is not installed (bash scripts/setup.sh)" >&2; exit 1; }
work=$(mktemp -d /tmp/podrun-package.XXXXXX)
podrun=$work/root/usr/bin/podrun
export PODRUN_ROOT=$work/run PODRUN_DATA_DIR=$work/data PODRUN_POD_LOG_DIR=$work/logs
export PODRUN_NETWORK=none PODRUN_REGISTRIES_CONFIG=$work/registries.json
echo '{"mirrorOnly": ["docker.io"]}' >"$PODRUN_REGISTRIES_CONFIG"
cleanup() {
    set +e
    [ -x "$podrun" ] && "$podrun" delete pod pkg-test --grace-period 0 >/dev/null 2>&1
    for _ in $(seq 50); do [ -n "$(ls -A "$PODRUN_ROOT/pods" 2>/dev/null)" ] || break; sleep 0.1; done
    for m in $(awk -v w="$work" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "test-package.sh: $*" >&2; exit 1; }

echo "== cargo install --path . (into $work/cargo)"
cargo install --quiet --locked --path . --root "$work/cargo"
"$work/cargo/bin/podrun" --version | grep -q '^podrun ' || fail "installed podrun --version"

echo "== cargo deb"
deb=$(cargo deb 2>/dev/null | tail -1)
[ -f "$deb" ] || fail "cargo deb made no package ($deb)"
echo "$deb"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/podrun ./etc/podrun/registries.json ./usr/share/doc/podrun/README.md; do
    grep -q " $f\$" <<<"$contents" || fail "$f is not in the package:
$contents"
done
[ "$(dpkg-deb -f "$deb" Package)" = podrun ] || fail "Package field"
depends=$(dpkg-deb -f "$deb" Depends)
for d in libseccomp2 nftables; do grep -q "$d" <<<"$depends" || fail "Depends lacks $d: $depends"; done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/podrun/registries.json \
    || fail "/etc/podrun/registries.json is not a conffile"

echo "== dpkg -x into a throw-away root; its podrun runs a container and a pod"
dpkg -x "$deb" "$work/root"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$work/root/etc/podrun/registries.json" \
    || fail "the packaged registries.json is not JSON"
"$podrun" --help | grep -q PODRUN_DATA_DIR || fail "--help does not list the environment variables"
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/sh"
(cd "$work/bundle" && "$podrun" spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sh", "-c", "echo packaged-ok"/' "$work/bundle/config.json"
out=$("$podrun" run --bundle "$work/bundle" "pkg-$$")
[ "$out" = packaged-ok ] || fail "container said: $out"
bash rootfs-fixtures/build.sh busybox >/dev/null
bash rootfs-fixtures/load.sh "$podrun" busybox >/dev/null
"$podrun" up - --wait --timeout 60s >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: pkg-test}
spec:
  containers:
  - {name: c, image: busybox:1.30, command: [sleep, "300"]}
YAML
"$podrun" get pods pkg-test | grep -q Running || fail "the pod is not Running"
"$podrun" delete pod pkg-test --grace-period 0 >/dev/null
echo "package test passed"
