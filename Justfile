# podrun tasks. `just demo` runs a demo; `just test` runs every test (root required).

cargo := "cargo"

# Build the debug binary (pause is embedded by build.rs)
build:
    {{cargo}} build

# Build the optimised binary
release:
    {{cargo}} build --release

# Install prerequisites (Debian packages, just)
setup:
    bash scripts/setup.sh

# Demo: a busybox container through the OCI CLI, then a pod
demo: build
    bash scripts/demo.sh

# Build the test images (busybox, nginx, debian) as OCI layouts and load them into the store
fixtures: build
    bash rootfs-fixtures/build.sh
    bash rootfs-fixtures/load.sh target/debug/podrun

# Every test: format, lint, unit + integration tests (root), then cgroup v2 in a VM
test: lint
    {{cargo}} test --no-fail-fast -- --test-threads=2
    just test-package
    just test-cgroup-v2

# cargo install --path . and cargo deb; the .deb's contents, and its podrun run from a throw-away root
test-package:
    bash scripts/test-package.sh

# cgroup tests inside a throw-away pure cgroup v2 VM (qemu, software emulation)
test-cgroup-v2:
    bash tests/vm/run.sh cgroups cgroups_oci oci_features oci_lifecycle security_devices security_pids security_process
    PODRUN_VM_ENV=PODRUN_CRIU_REQUIRED=1 PODRUN_VM_EXTRA_FILES=/usr/lib/x86_64-linux-gnu/xtables \
    PODRUN_VM_EXTRA_BINS="/usr/sbin/runc /usr/bin/unshare /usr/sbin/criu /usr/sbin/ip /usr/bin/tar /usr/bin/gzip \
        /usr/sbin/iptables-restore /usr/sbin/ip6tables-restore /usr/sbin/iptables-save /usr/sbin/ip6tables-save" \
        bash tests/vm/run.sh oci_engine_compat
    PODRUN_VM_INIT=systemd PODRUN_VM_ENV=PODRUN_SYSTEMD_REQUIRED=1 PODRUN_VM_TEST_ARGS=systemd_cgroup \
        PODRUN_VM_EXTRA_BINS="/usr/sbin/runc /usr/bin/unshare" bash tests/vm/run.sh oci_engine_compat

# podrun under docker, podman and containerd's CRI (private daemons), runc as the control
test-engines:
    PODRUN_ENGINE_TESTS_REQUIRED=1 {{cargo}} test --test engines -- --test-threads=2 --nocapture

# Formatting and clippy with warnings as errors
lint:
    {{cargo}} fmt --all -- --check
    {{cargo}} clippy --all-targets -- -D warnings

# podrun run vs runc run of a busybox /bin/true bundle
bench-oci: release
    bash bench/oci.sh

# Image pull/unpack vs skopeo, rootfs preparation time
bench-images: release
    bash bench/images.sh

# Pod up/down vs runc, supervisor memory, 100 pods
bench-pod: release
    bash bench/pod.sh

# The node agent: 1000 pods through it, their idle cost, supervisor replacement; and
# `up --wait` of pod-command against `podman kube play` of the same file
bench-agent: release
    bash bench/agent.sh
    bash bench/kube-play.sh

# Admission against a node running 200 pods with affinity terms
bench-admission:
    bash bench/admission.sh

# Probes: 50 pods x 2 containers with exec + httpGet probes every 1 s (SECS default 300)
bench-probes pods="50" secs="300": release
    bash bench/probes.sh {{pods}} {{secs}}

# Pod network: built-in setup per pod, 100 pods with addresses, extra `up` time (none/bridge/CNI)
bench-network: build
    bash bench/network.sh

# User-namespace cost: `up` of a hostUsers=false pod against a plain one
bench-userns rounds="30": release
    PODRUN=$PWD/target/release/podrun bash bench/userns.sh {{rounds}}

# Security cost: container start bare vs default hardening vs hardening + RuntimeDefault seccomp
bench-security runs="200": release
    PODRUN=$PWD/target/release/podrun bash bench/security.sh {{runs}}

# Device filter cost: eBPF load + attach per container start (on a hybrid host: on its cgroup2 hierarchy)
bench-devices runs="200": release
    PODRUN=$PWD/target/release/podrun bash bench/devices.sh {{runs}}
