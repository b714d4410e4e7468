//! The API server's defaults for a Pod (and ConfigMap/Secret metadata), so that what podrun
//! stores and shows is what `kubectl get pod -o yaml` would show.
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, LifecycleHandler, Pod,
    PodSecurityContext, PodSpec, Probe, ResourceRequirements, Secret, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::io::Read;

/// Mode 0644, the API server's defaultMode for configMap/secret/downwardAPI/projected.
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;

/// A random (version 4) UUID read from /dev/urandom, as metadata.uid.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        // No /dev/urandom: fall back to time and pid so uids still differ per pod.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mix = t ^ (u128::from(std::process::id()) << 64);
        b = mix.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The API server's generateName suffix: five characters from its safe alphabet.
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let uid = new_uid().replace('-', "");
    let bytes = hex::decode(uid).unwrap_or_default();
    bytes
        .iter()
        .take(5)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// name (from generateName), uid and creationTimestamp, set when the object is created.
pub fn default_object_meta(meta: &mut ObjectMeta) {
    if meta.name.as_deref().unwrap_or("").is_empty() {
        if let Some(g) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
            meta.name = Some(format!("{g}{}", name_suffix()));
        }
    }
    if meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some("default".into());
    }
    // Set by the server on create whatever the manifest says (a saved `get -o yaml`
    // carries the old object's values).
    meta.uid = Some(new_uid());
    meta.creation_timestamp = Some(crate::util::now_seconds());
    meta.resource_version = None;
    meta.managed_fields = None;
    meta.self_link = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
}

/// Secret: type Opaque, and stringData merged into data (the API server's write-only field).
pub fn default_secret(secret: &mut Secret) {
    default_object_meta(&mut secret.metadata);
    if secret.type_.as_deref().unwrap_or("").is_empty() {
        secret.type_ = Some("Opaque".into());
    }
    if let Some(sd) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in sd {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
}

/// kubelet's rule for an unset imagePullPolicy: Always for `:latest` or no tag, else IfNotPresent.
pub fn default_pull_policy(image: &str) -> &'static str {
    // A digest pins the image: IfNotPresent.
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn set<T>(field: &mut Option<T>, v: T) {
    if field.is_none() {
        *field = Some(v);
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    if h.path.as_deref().unwrap_or("").is_empty() {
        h.path = Some("/".into());
    }
    if h.scheme.as_deref().unwrap_or("").is_empty() {
        h.scheme = Some("HTTP".into());
    }
}

fn default_probe(p: &mut Probe) {
    set(&mut p.timeout_seconds, 1);
    set(&mut p.period_seconds, 10);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(h) = p.http_get.as_mut() {
        default_http_get(h);
    }
    if let Some(g) = p.grpc.as_mut() {
        set(&mut g.service, String::new());
    }
}

fn default_handler(h: &mut LifecycleHandler) {
    if let Some(g) = h.http_get.as_mut() {
        default_http_get(g);
    }
}

fn default_ports(ports: &mut [ContainerPort]) {
    for p in ports {
        if p.protocol.as_deref().unwrap_or("").is_empty() {
            p.protocol = Some("TCP".into());
        }
    }
}

/// Requests default to the limits for each resource limited but not requested.
fn default_resources(r: &mut ResourceRequirements) {
    let Some(limits) = r.limits.as_ref() else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    let requests = r.requests.get_or_insert_with(Default::default);
    for (k, v) in limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// Defaults for one container (regular, init or sidecar).
pub fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        c.image_pull_policy = Some(default_pull_policy(c.image.as_deref().unwrap_or("")).into());
    }
    set(
        &mut c.termination_message_path,
        "/dev/termination-log".into(),
    );
    set(&mut c.termination_message_policy, "File".into());
    if let Some(ports) = c.ports.as_mut() {
        default_ports(ports);
    }
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(p);
    }
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            default_handler(h);
        }
    }
    // An empty resources object is what the API server shows for a container without any.
    let r = c.resources.get_or_insert_with(Default::default);
    default_resources(r);
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|vf| vf.field_ref.as_mut()) {
            set(&mut f.api_version, "v1".into());
        }
    }
}

fn default_volume(v: &mut Volume) {
    let has_source = v.host_path.is_some()
        || v.empty_dir.is_some()
        || v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
        || v.persistent_volume_claim.is_some()
        || v.nfs.is_some()
        || v.csi.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some()
        || v.iscsi.is_some()
        || v.fc.is_some()
        || v.git_repo.is_some()
        || v.rbd.is_some()
        || v.cephfs.is_some()
        || v.glusterfs.is_some()
        || v.aws_elastic_block_store.is_some()
        || v.gce_persistent_disk.is_some()
        || v.azure_disk.is_some()
        || v.azure_file.is_some()
        || v.cinder.is_some()
        || v.flex_volume.is_some()
        || v.flocker.is_some()
        || v.photon_persistent_disk.is_some()
        || v.portworx_volume.is_some()
        || v.quobyte.is_some()
        || v.scale_io.is_some()
        || v.storageos.is_some()
        || v.vsphere_volume.is_some();
    if !has_source {
        // SetDefaults_Volume: a volume naming no source is an emptyDir.
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(h) = v.host_path.as_mut() {
        set(&mut h.type_, String::new());
    }
    if let Some(c) = v.config_map.as_mut() {
        set(&mut c.default_mode, DEFAULT_VOLUME_MODE);
    }
    if let Some(s) = v.secret.as_mut() {
        set(&mut s.default_mode, DEFAULT_VOLUME_MODE);
    }
    if let Some(d) = v.downward_api.as_mut() {
        set(&mut d.default_mode, DEFAULT_VOLUME_MODE);
        for i in d.items.iter_mut().flatten() {
            if let Some(f) = i.field_ref.as_mut() {
                set(&mut f.api_version, "v1".into());
            }
        }
    }
    if let Some(p) = v.projected.as_mut() {
        set(&mut p.default_mode, DEFAULT_VOLUME_MODE);
        for s in p.sources.iter_mut().flatten() {
            for i in s
                .downward_api
                .iter_mut()
                .flat_map(|d| d.items.iter_mut().flatten())
            {
                if let Some(f) = i.field_ref.as_mut() {
                    set(&mut f.api_version, "v1".into());
                }
            }
        }
    }
}

/// Applies every default the API server (and its default admission plugins) set on create.
pub fn default_pod(pod: &mut Pod) {
    default_object_meta(&mut pod.metadata);
    // Status is the node's to write; a create ignores the one given.
    pod.status = None;
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    set(&mut spec.restart_policy, "Always".into());
    set(&mut spec.termination_grace_period_seconds, 30);
    set(&mut spec.dns_policy, "ClusterFirst".into());
    set(&mut spec.scheduler_name, "default-scheduler".into());
    set(&mut spec.security_context, PodSecurityContext::default());
    set(&mut spec.enable_service_links, true);
    set(&mut spec.service_account_name, "default".into());
    set(&mut spec.service_account, "default".into());
    set(&mut spec.priority, 0);
    set(&mut spec.preemption_policy, "PreemptLowerPriority".into());
    for c in spec.containers.iter_mut() {
        default_container(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load, LoadOptions};

    fn pod_of(name: &str) -> Pod {
        let text = crate::manifest::tests::seed(name);
        load(&text, &LoadOptions::default()).unwrap().pods.remove(0)
    }

    #[test]
    fn pod_level_defaults_as_the_api_server_sets_them() {
        let pod = pod_of("pod-base.yaml");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.enable_service_links, Some(true));
        assert!(spec.security_context.is_some());
        assert_eq!(pod.metadata.namespace.as_deref(), Some("dev"));
        assert!(pod.metadata.creation_timestamp.is_some());
    }

    #[test]
    fn uid_is_a_random_v4_uuid() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        let pod = pod_of("pod-base.yaml");
        assert_eq!(pod.metadata.uid.as_deref().map(str::len), Some(36));
    }

    #[test]
    fn server_owned_fields_are_reset_on_create() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, uid: 'abc-1234', resourceVersion: '99'}\nspec:\n  containers: [{name: c, image: i}]\nstatus: {phase: Running}\n";
        let pod = load(text, &LoadOptions::default()).unwrap().pods.remove(0);
        assert_ne!(pod.metadata.uid.as_deref(), Some("abc-1234"));
        assert_eq!(pod.metadata.resource_version, None);
        assert!(pod.status.is_none());
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.17.1"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/nginx:1.0"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("nginx@sha256:abcd"), "IfNotPresent");
        let pod = pod_of("two-containers.yaml");
        let cs = &pod.spec.as_ref().unwrap().containers;
        assert_eq!(cs[0].image_pull_policy.as_deref(), Some("Always"));
        let pod = pod_of("pod-imagepullpolicy-never.yaml");
        let cs = &pod.spec.as_ref().unwrap().containers;
        assert_eq!(
            cs[0].image_pull_policy.as_deref(),
            Some("Never"),
            "given stays"
        );
        assert_eq!(cs[1].image_pull_policy.as_deref(), Some("IfNotPresent"));
    }

    #[test]
    fn container_defaults() {
        let pod = pod_of("pod-liveness-tcpsocket.yaml");
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let p = c.liveness_probe.as_ref().unwrap();
        assert_eq!(p.period_seconds, Some(10));
        assert_eq!(p.timeout_seconds, Some(1));
        assert_eq!(p.success_threshold, Some(1));
        assert_eq!(p.failure_threshold, Some(3));
    }

    #[test]
    fn http_get_defaults_scheme_and_path() {
        let pod = pod_of("sidecar-adapter.yaml");
        let c = &pod.spec.as_ref().unwrap().containers[1];
        let h = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(h.scheme.as_deref(), Some("HTTP"));
        assert_eq!(h.path.as_deref(), Some("/cgi-bin/health"));
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    livenessProbe: {httpGet: {port: 80}}\n";
        let pod = load(text, &LoadOptions::default()).unwrap().pods.remove(0);
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let h = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(h.path.as_deref(), Some("/"));
    }

    #[test]
    fn requests_default_to_limits() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    resources: {limits: {cpu: 500m, memory: 1Gi}, requests: {cpu: 100m}}\n";
        let pod = load(text, &LoadOptions::default()).unwrap().pods.remove(0);
        let r = pod.spec.as_ref().unwrap().containers[0]
            .resources
            .clone()
            .unwrap();
        let req = r.requests.unwrap();
        assert_eq!(req["cpu"].0, "100m", "a given request stays");
        assert_eq!(req["memory"].0, "1Gi", "missing request takes the limit");
    }

    #[test]
    fn volume_defaults() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n  - name: bare\n  - {name: cm, configMap: {name: x}}\n  containers:\n  - {name: c, image: i}\n";
        let pod = load(text, &LoadOptions::default()).unwrap().pods.remove(0);
        let vols = pod.spec.unwrap().volumes.unwrap();
        assert!(
            vols[0].empty_dir.is_some(),
            "a volume without source is an emptyDir"
        );
        assert_eq!(vols[1].config_map.as_ref().unwrap().default_mode, Some(420));
    }
}
