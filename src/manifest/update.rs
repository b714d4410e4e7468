//! The API server's rules for updating a Pod in place (ValidatePodUpdate and
//! ValidateObjectMetaUpdate), as a pure function of the stored pod and the applied one:
//! unchanged, configured (and what changed, for the agent to act on), or forbidden with
//! the API server's message as kubectl prints it.
//!
//! Both pods are as [`super::defaults::default_pod`] leaves them. Fields the server or
//! the node set and a manifest does not carry are kept from the stored pod, as
//! `kubectl apply`'s merge keeps them: uid, creationTimestamp, spec.nodeName and
//! spec.ephemeralContainers when the new pod has none, and the status.
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Toleration};

/// updatablePodSpecFields of pkg/apis/core/validation, joined as the API server joins them.
pub const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The outcome of applying `new` over `old`.
#[derive(Debug, Clone, PartialEq)]
pub enum PodUpdate {
    /// Nothing to do (`pod/x unchanged`).
    Unchanged,
    /// An allowed change (`pod/x configured`): what changed, and the pod to store.
    Configured { changes: PodChanges, pod: Box<Pod> },
    /// Refused, with the whole message (`The Pod "x" is invalid: ...`).
    Forbidden(String),
}

/// Whether a changed image belongs to a container or an init container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerList {
    Containers,
    InitContainers,
}

/// One container whose image changed: kubelet kills and restarts that container alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    pub list: ContainerList,
    pub name: String,
    pub old: String,
    pub new: String,
}

/// What an allowed update changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodChanges {
    pub images: Vec<ImageChange>,
    pub labels: bool,
    pub annotations: bool,
    /// The new activeDeadlineSeconds, when it was set or lowered.
    pub active_deadline_seconds: Option<i64>,
    /// Tolerations the pod did not have.
    pub added_tolerations: Vec<Toleration>,
    /// An existing toleration's tolerationSeconds changed.
    pub toleration_seconds: bool,
    /// terminationGracePeriodSeconds went from negative to 1.
    pub termination_grace_period_seconds: bool,
}

/// One field error, rendered as apimachinery's field.Error renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldError {
    field: String,
    body: String,
}

impl FieldError {
    fn forbidden(field: &str, detail: &str) -> FieldError {
        FieldError {
            field: field.into(),
            body: format!("Forbidden: {detail}"),
        }
    }
    fn required(field: String) -> FieldError {
        FieldError {
            field,
            body: "Required value".into(),
        }
    }
    /// `value` is already rendered (Go's %q for strings, %v for numbers, "null").
    fn invalid(field: String, value: String, detail: &str) -> FieldError {
        FieldError {
            field,
            body: format!("Invalid value: {value}: {detail}"),
        }
    }
}

/// Applies the API server's update rules. `given_uid` is the uid the applied manifest
/// itself carried (defaulting replaces it), None when it had none.
pub fn pod_update(old: &Pod, new: &Pod, given_uid: Option<&str>) -> PodUpdate {
    let name = old.metadata.name.clone().unwrap_or_default();
    let mut merged = new.clone();
    keep_server_fields(old, &mut merged);
    keep_defaulted_pull_policies(old, &mut merged);
    let mut errs = meta_errors(old, new, given_uid);
    let empty = PodSpec::default();
    let old_spec = old.spec.as_ref().unwrap_or(&empty);
    let new_spec = merged.spec.clone().unwrap_or_default();
    let (spec_errs, changes) = spec_update(old_spec, &new_spec);
    errs.extend(spec_errs);
    if !errs.is_empty() {
        return PodUpdate::Forbidden(invalid_message("Pod", &name, &errs));
    }
    let changes = PodChanges {
        labels: old.metadata.labels.clone().unwrap_or_default()
            != merged.metadata.labels.clone().unwrap_or_default(),
        annotations: old.metadata.annotations.clone().unwrap_or_default()
            != merged.metadata.annotations.clone().unwrap_or_default(),
        ..changes
    };
    if changes == PodChanges::default() {
        return PodUpdate::Unchanged;
    }
    PodUpdate::Configured {
        changes,
        pod: Box::new(merged),
    }
}

/// What the server and node own stays the stored pod's.
fn keep_server_fields(old: &Pod, merged: &mut Pod) {
    let m = &mut merged.metadata;
    m.uid = old.metadata.uid.clone();
    m.creation_timestamp = old.metadata.creation_timestamp.clone();
    m.resource_version = old.metadata.resource_version.clone();
    m.generation = old.metadata.generation;
    merged.status = old.status.clone();
    if let (Some(os), Some(ns)) = (old.spec.as_ref(), merged.spec.as_mut()) {
        if ns.node_name.is_none() {
            ns.node_name = os.node_name.clone();
        }
        if ns.ephemeral_containers.is_none() {
            ns.ephemeral_containers = os.ephemeral_containers.clone();
        }
    }
}

/// An imagePullPolicy that is on both sides only what defaulting gave each image is no
/// change the manifest asked for: `kubectl apply` patches the live pod with what the file
/// sets, so the live value stays (an image changed to `:latest` is an image change, not
/// a refused imagePullPolicy change).
fn keep_defaulted_pull_policies(old: &Pod, merged: &mut Pod) {
    let (Some(os), Some(ns)) = (old.spec.as_ref(), merged.spec.as_mut()) else {
        return;
    };
    let none = Vec::new();
    let pairs = [
        (&os.containers, Some(&mut ns.containers)),
        (
            os.init_containers.as_ref().unwrap_or(&none),
            ns.init_containers.as_mut(),
        ),
    ];
    for (olds, news) in pairs {
        for nc in news.into_iter().flatten() {
            let Some(oc) = olds.iter().find(|c| c.name == nc.name) else {
                continue;
            };
            let defaulted = |c: &Container| {
                c.image_pull_policy.as_deref()
                    == Some(super::defaults::default_pull_policy(
                        c.image.as_deref().unwrap_or(""),
                    ))
            };
            if defaulted(oc) && defaulted(nc) {
                nc.image_pull_policy = oc.image_pull_policy.clone();
            }
        }
    }
}

/// ValidateObjectMetaUpdate's immutable fields.
fn meta_errors(old: &Pod, new: &Pod, given_uid: Option<&str>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let immutable = |field: &str, old: Option<&str>, new: Option<&str>| {
        let (o, n) = (old.unwrap_or(""), new.unwrap_or(""));
        (o != n).then(|| FieldError::invalid(field.into(), go_quote(n), "field is immutable"))
    };
    let (om, nm) = (&old.metadata, &new.metadata);
    errs.extend(immutable(
        "metadata.name",
        om.name.as_deref(),
        nm.name.as_deref(),
    ));
    errs.extend(immutable(
        "metadata.namespace",
        om.namespace.as_deref(),
        nm.namespace.as_deref(),
    ));
    if let Some(uid) = given_uid.filter(|u| !u.is_empty()) {
        errs.extend(immutable("metadata.uid", om.uid.as_deref(), Some(uid)));
    }
    errs
}

/// ValidatePodUpdate's spec rules, in its order; the changes when allowed.
fn spec_update(old: &PodSpec, new: &PodSpec) -> (Vec<FieldError>, PodChanges) {
    let mut changes = PodChanges::default();
    let none = Vec::new();
    let mut errs = Vec::new();
    let lists = [
        (
            ContainerList::Containers,
            "spec.containers",
            &old.containers,
            &new.containers,
        ),
        (
            ContainerList::InitContainers,
            "spec.initContainers",
            old.init_containers.as_ref().unwrap_or(&none),
            new.init_containers.as_ref().unwrap_or(&none),
        ),
    ];
    for (list, path, o, n) in lists {
        // As the API server: an added or removed container ends the checks; a bad image
        // is one error among the others.
        let (list_errs, stop) = container_updates(n, o, path);
        errs.extend(list_errs);
        if stop {
            return (errs, changes);
        }
        for (oc, nc) in o.iter().zip(n.iter()) {
            if oc.image != nc.image && oc.name == nc.name {
                changes.images.push(ImageChange {
                    list,
                    name: nc.name.clone(),
                    old: oc.image.clone().unwrap_or_default(),
                    new: nc.image.clone().unwrap_or_default(),
                });
            }
        }
    }
    match active_deadline(old.active_deadline_seconds, new.active_deadline_seconds) {
        Err(e) => {
            errs.push(e);
            return (errs, changes);
        }
        Ok(changed) => changes.active_deadline_seconds = changed,
    }
    match added_tolerations(old, new) {
        Err(e) => errs.push(e),
        Ok((added, seconds)) => {
            changes.added_tolerations = added;
            changes.toleration_seconds = seconds;
        }
    }
    let munged = munge(old, new);
    changes.termination_grace_period_seconds = old.termination_grace_period_seconds
        != new.termination_grace_period_seconds
        && munged.termination_grace_period_seconds == old.termination_grace_period_seconds;
    if &munged != old {
        let detail = format!(
            "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}",
            spec_diff(old, &munged)
        );
        errs.push(FieldError::forbidden("spec", &detail));
    }
    (errs, changes)
}

/// ValidateContainerUpdates: the same number of containers, each with an image.
fn container_updates(new: &[Container], old: &[Container], path: &str) -> (Vec<FieldError>, bool) {
    if new.len() != old.len() {
        let e = FieldError::forbidden(path, "pod updates may not add or remove containers");
        return (vec![e], true);
    }
    let mut errs = Vec::new();
    for (i, c) in new.iter().enumerate() {
        let image = c.image.as_deref().unwrap_or("");
        let field = format!("{path}[{i}].image");
        if image.is_empty() {
            errs.push(FieldError::required(field.clone()));
        }
        if image.trim() != image {
            errs.push(FieldError::invalid(
                field,
                go_quote(image),
                "must not have leading or trailing whitespace",
            ));
        }
    }
    (errs, false)
}

/// activeDeadlineSeconds may be set, or lowered; never raised or removed.
fn active_deadline(old: Option<i64>, new: Option<i64>) -> Result<Option<i64>, FieldError> {
    let field = || "spec.activeDeadlineSeconds".to_string();
    match (old, new) {
        (_, Some(n)) if !(0..=i64::from(i32::MAX)).contains(&n) => Err(FieldError::invalid(
            field(),
            n.to_string(),
            "must be between 0 and 2147483647, inclusive",
        )),
        (Some(o), Some(n)) if o < n => Err(FieldError::invalid(
            field(),
            n.to_string(),
            "must be less than or equal to previous value",
        )),
        (Some(_), None) => Err(FieldError::invalid(
            field(),
            "\"null\"".into(),
            "must not update from a positive integer to nil value",
        )),
        (o, Some(n)) if o != Some(n) => Ok(Some(n)),
        _ => Ok(None),
    }
}

/// validateOnlyAddedTolerations: each old toleration is still there (its
/// tolerationSeconds may change); returns the added ones and whether seconds changed.
fn added_tolerations(old: &PodSpec, new: &PodSpec) -> Result<(Vec<Toleration>, bool), FieldError> {
    let (o, n) = (
        old.tolerations.clone().unwrap_or_default(),
        new.tolerations.clone().unwrap_or_default(),
    );
    let same_but_seconds = |a: &Toleration, b: &Toleration| {
        let mut a = a.clone();
        a.toleration_seconds = b.toleration_seconds;
        &a == b
    };
    let mut seconds = false;
    for t in &o {
        match n.iter().find(|x| same_but_seconds(t, x)) {
            Some(x) => seconds |= x.toleration_seconds != t.toleration_seconds,
            None => {
                return Err(FieldError::forbidden(
                    "spec.tolerations",
                    "existing toleration can not be modified except its tolerationSeconds",
                ))
            }
        }
    }
    let added = n
        .iter()
        .filter(|x| !o.iter().any(|t| same_but_seconds(t, x)))
        .cloned()
        .collect();
    Ok((added, seconds))
}

/// The new spec with every updatable field set back to the old one's (the API server's
/// mungedPodSpec): what remains different is forbidden.
fn munge(old: &PodSpec, new: &PodSpec) -> PodSpec {
    let mut m = new.clone();
    for (c, o) in m.containers.iter_mut().zip(&old.containers) {
        c.image = o.image.clone();
    }
    if let (Some(cs), Some(os)) = (m.init_containers.as_mut(), old.init_containers.as_ref()) {
        for (c, o) in cs.iter_mut().zip(os) {
            c.image = o.image.clone();
        }
    }
    m.active_deadline_seconds = old.active_deadline_seconds;
    m.scheduling_gates = old.scheduling_gates.clone();
    m.tolerations = old.tolerations.clone();
    if old.termination_grace_period_seconds.is_some_and(|t| t < 0)
        && m.termination_grace_period_seconds == Some(1)
    {
        m.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    m
}

/// The field errors as kubectl prints an Invalid status: one error bare, several in
/// brackets, comma-separated.
fn invalid_message(kind: &str, name: &str, errs: &[FieldError]) -> String {
    let rendered: Vec<String> = errs
        .iter()
        .map(|e| format!("{}: {}", e.field, e.body))
        .collect();
    let body = match rendered.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    format!("The {kind} {name:?} is invalid: {body}")
}

/// Go's %q of a string (close enough: Rust's escapes for the usual characters).
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// The difference between two specs, in the spirit of the go-cmp diff the API server
/// appends: the specs as YAML, changed lines marked `-`/`+`, two lines of context,
/// runs of identical lines elided.
fn spec_diff(old: &PodSpec, new: &PodSpec) -> String {
    let a = to_lines(old);
    let b = to_lines(new);
    let ops = line_diff(&a, &b);
    let keep: Vec<bool> = (0..ops.len())
        .map(|i| {
            let lo = i.saturating_sub(2);
            let hi = (i + 3).min(ops.len());
            ops[lo..hi].iter().any(|(tag, _)| *tag != ' ')
        })
        .collect();
    let mut out = String::from("  core.PodSpec{\n");
    let mut elided = false;
    for (i, (tag, line)) in ops.iter().enumerate() {
        if keep[i] {
            out.push_str(&format!("{tag} \t{line}\n"));
            elided = false;
        } else if !elided {
            out.push_str("  \t... // identical lines\n");
            elided = true;
        }
    }
    out.push_str("  }\n");
    out
}

fn to_lines(spec: &PodSpec) -> Vec<String> {
    let text = serde_yaml_ng::to_string(spec).unwrap_or_default();
    text.lines().map(String::from).collect()
}

/// A longest-common-subsequence line diff: (' ' | '-' | '+', line).
fn line_diff(a: &[String], b: &[String]) -> Vec<(char, String)> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', a[i].clone()));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(('-', a[i].clone()));
            i += 1;
        } else {
            out.push(('+', b[j].clone()));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
