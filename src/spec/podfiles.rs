//! The contents of a pod's /etc/hosts and /etc/hostname as kubelet writes them
//! (the sandbox writes the files; every container bind-mounts them).
use k8s_openapi::api::core::v1::Pod;

/// kubelet's managed /etc/hosts: localhost lines, the pod's own name(s) on its IP, then
/// spec.hostAliases. For hostNetwork pods kubelet mounts the host's /etc/hosts instead
/// (and so should the caller).
pub fn hosts_file(pod: &Pod, hostname: &str, pod_ips: &[String]) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.as_ref();
    let subdomain = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    for ip in pod_ips {
        match subdomain {
            Some(sub) => s.push_str(&format!(
                "{ip}\t{hostname}.{sub}.{ns}.svc.cluster.local\t{hostname}\n"
            )),
            None => s.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default().join("\t");
            s.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    s
}

/// /etc/hostname: the pod's hostname and a newline.
pub fn hostname_file(hostname: &str) -> String {
    format!("{hostname}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load, LoadOptions};

    fn pod(extra: &str) -> Pod {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: dev}}\nspec:\n{extra}  containers: [{{name: c, image: i}}]\n");
        load(&text, &LoadOptions::default()).unwrap().pods.remove(0)
    }

    #[test]
    fn hosts_file_names_the_pod_on_its_ip() {
        let h = hosts_file(&pod(""), "web", &["10.88.0.4".into()]);
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            h.ends_with("fe00::2\tip6-allrouters\n10.88.0.4\tweb\n"),
            "{h}"
        );
    }

    #[test]
    fn subdomain_gives_the_fqdn_and_host_aliases_are_appended() {
        let p = pod(
            "  subdomain: db\n  hostAliases: [{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}]\n",
        );
        let h = hosts_file(&p, "web", &["10.88.0.4".into()]);
        assert!(
            h.contains("10.88.0.4\tweb.db.dev.svc.cluster.local\tweb\n"),
            "{h}"
        );
        assert!(
            h.ends_with("\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"),
            "{h}"
        );
    }

    #[test]
    fn hostname_file_has_one_line() {
        assert_eq!(hostname_file("web"), "web\n");
    }
}
