#!/usr/bin/env bash
# Package test: `cargo install --path .` and the .deb (scripts/build-deb.sh: cargo deb
# with man pages and completions) from this checkout, then the .deb's contents, control
# fields, conffiles and systemd unit checked and the package unpacked into a throw-away
# root (dpkg -x), whose podrun runs a container and a pod (pause embedded) under the
# packaged config.yaml. Root; leaves nothing behind but target/.
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

echo "== cargo deb (scripts/build-deb.sh)"
deb=$(bash scripts/build-deb.sh | tail -1)
[ -f "$deb" ] || fail "cargo deb made no package ($deb)"
echo "$deb"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/podrun ./etc/podrun/registries.json ./etc/podrun/config.yaml \
    ./usr/share/doc/podrun/README.md ./usr/share/man/man1/podrun.1.gz \
    ./usr/share/man/man1/podrun-completion.1.gz ./usr/share/man/man1/podrun-up.1.gz \
    ./usr/share/bash-completion/completions/podrun ./usr/share/zsh/vendor-completions/_podrun \
    ./usr/share/fish/vendor_completions.d/podrun.fish; do
    grep -q " $f\$" <<<"$contents" || fail "$f is not in the package:
$contents"
done
unit=$(grep -oE ' \./(usr/)?lib/systemd/system/podrun\.service$' <<<"$contents" | tr -d ' ') \
    || fail "the systemd unit is not in the package:
$contents"
[ "$(dpkg-deb -f "$deb" Package)" = podrun ] || fail "Package field"
depends=$(dpkg-deb -f "$deb" Depends)
for d in libseccomp2 nftables; do grep -q "$d" <<<"$depends" || fail "Depends lacks $d: $depends"; done
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
for c in /etc/podrun/registries.json /etc/podrun/config.yaml; do
    grep -qx "$c" <<<"$conffiles" || fail "$c is not a conffile: $conffiles"
done

echo "== dpkg -x into a throw-away root; its podrun runs a container and a pod"
dpkg -x "$deb" "$work/root"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$work/root/etc/podrun/registries.json" \
    || fail "the packaged registries.json is not JSON"
"$podrun" --help | grep -q PODRUN_DATA_DIR || fail "--help does not list the environment variables"
u=$work/root/$unit
for line in 'ExecStart=/usr/bin/podrun serve' 'Type=notify' 'KillMode=process' 'Restart=always' 'Delegate=yes'; do
    grep -qx "$line" "$u" || fail "the unit lacks $line"
done
# Every setting of the packaged config.yaml is commented out and shows its default.
grep -q '^#maxPods: 110$' "$work/root/etc/podrun/config.yaml" || fail "config.yaml does not document maxPods"
zcat "$work/root/usr/share/man/man1/podrun.1.gz" | grep -q '^\.TH podrun 1' || fail "podrun.1 is not a man page"
got=$(bash -c 'source "$1"; COMP_WORDS=(podrun compl); COMP_CWORD=1; _podrun podrun compl podrun; echo "${COMPREPLY[*]}"' \
    _ "$work/root/usr/share/bash-completion/completions/podrun")
[ "$got" = completion ] || fail "the packaged bash completion offers '$got' for 'podrun compl'"
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/sh"
(cd "$work/bundle" && "$podrun" spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sh", "-c", "echo packaged-ok"/' "$work/bundle/config.json"
out=$("$podrun" run --bundle "$work/bundle" "pkg-$$")
[ "$out" = packaged-ok ] || fail "container said: $out"
bash rootfs-fixtures/build.sh busybox >/dev/null
bash rootfs-fixtures/load.sh "$podrun" busybox >/dev/null
"$podrun" --config "$work/root/etc/podrun/config.yaml" up - --wait --timeout 60s >/dev/null <<'YAML'
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
