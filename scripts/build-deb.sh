#!/usr/bin/env bash
# Builds the .deb: the release binary, then its man pages and shell completions (rendered
# from the binary's own command tree into target/packaging/), then `cargo deb --no-build`.
# Prints the package's path last, as cargo deb does.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --quiet --release --locked
out=target/packaging
rm -rf "$out"
mkdir -p "$out/completions"
target/release/podrun generate-man-pages "$out/man" 2>/dev/null
gzip -9nf "$out"/man/*.1
target/release/podrun completion bash >"$out/completions/podrun.bash"
target/release/podrun completion zsh >"$out/completions/_podrun"
target/release/podrun completion fish >"$out/completions/podrun.fish"
cargo deb --no-build 2>/dev/null | tail -1
