//! The pause program embedded in podrun, written out once per boot for pods to run.
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The static pause binary built from pause/src/main.rs.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// Writes the pause binary into `dir` (if not already there with the same content) and
/// returns its path.
pub fn install(dir: &Path) -> io::Result<PathBuf> {
    let path = dir.join("pause");
    // Mount points made here, as root: a pause in a user namespace could not make them
    // in this root-owned directory.
    for d in ["proc", "dev", "sys"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    if let Ok(existing) = std::fs::read(&path) {
        if existing == PAUSE_BINARY {
            return Ok(path);
        }
    }
    std::fs::create_dir_all(dir)?;
    crate::util::write_atomic(&path, PAUSE_BINARY)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_is_tiny_static_elf() {
        assert_eq!(&PAUSE_BINARY[..4], b"\x7fELF");
        assert!(
            PAUSE_BINARY.len() <= 16 * 1024,
            "pause is {} bytes",
            PAUSE_BINARY.len()
        );
    }
}
