//! The node agent (`podrun serve`): keeps what was applied, supervises the supervisors and
//! holds what must outlive them.
pub mod handoff;
pub mod pidfd;
pub mod serve;
pub mod supervisors;
