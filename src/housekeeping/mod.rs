//! Node housekeeping as kubelet does it beside the pods: the QoS tier cgroups, image
//! garbage collection and `image prune`, eviction under pressure, and usage figures.
pub mod images;
pub mod qos_tiers;
pub mod stats;
