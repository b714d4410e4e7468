//! Pod networking: loopback, node bridge + veth + IPAM, hostNetwork, hostPort, resolv.conf/hosts, CNI.
