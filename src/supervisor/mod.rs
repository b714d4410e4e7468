//! The per-pod supervisor: pod state machine, restarts with back-off, probes, hooks, logs, status, events.
pub mod backoff;
pub mod events;
pub mod eviction;
pub mod grpc_probe;
pub mod hpack;
pub mod http_probe;
pub mod leftovers;
pub mod logs;
pub mod pause;
pub mod pod_state;
pub mod probes;
pub mod sandbox;
pub mod store;
pub mod worker;
