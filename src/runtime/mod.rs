//! The OCI runtime: container create/start/kill/delete/state/exec over raw namespaces,
//! rootfs, cgroups, process setup and OCI hooks, with on-disk state. Knows nothing of
//! Kubernetes.
pub mod cgroups;
