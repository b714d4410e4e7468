//! Image store: references, content-addressed OCI layout, registry pull (registries.json,
//! registries.conf, credentials), import, layer unpack, per-container rootfs.
//!
//! ```no_run
//! # fn main() -> Result<(), podrun::image::ImageError> {
//! use podrun::image::{ImageStore, PullOptions};
//! let store = ImageStore::open(std::path::Path::new("/var/lib/podrun"))?;
//! let image = match store.resolve("nginx:1.17.1")? {
//!     Some(i) => i,
//!     None => store.pull("nginx:1.17.1", &PullOptions::default())?,
//! };
//! let cfg = store.config(&image)?; // Entrypoint, Cmd, Env, WorkingDir, User…
//! let root = store.prepare_rootfs(&image, "ctr-1")?; // overlay (or copy) at root.path
//! store.release_rootfs("ctr-1")?;
//! # let _ = (cfg, root); Ok(()) }
//! ```
pub mod auth;
mod error;
pub mod fsutil;
pub mod import;
pub mod progress;
pub mod reference;
pub mod registries_conf;
pub mod registry;
pub mod rootfs;
pub mod store;
pub mod unpack;

pub use error::{ImageError, Result};
pub use import::{ImportFormat, ImportOptions};
pub use reference::Reference;
pub use registry::{PullOptions, RegistriesConfig};
pub use rootfs::{PreparedRootfs, RootfsIdmap, RootfsMode};
pub use store::{Image, ImageStore, Layer};
