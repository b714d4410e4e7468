//! The controllers' hands on pods: what runs (the pod store, with status), creating pods
//! from a template through the same library `apply` uses (several at once, as the
//! controllers' slow-start batches do), and deleting them without waiting.
use super::meta;
use crate::manifest::validate::InvalidError;
use crate::pod::PodContext;
use crate::supervisor::store::{PodObjects, DELETION_FILE};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// How many pods are created at once (the supervisors start in parallel; the agent
/// only forks them).
const CREATE_THREADS: usize = 32;

/// Every pod on this node with its status; one being deleted carries a deletionTimestamp.
pub fn observe(ctx: &PodContext, deleter: &Deleter) -> Vec<Pod> {
    let now = Time(crate::util::now());
    ctx.store()
        .list()
        .into_iter()
        .filter(|r| r.damaged.is_none())
        .map(|r| {
            let mut pod = r.pod;
            let key = format!("{}/{}", meta::ns(&pod.metadata), meta::name(&pod.metadata));
            if r.dir.join(DELETION_FILE).exists() || deleter.is_deleting(&key) {
                pod.metadata.deletion_timestamp.get_or_insert(now.clone());
            }
            pod
        })
        .collect()
}

/// The pods whose controller is the object with `uid`.
pub fn owned<'a>(pods: &'a [Pod], uid: &str) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| meta::controlled_by(&p.metadata, uid))
        .collect()
}

/// What a new pod gets beyond its template.
#[derive(Debug, Clone, Default)]
pub struct PodExtras {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub env: Vec<(String, String)>,
    pub hostname: Option<String>,
}

/// A pod made from `template`, named `name`, controlled by `owner`: defaulted and
/// validated as the API server does a created pod.
pub fn new_pod(
    template: &PodTemplateSpec,
    namespace: &str,
    name: &str,
    owner: OwnerReference,
    extras: &PodExtras,
) -> Result<Pod, InvalidError> {
    let mut pod = Pod {
        metadata: template.metadata.clone().unwrap_or_default(),
        spec: template.spec.clone(),
        status: None,
    };
    pod.metadata.name = Some(name.into());
    pod.metadata.generate_name = None;
    pod.metadata.namespace = Some(namespace.into());
    pod.metadata.owner_references = Some(vec![owner]);
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.extend(extras.labels.clone());
    if !extras.annotations.is_empty() {
        let a = pod
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        a.extend(extras.annotations.clone());
    }
    if let Some(spec) = pod.spec.as_mut() {
        if extras.hostname.is_some() {
            spec.hostname = extras.hostname.clone();
        }
        for c in spec.containers.iter_mut() {
            let env = c.env.get_or_insert_with(Vec::new);
            for (k, v) in &extras.env {
                env.push(k8s_openapi::api::core::v1::EnvVar {
                    name: k.clone(),
                    value: Some(v.clone()),
                    value_from: None,
                });
            }
        }
    }
    crate::manifest::defaults::default_pod(&mut pod);
    crate::manifest::validate::validate_pod(&pod)?;
    Ok(pod)
}

/// Creates `pods` (several at once); each pod's failure is reported, not fatal.
pub fn create_all(ctx: &PodContext, pods: Vec<Pod>) {
    if pods.is_empty() {
        return;
    }
    if let Err(e) = crate::pod::preflight(ctx, &pods) {
        eprintln!("podrun serve: not creating {} pods: {e}", pods.len());
        return;
    }
    let queue = Mutex::new(pods);
    std::thread::scope(|s| {
        let n = CREATE_THREADS.min(queue.lock().map(|q| q.len()).unwrap_or(1));
        for _ in 0..n {
            s.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(pod) = next else { return };
                if let Err(e) = crate::pod::create(
                    ctx,
                    &pod,
                    &crate::objects::configs::pod_objects(ctx, &pod, &PodObjects::default()),
                ) {
                    eprintln!(
                        "podrun serve: creating pod {}: {e}",
                        meta::name(&pod.metadata)
                    );
                }
            });
        }
    });
}

/// Deletes pods in the background (each deletion waits for its grace period), and
/// remembers which are on their way out until their supervisor has removed them.
#[derive(Debug, Clone, Default)]
pub struct Deleter {
    deleting: Arc<Mutex<HashSet<String>>>,
}

impl Deleter {
    pub fn is_deleting(&self, key: &str) -> bool {
        self.deleting.lock().is_ok_and(|d| d.contains(key))
    }

    /// Asks for the deletion of pod `ns/name` (once; a second ask is a no-op).
    pub fn delete(&self, ctx: &PodContext, ns: &str, name: &str) {
        let key = format!("{ns}/{name}");
        let fresh = self
            .deleting
            .lock()
            .is_ok_and(|mut d| d.insert(key.clone()));
        if !fresh {
            return;
        }
        let (ctx, set) = (ctx.clone(), self.deleting.clone());
        let (ns2, name2) = (ns.to_string(), name.to_string());
        let spawned = std::thread::Builder::new()
            .name("pod-delete".into())
            .spawn(move || {
                match crate::pod::delete(&ctx, &ns2, &name2, Default::default()) {
                    Ok(()) | Err(crate::pod::DeleteError::NotFound { .. }) => {}
                    Err(e) => eprintln!("podrun serve: deleting pod {ns2}/{name2}: {e}"),
                }
                if let Ok(mut d) = set.lock() {
                    d.remove(&key);
                }
            });
        if let Err(e) = spawned {
            eprintln!("podrun serve: deleting pod {ns}/{name}: {e}");
        }
    }
}
