//! Node admission: kube-scheduler predicates (nodeName, nodeSelector, affinity, taints, resource fit) for this one node.
