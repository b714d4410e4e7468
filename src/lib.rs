//! podrun: a single-host pod runtime and a runc-compatible OCI runtime on raw Linux namespaces.
//!
//! Data flows one way: a Kubernetes Pod (`manifest`) is admitted on this node
//! (`admission`, `node`), turned into one OCI runtime spec per container (`spec`) over an
//! image (`image`), and run by the OCI runtime (`runtime`) under a per-pod `supervisor`.
pub mod admission;
pub mod agent;
pub mod api;
pub mod cli;
pub mod controllers;
pub mod handoff;
pub mod housekeeping;
pub mod idmap;
pub mod image;
pub mod lease_dir;
pub mod manifest;
pub mod network;
pub mod node;
pub mod node_config;
pub mod objects;
pub mod pod;
pub mod runtime;
pub mod spec;
pub mod supervisor;
pub mod userns;
pub mod util;
