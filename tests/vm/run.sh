#!/bin/bash
# Boots a throw-away pure cgroup v2 VM (Debian's kernel, busybox initramfs, qemu TCG)
# and runs podrun's cgroup tests inside it, as root on a real v2 kernel.
#
#   tests/vm/run.sh [TEST_TARGET...]   (default: cgroups cgroups_oci, i.e. the library
#                                       tests and `podrun run` with linux.resources)
#
# The test binaries (cargo test --no-run), the shared libraries they load, static
# busybox and target/debug/podrun (at its host path, so env!("CARGO_BIN_EXE_podrun")
# resolves) are packed into the initramfs, with the kernel's brd module (a 4 MiB
# /dev/ram0 block device for the device tests) and socket diag modules (for CRIU); no
# network but loopback, no host folder.
# /init moves to a tmpfs root (pivot_root cannot leave the initramfs), mounts cgroup2
# alone at /sys/fs/cgroup, delegates every controller, runs each test binary, prints a
# result marker and powers off. Exits 0 only when every test binary passed; non-zero on failure, crash or timeout.
#
# Needs: qemu-system-x86 (qemu-system-x86_64), busybox-static, cpio, jq, apt (to fetch
# the kernel once; cached under $PODRUN_VM_CACHE, default target/vm-cache).
# Env: PODRUN_VM_TIMEOUT (seconds, default 600), PODRUN_VM_CACHE, PODRUN_VM_KERNEL
# (a vmlinuz to use instead of Debian's), PODRUN_VM_SMP (default 2), PODRUN_VM_MEM
# (MiB, default 1024), PODRUN_VM_EXPECT_MODE (the cgroup layout the tests must see,
# default Unified; passed to init on the kernel command line), PODRUN_VM_TEST_ARGS
# (arguments for every test binary, e.g. a name filter: "checkpoint --nocapture"),
# PODRUN_VM_ENV (NAME=value words exported to the tests, e.g. PODRUN_CRIU_REQUIRED=1),
# PODRUN_VM_EXTRA_BINS and PODRUN_VM_EXTRA_FILES (host programs and files to pack, below),
# PODRUN_VM_INIT=systemd (boot the host's systemd as PID 1, which runs the tests as a
# service: for the --systemd-cgroup tests),
# PODRUN_VM_APPEND (more kernel command line, e.g. "systemd.log_level=debug"),
# PODRUN_VM_DEBUG (a shell snippet init runs before the tests, e.g. "criu check -v4").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${PODRUN_VM_CACHE:-$ROOT/target/vm-cache}
TIMEOUT=${PODRUN_VM_TIMEOUT:-600}
SMP=${PODRUN_VM_SMP:-2}
MEM=${PODRUN_VM_MEM:-1024}
BUSYBOX=/bin/busybox
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(cgroups cgroups_oci)

die() { echo "vm: $*" >&2; exit 2; }
for tool in qemu-system-x86_64 cpio jq gzip timeout; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y qemu-system-x86 cpio jq)"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing (apt-get install -y busybox-static)"
if ! (LC_ALL=C ldd "$BUSYBOX" 2>&1 || true) | grep -q "not a dynamic"; then
    die "$BUSYBOX is not static (apt-get install -y busybox-static)"
fi

mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/run.XXXXXX")
QEMU_PID=
cleanup() {
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- kernel: Debian's current 6.1 image, downloaded once -------------------------------
# The image linux-image-amd64 points at, else the newest versioned one apt knows.
kernel_package() {
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    if [ -z "$pkg" ]; then
        pkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-amd64$' 2>/dev/null |
            awk '{ print $1 }' | sort -V | tail -n1)
    fi
    echo "$pkg"
}
# Downloads kernel package $1 into $2 and unpacks it at $2/x.
fetch_kernel_package() {
    local pkg=$1 dl=$2
    mkdir -p "$dl"
    (cd "$dl" && apt-get download -q "$pkg" >&2) || return 1
    dpkg-deb -x "$dl"/*.deb "$dl/x"
}
# Modules of the kernel package kept in the cache (under $CACHE/modules), loaded by
# init in this order: the block ramdisk (brd: the device tests need a block device to
# try to open) and what CRIU's feature check needs: socket diag (to dump sockets),
# nf_tables with xt_mark (CRIU locks a container's network with iptables-nft), tun, veth,
# conntrack netlink (CRIU dumps a network namespace's connections).
VM_MODULES="brd unix_diag inet_diag tcp_diag udp_diag raw_diag netlink_diag af_packet_diag
    crc32c_generic libcrc32c nfnetlink nf_tables x_tables nft_compat xt_mark tun veth
    nf_defrag_ipv4 nf_defrag_ipv6 nf_conntrack nf_conntrack_netlink"
# Copies $VM_MODULES from the kernel package in $1/x into the cache, decompressed.
cache_modules() {
    local x=$1/x ko m
    mkdir -p "$CACHE/modules"
    for m in $VM_MODULES; do
        ko=$(find "$x/lib/modules" -name "$m.ko*" 2>/dev/null | head -n1)
        if [ -z "$ko" ]; then
            echo "vm: no $m module in the kernel package (built in?)" >&2
            continue
        fi
        case "$ko" in
            *.ko) cp "$ko" "$CACHE/modules/$m.ko.tmp" ;;
            *.ko.xz) xz -dc "$ko" >"$CACHE/modules/$m.ko.tmp" ;;
            *.ko.zst) zstd -qdc "$ko" >"$CACHE/modules/$m.ko.tmp" ;;
            *.ko.gz) gzip -dc "$ko" >"$CACHE/modules/$m.ko.tmp" ;;
        esac
        mv "$CACHE/modules/$m.ko.tmp" "$CACHE/modules/$m.ko"
    done
    echo "$VM_MODULES" >"$CACHE/modules.list"
}
kernel() {
    if [ -n "${PODRUN_VM_KERNEL:-}" ]; then
        echo "$PODRUN_VM_KERNEL"
        return
    fi
    if [ -s "$CACHE/vmlinuz" ]; then
        # A cache from before these modules were kept: fetch the same package again.
        if [ "$(cat "$CACHE/modules.list" 2>/dev/null)" != "$VM_MODULES" ] &&
            [ -s "$CACHE/vmlinuz.package" ]; then
            local dl="$WORK/kernel-dl"
            echo "vm: fetching $(cat "$CACHE/vmlinuz.package") again for its modules" >&2
            if fetch_kernel_package "$(cat "$CACHE/vmlinuz.package")" "$dl"; then
                cache_modules "$dl"
            else
                echo "vm: could not fetch it: no block device nor socket diag in the VM" >&2
            fi
            rm -rf "$dl"
        fi
        echo "$CACHE/vmlinuz"
        return
    fi
    local pkg
    pkg=$(kernel_package)
    if [ -z "$pkg" ]; then
        echo "vm: no kernel package in apt's lists: apt-get update" >&2
        apt-get update -q >&2 || die "apt-get update failed"
        pkg=$(kernel_package)
    fi
    [ -n "$pkg" ] || die "no linux-image-*-amd64 package known to apt"
    echo "vm: downloading $pkg (once, cached in $CACHE)" >&2
    local dl="$WORK/kernel-dl"
    fetch_kernel_package "$pkg" "$dl" || die "apt-get download $pkg failed"
    local img
    img=$(ls "$dl"/x/boot/vmlinuz-* 2>/dev/null | head -n1)
    [ -n "$img" ] || die "$pkg holds no /boot/vmlinuz-*"
    cache_modules "$dl"
    cp "$img" "$CACHE/vmlinuz.tmp" && mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
    echo "$pkg" >"$CACHE/vmlinuz.package"
    rm -rf "$dl"
    echo "$CACHE/vmlinuz"
}
KERNEL=$(kernel)
[ -s "$KERNEL" ] || die "kernel $KERNEL missing"

# --- test binaries --------------------------------------------------------------------
cd "$ROOT"
BINS=()
for t in "${TARGETS[@]}"; do
    exe=$(cargo test --test "$t" --no-run --message-format=json 2>/dev/null |
        jq -r 'select(.reason == "compiler-artifact" and .target.kind == ["test"]
                      and .target.name == "'"$t"'" and .executable != null) | .executable' |
        tail -n1)
    if [ -z "$exe" ] || [ ! -x "$exe" ]; then
        cargo test --test "$t" --no-run >&2 || true
        die "could not build test target $t"
    fi
    BINS+=("$t=$exe")
done

# --- initramfs ------------------------------------------------------------------------
IR="$WORK/initramfs"
mkdir -p "$IR"/{bin,dev,proc,sys,tmp,run,tests,etc}
cp "$BUSYBOX" "$IR/bin/busybox"
# The cached modules, in load order (a custom PODRUN_VM_KERNEL brings none).
mkdir -p "$IR/modules"
if [ -z "${PODRUN_VM_KERNEL:-}" ]; then
    for m in $VM_MODULES; do
        [ -s "$CACHE/modules/$m.ko" ] && cp "$CACHE/modules/$m.ko" "$IR/modules/" &&
            echo "$m" >>"$IR/modules/order"
    done
fi

# Copies a dynamically linked program and the libraries ldd lists, at their own paths.
pack() {
    local src=$1 dst=$2
    if command -v objcopy >/dev/null; then
        objcopy --strip-debug "$src" "$IR$dst" 2>/dev/null || cp "$src" "$IR$dst"
    else
        cp "$src" "$IR$dst"
    fi
    chmod 755 "$IR$dst"
    local lib
    for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
        [ -e "$IR$lib" ] && continue
        mkdir -p "$IR$(dirname "$lib")"
        cp -L "$lib" "$IR$lib"
    done
}
for b in "${BINS[@]}"; do
    pack "${b#*=}" "/tests/${b%%=*}"
done
# Extra host programs the tests call (PODRUN_VM_EXTRA_BINS="/usr/sbin/criu /usr/sbin/runc"),
# at their own paths with their libraries.
: >"$IR/extra-bins"
for x in ${PODRUN_VM_EXTRA_BINS:-}; do
    mkdir -p "$IR$(dirname "$x")"
    pack "$x" "$x"
    basename "$x" >>"$IR/extra-bins"
done
# Extra host files or folders (PODRUN_VM_EXTRA_FILES="/usr/lib/x86_64-linux-gnu/xtables",
# plugins that programs load at run time), copied at their own paths.
for x in ${PODRUN_VM_EXTRA_FILES:-}; do
    mkdir -p "$IR$(dirname "$x")"
    cp -a "$x" "$IR$x"
done
# systemd as PID 1 (PODRUN_VM_INIT=systemd): the host's systemd, systemctl and busctl
# with their libraries, an identity, and a unit that runs the tests (stage 2 of /init);
# its D-Bus API is on /run/systemd/private (no bus daemon).
SD_APPEND=
if [ "${PODRUN_VM_INIT:-}" = systemd ]; then
    for x in /lib/systemd/systemd /usr/bin/systemctl /usr/bin/busctl; do
        [ -x "$x" ] || die "$x is missing (PODRUN_VM_INIT=systemd)"
        mkdir -p "$IR$(dirname "$x")"
        pack "$x" "$x"
    done
    mkdir -p "$IR/etc/systemd/system"
    echo podrun-vm >"$IR/etc/hostname"
    echo 0123456789abcdef0123456789abcdef >"$IR/etc/machine-id"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$IR/etc/passwd"
    echo 'root:x:0:' >"$IR/etc/group"
    cat >"$IR/etc/systemd/system/podrun-tests.service" <<'UNIT'
[Unit]
Description=podrun tests
DefaultDependencies=no
[Service]
Type=oneshot
ExecStart=/init
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
UNIT
    SD_APPEND="systemd.unit=podrun-tests.service systemd.show_status=false"
fi
# podrun itself, for tests that drive the binary (built by cargo test with them).
if [ -x "$ROOT/target/debug/podrun" ]; then
    mkdir -p "$IR$ROOT/target/debug"
    pack "$ROOT/target/debug/podrun" "$ROOT/target/debug/podrun"
    ln -s "$ROOT/target/debug/podrun" "$IR/bin/podrun"
fi

cat >"$IR/init" <<'EOF'
#!/bin/busybox sh
# Stage 1: copy the initramfs onto a tmpfs and switch to it, so containers can
# pivot_root (the initramfs root cannot be pivoted away from).
if [ ! -e /.tmpfs-root ]; then
    /bin/busybox mkdir -p /newroot
    /bin/busybox mount -t tmpfs -o mode=755 tmpfs /newroot
    for d in /*; do
        case "$d" in /newroot|/proc|/sys|/dev) ;; *) /bin/busybox cp -a "$d" /newroot/ ;; esac
    done
    /bin/busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev
    /bin/busybox touch /newroot/.tmpfs-root
    # With PODRUN_VM_INIT=systemd, systemd is PID 1 and runs stage 2 as a service.
    [ -x /lib/systemd/systemd ] && exec /bin/busybox switch_root /newroot /lib/systemd/systemd
    exec /bin/busybox switch_root /newroot /init
fi
/bin/busybox --install -s /bin
# The packed host programs win over busybox's applets of the same name (CRIU runs GNU
# tar with options busybox's lacks).
for b in $(cat /extra-bins); do
    [ -L "/bin/$b" ] && rm -f "/bin/$b"
done
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root RUST_BACKTRACE=1 TMPDIR=/tmp
# Under systemd (PODRUN_VM_INIT=systemd) these are mounted already.
if [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ]; then
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# ptys (CRIU's check opens /dev/ptmx; tty tests need them).
mkdir -p /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
# A tmpfs on /tmp would hide a checkout that lives under /tmp (its podrun binary).
[ -n "$(ls -A /tmp 2>/dev/null)" ] || mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
fi
echo "vm: PID 1 is $(cat /proc/1/comm)"
# A 4 MiB block ramdisk (/dev/ram0) for the device tests to try to open.
# Then the socket diag modules, for CRIU.
for m in $(cat /modules/order 2>/dev/null); do
    case $m in brd) args="rd_nr=1 rd_size=4096" ;; *) args= ;; esac
    # shellcheck disable=SC2086 # args are words.
    insmod /modules/$m.ko $args || echo "vm: insmod $m failed"
done
# The loopback device up (CRIU checks TCP repair over it).
ip link set lo up
echo "vm: block devices: $(ls /sys/block | tr '\n' ' ')"
echo "vm: kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done
echo "vm: delegated: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
. /test-env
[ -x /debug.sh ] && /debug.sh
fail=0
for t in /tests/*; do
    [ -x "$t" ] || continue
    name=${t##*/}
    echo "PODRUN-VM-BEGIN $name"
    # --test-threads: parallel as on the host, so the same interleavings are exercised.
    # shellcheck disable=SC2046 # test-args is split into words on purpose.
    "$t" --test-threads=2 $(cat /test-args) </dev/null
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "PODRUN-VM-TEST $name PASS"
    else
        echo "PODRUN-VM-TEST $name FAIL rc=$rc"
        fail=1
    fi
done
if [ $fail -eq 0 ]; then echo "PODRUN-VM-RESULT: PASS"; else echo "PODRUN-VM-RESULT: FAIL"; fi
sync
poweroff -f
EOF
chmod 755 "$IR/init"
# Test arguments and environment, read by init (kept out of the kernel command line).
printf '%s\n' "${PODRUN_VM_TEST_ARGS:-}" >"$IR/test-args"
: >"$IR/test-env"
for kv in ${PODRUN_VM_ENV:-}; do
    printf 'export %q\n' "$kv" >>"$IR/test-env"
done
[ -n "${PODRUN_VM_DEBUG:-}" ] && { printf '#!/bin/sh\n%s\n' "$PODRUN_VM_DEBUG" >"$IR/debug.sh"; chmod 755 "$IR/debug.sh"; }
(cd "$IR" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$WORK/initramfs.gz"

# --- boot ---------------------------------------------------------------------------------
LOG="$WORK/serial.log"
echo "vm: booting $(cat "$CACHE/vmlinuz.package" 2>/dev/null || echo "$KERNEL") with" \
    "${TARGETS[*]} (initramfs $(du -h "$WORK/initramfs.gz" | cut -f1), timeout ${TIMEOUT}s)"
start=$(date +%s)
set +e
# TCG: KVM hung in early boot on the machines this was written on.
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg -cpu max -smp "$SMP" -m "$MEM" \
    -display none -monitor none -serial stdio -nic none -no-reboot \
    -kernel "$KERNEL" -initrd "$WORK/initramfs.gz" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 PODRUN_EXPECT_CGROUP_MODE=${PODRUN_VM_EXPECT_MODE:-Unified} $SD_APPEND ${PODRUN_VM_APPEND:-}" \
    </dev/null 2>&1 | tr -d '\r' | tee "$LOG"
qrc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - start))

if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
    echo "vm: FAIL: timed out after ${TIMEOUT}s" >&2
    exit 1
fi
if grep -q '^PODRUN-VM-RESULT: PASS$' "$LOG"; then
    echo "vm: PASS (${elapsed}s): $(grep -c '^PODRUN-VM-TEST .* PASS$' "$LOG") test binary(ies) passed on cgroup v2"
    exit 0
fi
if grep -q '^PODRUN-VM-RESULT: FAIL$' "$LOG"; then
    echo "vm: FAIL (${elapsed}s): $(grep '^PODRUN-VM-TEST .* FAIL' "$LOG" | tr '\n' ' ')" >&2
else
    echo "vm: FAIL (${elapsed}s): no result marker (qemu exit $qrc: crash or panic, see above)" >&2
fi
exit 1
