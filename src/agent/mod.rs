//! The node agent (`podrun serve`): its self-contained building blocks, each unit-tested
//! alone; the serve loop wires them together.
pub mod manifest_dir;
pub mod service;
