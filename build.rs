//! Builds the pause program (pause/src/main.rs) with rustc as a tiny static no_std binary
//! and leaves it in OUT_DIR, so podrun embeds it and installing podrun is one file.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "pause/src/main.rs";
    println!("cargo:rerun-if-changed={src}");
    // podrun itself is linked at a fixed address (not PIE, as Go links kubelet and the
    // containerd shims): its relocated read-only data (vtables, the GOT: ~420 KiB) then
    // stays clean file pages shared by every supervisor, instead of a private copy each
    // process relocates at start.
    println!("cargo:rustc-link-arg-bin=podrun=-no-pie");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("pause");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "pause",
        ])
        .args([
            "-C",
            "opt-level=z",
            "-C",
            "panic=abort",
            "-C",
            "lto=fat",
            "-C",
            "codegen-units=1",
        ])
        .args(["-C", "strip=symbols", "-C", "relocation-model=static"])
        .args([
            "-C",
            "link-arg=-nostartfiles",
            "-C",
            "link-arg=-nostdlib",
            "-C",
            "link-arg=-static",
        ])
        .args([
            "-C",
            "link-arg=-Wl,--build-id=none",
            "-C",
            "link-arg=-Wl,-n",
        ])
        .arg("-o")
        .arg(&out)
        .arg(src)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building pause with rustc failed: {s}"),
        Err(e) => panic!("cannot run rustc to build pause: {e}"),
    }
}
