//! The node agent (`podrun serve`): keeps what was applied, supervises the supervisors and
//! holds what must outlive them.
pub mod manifest_dir;
pub mod pods_watch;
pub mod serve;
pub mod service;
pub mod static_pods;
pub mod supervisors;
