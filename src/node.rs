//! This node: name, labels, taints, capacity and allocatable, persisted in /var/lib/podrun/node.json.
